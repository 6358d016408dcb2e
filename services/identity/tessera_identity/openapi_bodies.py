"""What the request bodies of identity's management routes look like, for the OpenAPI
document only. The routes read their bodies themselves (`validation.Guard`), so that a
bad body gets Logto's exact `guard.invalid_input` details; these types describe the same
fields (Logto 1.6's schemas) and are never used to parse a request.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec

from tessera_kit import regexes

Username = Annotated[str, msgspec.Meta(pattern=f"^{regexes.USERNAME.pattern}$")]
Email = Annotated[str, msgspec.Meta(pattern=f"^{regexes.EMAIL.pattern}$")]
Phone = Annotated[str, msgspec.Meta(pattern=f"^{regexes.PHONE.pattern}$")]
NewPassword = Annotated[str, msgspec.Meta(
    pattern=f"^{regexes.PASSWORD.pattern}$",
    description="At least 8 characters of two of: digits, letters, specials.")]
ApplicationType = Literal["Native", "SPA", "Traditional", "MachineToMachine"]


class _Body(msgspec.Struct, omit_defaults=True, rename="camel", forbid_unknown_fields=False):
    pass


class CreateUserBody(_Body):
    username: Username | None = None
    primary_email: Email | None = None
    primary_phone: Phone | None = None
    password: NewPassword | None = None
    name: str | None = None


class UpdateUserBody(_Body):
    """A field given as null (or "" for the identifiers) clears it."""

    username: Username | None = None
    primary_email: Email | None = None
    primary_phone: Phone | None = None
    name: str | None = None
    avatar: str | None = None
    custom_data: dict[str, Any] | None = None


class UpdateUserCustomDataBody(_Body):
    custom_data: dict[str, Any]


class UpdateUserPasswordBody(_Body):
    password: NewPassword


class VerifyUserPasswordBody(_Body):
    password: Annotated[str, msgspec.Meta(min_length=1)]


class UpdateUserIsSuspendedBody(_Body):
    is_suspended: bool


class CreateUserIdentityBody(_Body):
    connector_id: str
    connector_data: dict[str, Any]


class OidcClientMetadata(_Body):
    redirect_uris: list[str]
    post_logout_redirect_uris: list[str]
    logo_uri: str | None = None


class CustomClientMetadata(_Body):
    cors_allowed_origins: list[str] | None = None
    id_token_ttl: float | None = None
    refresh_token_ttl: float | None = None
    refresh_token_ttl_in_days: float | None = None
    always_issue_refresh_token: bool | None = None
    rotate_refresh_token: bool | None = None


class CreateApplicationBody(_Body):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
    type: ApplicationType
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    description: str | None = None
    oidc_client_metadata: OidcClientMetadata | None = None
    custom_client_metadata: CustomClientMetadata | None = None


class UpdateApplicationBody(_Body):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=256)] | None = None
    type: ApplicationType | None = None
    secret: Annotated[str, msgspec.Meta(min_length=1, max_length=64)] | None = None
    description: str | None = None
    oidc_client_metadata: OidcClientMetadata | None = None
    custom_client_metadata: CustomClientMetadata | None = None
    is_admin: bool | None = None  # machine-to-machine apps: holds the Management API's admin role


REQUEST_BODIES: dict[str, type] = {
    "CreateUser": CreateUserBody,
    "UpdateUser": UpdateUserBody,
    "UpdateUserCustomData": UpdateUserCustomDataBody,
    "UpdateUserPassword": UpdateUserPasswordBody,
    "VerifyUserPassword": VerifyUserPasswordBody,
    "UpdateUserIsSuspended": UpdateUserIsSuspendedBody,
    "CreateUserIdentity": CreateUserIdentityBody,
    "CreateApplication": CreateApplicationBody,
    "UpdateApplication": UpdateApplicationBody,
}

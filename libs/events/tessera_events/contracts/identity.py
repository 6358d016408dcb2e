"""What identity answers over rpc about users and applications.

Answered by identity (`rpc.identity.<name>`):

- FIND_USER            a user by id, username (exact), email (case-insensitive) or phone
                       (exact), or by a linked social identity; `None` when there is none.
- VERIFY_PASSWORD      a sign-in password check with identifier lockout (see below).
- CREATE_USER          a user from a finished registration (password hashed by identity).
- UPDATE_USER          profile fields, password, identities, `last_sign_in_at`.
- HASH_PASSWORD        a new password's hash, for a caller that must keep it for a while
                       (an interaction's profile) and may not keep it in clear.
- APPLICATION_CLIENT   an application's client metadata (never its secret); `None` if unknown.
- USER_COUNTS          how many users a tenant has, and how many of them were created in given
                       windows: the dashboard's figures where the users are (audit-log's copy
                       follows identity's events milliseconds late).

Errors reach the caller as Logto `RequestError`s (status + code), e.g. 422
`user.username_already_in_use`, 422 `session.invalid_credentials`, 401 `user.suspended`,
400 `session.verification_blocked_too_many_attempts`, 404 `entity.not_found`.

What identity asks others: rbac's `ROLE_USER_IDS` (GET /api/users?excludeRoleId=) and
`SET_APPLICATION_ADMIN` / `IS_APPLICATION_ADMIN` (isAdmin); connectors'
`INTERACTION_USER_INFO`, without an interaction, for POST /api/users/:userId/identities.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec
from msgspec import UNSET, UnsetType

from tessera_events.rpc import RpcOperation

IdentifierType = Literal["id", "username", "email", "phone"]


class Identity(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=True):
    """One entry of a user's `identities` (Logto: `{userId, details?}` under the connector target)."""

    user_id: str
    details: dict[str, Any] | None = None


class UserInfo(msgspec.Struct, frozen=True, kw_only=True):
    """Logto's public user (userInfoSelectFields) plus `has_password`; timestamps in ms."""

    id: str
    username: str | None = None
    primary_email: str | None = None
    primary_phone: str | None = None
    name: str | None = None
    avatar: str | None = None
    custom_data: dict[str, Any] = {}
    identities: dict[str, Identity] = {}
    last_sign_in_at: int | None = None
    created_at: int = 0
    application_id: str | None = None
    is_suspended: bool = False
    has_password: bool = False


class FindUserRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Either (`by`, `value`), (`identity_target`, `identity_user_id`) for a social
    identity, or `idempotency_key`: the user a `CreateUserRequest` with that key created."""

    by: IdentifierType | None = None
    value: str | None = None
    identity_target: str | None = None
    identity_user_id: str | None = None
    idempotency_key: str | None = None
    tenant_id: str


class VerifyPasswordRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Check `password` for the user named by (`by`, `value`).

    Lockout: failures are counted per account, whichever identifier names it (and per
    identifier, email lower-cased, for identifiers that match no user); after `100` failures
    within an hour every further attempt fails for 60 minutes with 400
    `session.verification_blocked_too_many_attempts` (`data.retry_after_seconds`), whatever the
    password. The count is atomic across replicas.
    `count_failures=False` skips the lockout (e.g. ForgotPassword's "same password" check, which
    is not a guess). With `client_ip` (the signing-in client's address, the last
    X-Forwarded-For hop the gateway appended) a counted check is also rate limited per address
    and per address and account, before the hash is checked: 429 `request.too_many_requests`
    with `data.retryAfter` (seconds). A suspended user with the right password gets 401 `user.suspended` unless
    `reject_suspended=False`. No user, no password, or a wrong one: 422 `session.invalid_credentials`
    (the same answer and about the same time, so identifiers cannot be enumerated this way).
    """

    by: IdentifierType
    value: str
    password: str
    count_failures: bool = True
    reject_suspended: bool = True
    client_ip: str | None = None
    tenant_id: str


class CreateUserRequest(msgspec.Struct, frozen=True, kw_only=True):
    """A user from a finished registration. `password` is hashed by identity (the regex is
    the caller's to check, as for every new password); `password_digest` with
    `password_algorithm` imports an existing hash instead (Logto's `Argon2i`, or `Argon2id`)."""

    username: str | None = None
    primary_email: str | None = None
    primary_phone: str | None = None
    password: str | None = None
    password_digest: str | None = None
    password_algorithm: Literal["Argon2i", "Argon2id"] | None = None
    name: str | None = None
    avatar: str | None = None
    custom_data: dict[str, Any] = {}
    identities: dict[str, Identity] = {}
    application_id: str | None = None
    last_sign_in_at: int | None = None  # ms; registration signs the user in
    # The same key again answers the user created the first time (a caller retrying after
    # a lost reply), without creating another or announcing it twice.
    idempotency_key: str | None = None
    tenant_id: str


class UpdateUserRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Unset fields stay as they are; `None` clears a nullable field.

    `identities` are merged into the user's (a target given replaces that target);
    `custom_data` is merged key by key; `password` is hashed by identity, or
    `password_digest` (with `password_algorithm`, e.g. from HASH_PASSWORD) is stored as is.
    """

    user_id: str
    username: str | None | UnsetType = UNSET
    primary_email: str | None | UnsetType = UNSET
    primary_phone: str | None | UnsetType = UNSET
    name: str | None | UnsetType = UNSET
    avatar: str | None | UnsetType = UNSET
    custom_data: dict[str, Any] | UnsetType = UNSET
    identities: dict[str, Identity] | UnsetType = UNSET
    password: str | UnsetType = UNSET
    password_digest: str | UnsetType = UNSET
    password_algorithm: Literal["Argon2i", "Argon2id"] | UnsetType = UNSET
    application_id: str | None | UnsetType = UNSET
    last_sign_in_at: int | None | UnsetType = UNSET
    tenant_id: str


class HashPasswordRequest(msgspec.Struct, frozen=True, kw_only=True):
    """Hash a new `password` (checked against Logto's password rule: 400 `guard.invalid_input`).
    With `compare_with_user_id`, also say whether it is that user's current password (a
    ForgotPassword reset may not keep it); this check counts no failures."""

    password: str
    compare_with_user_id: str | None = None
    tenant_id: str


class PasswordHash(msgspec.Struct, frozen=True, kw_only=True):
    digest: str  # PHC string, e.g. `$argon2id$v=19$m=19456,t=2,p=1$...`
    algorithm: Literal["Argon2i", "Argon2id"]
    same_as_current: bool = False


class ApplicationRequest(msgspec.Struct, frozen=True, kw_only=True):
    application_id: str
    tenant_id: str


class ApplicationClient(msgspec.Struct, frozen=True, kw_only=True):
    """What other services need to know about a client; the secret stays in identity."""

    id: str
    name: str
    type: Literal["Native", "SPA", "Traditional", "MachineToMachine"]
    description: str | None = None
    redirect_uris: list[str] = []
    post_logout_redirect_uris: list[str] = []
    logo_uri: str | None = None
    custom_client_metadata: dict[str, Any] = {}
    created_at: int = 0


class UserCountsRequest(msgspec.Struct, frozen=True, kw_only=True):
    """`windows`: `[since, until)` pairs in epoch milliseconds."""

    windows: list[tuple[int, int]] = []
    tenant_id: str


class UserCounts(msgspec.Struct, frozen=True, kw_only=True):
    """`created`: the users created in each window (existing now), in the request's order."""

    total: int
    created: list[int]


FIND_USER = RpcOperation("identity", "find_user", FindUserRequest, UserInfo | None)
VERIFY_PASSWORD = RpcOperation("identity", "verify_password", VerifyPasswordRequest, UserInfo)
CREATE_USER = RpcOperation("identity", "create_user", CreateUserRequest, UserInfo)
UPDATE_USER = RpcOperation("identity", "update_user", UpdateUserRequest, UserInfo)
HASH_PASSWORD = RpcOperation("identity", "hash_password", HashPasswordRequest, PasswordHash)
APPLICATION_CLIENT = RpcOperation("identity", "application_client", ApplicationRequest, ApplicationClient | None)
USER_COUNTS = RpcOperation("identity", "user_counts", UserCountsRequest, UserCounts)

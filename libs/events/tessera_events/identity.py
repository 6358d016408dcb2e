"""Events published by the identity service (users, applications, tokens).

Never a password or a password hash in an event.
"""

from __future__ import annotations

from typing import Any, Literal

import msgspec

from tessera_events.catalogue import event
from tessera_events.envelope import EventData


class UserSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """The public profile of a user, as other services may keep it in a read model
    (Logto's user info without identities, whose details may hold provider tokens)."""

    id: str
    username: str | None = None
    primary_email: str | None = None
    primary_phone: str | None = None
    name: str | None = None
    avatar: str | None = None
    custom_data: dict[str, Any] = {}
    application_id: str | None = None
    is_suspended: bool = False
    last_sign_in_at: int | None = None  # ms since the epoch
    created_at: int = 0  # ms since the epoch


@event("identity.user.created", summary="A user was created (management API or registration).")
class UserCreated(EventData):
    user: UserSnapshot
    has_password: bool = False
    application_id: str | None = None
    # Connector targets of the social identities the user was created with.
    identity_targets: list[str] = []


@event("identity.user.updated", summary="Profile fields of a user changed; `changed` names them.")
class UserUpdated(EventData):
    """`changed` holds the snake_case names of the `UserSnapshot` fields whose value changed."""

    user: UserSnapshot
    changed: list[str]


@event("identity.user.deleted", summary="A user and everything identity held for them were removed.")
class UserDeleted(EventData):
    user_id: str


@event("identity.user.suspended", summary="A user was suspended; their sessions and tokens are revoked.")
class UserSuspended(EventData):
    user_id: str


@event("identity.user.unsuspended")
class UserUnsuspended(EventData):
    """A suspended user may sign in again."""

    user_id: str


@event("identity.user.password_changed")
class UserPasswordChanged(EventData):
    """A user's password was set or changed (the hash never leaves identity)."""

    user_id: str


@event("identity.user.sessions_revoked")
class UserSessionsRevoked(EventData):
    """Every session, grant, refresh token and opaque access token of a user was revoked at
    once, in the transaction of the change named by `reason` (`password_changed`: RFC 9700
    §4.14.2, ASVS V3.3.3). JWT access tokens already issued live until their `exp`."""

    user_id: str
    reason: str
    session_ids: list[str] = []
    grant_ids: list[str] = []


@event("identity.user.identity_linked")
class UserIdentityLinked(EventData):
    """A social identity was linked to a user (`target` is the connector target)."""

    user_id: str
    target: str
    identity_user_id: str


@event("identity.user.identity_unlinked")
class UserIdentityUnlinked(EventData):
    """A social identity was unlinked from a user."""

    user_id: str
    target: str


ApplicationType = Literal["Native", "SPA", "Traditional", "MachineToMachine"]


class ApplicationSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """An application as other services may keep it; never its client secret."""

    id: str
    name: str
    type: ApplicationType
    description: str | None = None
    oidc_client_metadata: dict[str, Any] = {}
    custom_client_metadata: dict[str, Any] = {}
    created_at: int = 0  # ms since the epoch


@event("identity.application.created")
class ApplicationCreated(EventData):
    """An application (OIDC client) was created. Its secret is not in the event."""

    application: ApplicationSnapshot


@event("identity.application.updated")
class ApplicationUpdated(EventData):
    """Fields of an application changed; `changed` names them (snake_case; `secret` when
    the secret was replaced, without its value)."""

    application: ApplicationSnapshot
    changed: list[str]


@event("identity.application.deleted")
class ApplicationDeleted(EventData):
    """An application was deleted."""

    application_id: str


GrantType = Literal["authorization_code", "refresh_token", "client_credentials"]
TokenKind = Literal["AccessToken", "RefreshToken", "IdToken"]


@event("identity.token.issued")
class TokenIssued(EventData):
    """The token endpoint answered a grant (Logto's `ExchangeTokenBy.*` log)."""

    grant_type: GrantType
    application_id: str
    user_id: str | None = None
    session_id: str | None = None
    token_types: list[TokenKind] = []
    scope: str | None = None
    resource: str | None = None
    grant_id: str | None = None
    # The authorization code's interaction (Logto's `interactionId`), for code exchanges.
    interaction_id: str | None = None


@event("identity.token.exchange_failed")
class TokenExchangeFailed(EventData):
    """The token endpoint refused a grant."""

    grant_type: str
    error: str
    application_id: str | None = None
    error_description: str | None = None
    user_id: str | None = None


@event("identity.token.revoked")
class TokenRevoked(EventData):
    """A token (and what was issued with it) was revoked (Logto's `RevokeToken` log)."""

    application_id: str
    user_id: str | None = None
    grant_id: str | None = None
    token_types: list[TokenKind] = []
    reason: str = "revocation"


@event("identity.interaction.started")
class InteractionStarted(EventData):
    """The authorization endpoint needs the user (or their consent): an OIDC interaction
    began (oidc-provider's `interaction.started`, Logto's `Interaction.Create` log).

    `params` is the authorization request as received; `prompt` what it waits for
    ({name, reasons, details}); `session_id`/`user_id` the browser's current session, if any.
    """

    interaction_id: str
    application_id: str
    params: dict[str, str] = {}
    prompt: dict[str, Any] = {}
    session_id: str | None = None
    user_id: str | None = None


@event("identity.interaction.ended")
class InteractionEnded(EventData):
    """An interaction was resumed at `/oidc/auth/:uid`, whatever its outcome
    (oidc-provider's `interaction.ended`, Logto's `Interaction.End` log). `user_id` is who
    signed in, or the session's user."""

    interaction_id: str
    application_id: str
    params: dict[str, str] = {}
    session_id: str | None = None
    user_id: str | None = None


@event("identity.session.started")
class SessionStarted(EventData):
    """A user signed in at the OpenID Provider: a new session (Logto's `Interaction.End`)."""

    user_id: str
    session_id: str
    application_id: str
    interaction_id: str | None = None
    amr: list[str] = []


@event("identity.session.ended")
class SessionEnded(EventData):
    """A user's session ended (logout, suspension or deletion)."""

    user_id: str
    session_id: str
    reason: str = "logout"


JsonObject = dict[str, Any]

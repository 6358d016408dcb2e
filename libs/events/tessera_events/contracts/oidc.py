"""What identity's OpenID Provider answers over rpc: the interaction seam with experience.

How a sign-in travels (logto-behaviour.md §4.1):
1. `GET /oidc/auth` (identity) validates the authorization request, stores an interaction
   (TTL 1 h) and answers 303 to `/sign-in` (or `/register`, or `/sign-in/consent`) with the
   signed cookie `_interaction` (path `/`, so `/api/interaction*` receives it too): as koa
   signs cookies, the value (the interaction's uid) in `_interaction` and its signature in
   `_interaction.sig`.
2. The sign-in pages call experience, which passes both cookie values *as the browser sent
   them* to these operations; identity checks the signature, so experience needs no secret of
   identity's.
3. When the user is known, experience calls `FINISH_LOGIN`; when the user agreed to what the
   client asks, `GRANT_CONSENT`. Both answer `redirect_to` (`<issuer>/auth/<uid>`), which
   experience hands to the browser (Logto's `{redirectTo}`), and what experience would
   otherwise ask for in calls of its own: `FINISH_LOGIN` records the sign-in time when given
   one and answers the user and the client; `GRANT_CONSENT` answers whose consent it was and
   whether that user has no application yet (Logto remembers the first one consented to).
4. `GET /oidc/auth/<uid>` (identity) creates the session (`_session` cookie), the grant, and
   redirects to the client with `code` and `state` — or, when consent is still missing,
   starts a consent interaction (new uid, new cookie) and redirects to `/sign-in/consent`.

Errors: an unknown, expired or badly signed interaction is 400 `session.not_found` (Logto's
SessionNotFound). Consent before login is 400 `session.not_found` too (Logto asserts the
session). At `FINISH_LOGIN` a user that does not exist is 404 `entity.not_exists_with_id`
and a suspended one 401 `user.suspended` (Logto's codes).
"""

from __future__ import annotations

from typing import Literal

import msgspec

from tessera_events.contracts.identity import ApplicationClient, UserInfo
from tessera_events.rpc import RpcOperation

PromptName = Literal["login", "consent"]


class InteractionRef(msgspec.Struct, frozen=True, kw_only=True):
    """Names an interaction by the `_interaction` cookie value the browser sent."""

    interaction_cookie: str
    interaction_signature: str = ""  # the `_interaction.sig` cookie
    tenant_id: str


class Prompt(msgspec.Struct, frozen=True, kw_only=True):
    """What the interaction is waiting for (oidc-provider's `prompt`).

    `reasons`: e.g. `no_session`, `login_prompt`, `max_age`, `op_scopes_missing`,
    `rs_scopes_missing`, `consent_prompt`.
    `missing_oidc_scope` / `missing_resource_scopes` (consent only): what the grant lacks,
    the resource scopes keyed by resource indicator.
    """

    name: PromptName
    reasons: list[str] = []
    missing_oidc_scope: list[str] = []
    missing_resource_scopes: dict[str, list[str]] = {}


class InteractionDetails(msgspec.Struct, frozen=True, kw_only=True):
    uid: str
    client_id: str
    # The authorization request as received (client_id, redirect_uri, scope, state, prompt,
    # resource (space-joined when repeated), ui_locales, interaction_mode, login_hint ...).
    params: dict[str, str]
    prompt: Prompt
    # The user of the browser's current OIDC session, if it has one.
    session_account_id: str | None = None
    # Results already submitted on this interaction.
    login_account_id: str | None = None
    consent_granted: bool = False
    expires_at: int = 0  # ms since the epoch


class FinishLogin(msgspec.Struct, frozen=True, kw_only=True):
    """The user is identified (Logto's `interactionResult({login: {accountId}})`)."""

    interaction_cookie: str
    interaction_signature: str = ""  # the `_interaction.sig` cookie
    account_id: str
    # Authentication methods used, for the session (e.g. ["pwd"], ["otp"], ["social"]).
    amr: list[str] = []
    tenant_id: str
    # ms since the epoch: also record it as the user's last sign-in, in the same transaction
    # (a sign-in that changes nothing else of the user needs no UPDATE_USER call).
    last_sign_in_at: int | None = None


class GrantConsent(msgspec.Struct, frozen=True, kw_only=True):
    """The user agrees to everything the interaction's prompt lists as missing
    (Logto's `POST /api/interaction/consent`)."""

    interaction_cookie: str
    interaction_signature: str = ""  # the `_interaction.sig` cookie
    tenant_id: str


class AbortInteraction(msgspec.Struct, frozen=True, kw_only=True):
    """The user gave up (Logto's `DELETE /api/interaction`): the client gets `error`."""

    interaction_cookie: str
    interaction_signature: str = ""  # the `_interaction.sig` cookie
    error: str = "access_denied"
    error_description: str = "End-User aborted interaction"
    tenant_id: str


class Redirect(msgspec.Struct, frozen=True, kw_only=True):
    """Where the browser goes next: `<issuer>/auth/<uid>`."""

    redirect_to: str


class LoginFinished(Redirect, frozen=True, kw_only=True):
    """`FINISH_LOGIN`'s answer. `user`: as it stands after the login (None from an identity
    older than these fields); `application`: the interaction's client, None if unknown."""

    user: UserInfo | None = None
    application: ApplicationClient | None = None


class ConsentGranted(Redirect, frozen=True, kw_only=True):
    """`GRANT_CONSENT`'s answer: whose consent it was (None from an identity older than these
    fields), for which client, and whether that user has no application yet."""

    account_id: str | None = None
    client_id: str | None = None
    first_application: bool = False


INTERACTION_DETAILS = RpcOperation("identity", "interaction_details", InteractionRef, InteractionDetails)
FINISH_LOGIN = RpcOperation("identity", "finish_login", FinishLogin, LoginFinished)
GRANT_CONSENT = RpcOperation("identity", "grant_consent", GrantConsent, ConsentGranted)
ABORT_INTERACTION = RpcOperation("identity", "abort_interaction", AbortInteraction, Redirect)

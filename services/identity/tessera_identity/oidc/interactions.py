"""The rpc the sign-in experience calls on an interaction (contracts/oidc.py).

The experience passes the `_interaction` cookie value as the browser sent it; its signature
is checked here, so only the browser that started the authorization can finish it.
"""

from __future__ import annotations

import time
from typing import Any

from tessera_events.contracts.oidc import (
    ABORT_INTERACTION,
    FINISH_LOGIN,
    GRANT_CONSENT,
    INTERACTION_DETAILS,
    AbortInteraction,
    ConsentGranted,
    FinishLogin,
    GrantConsent,
    InteractionDetails,
    InteractionRef,
    LoginFinished,
    Prompt,
    Redirect,
)
from tessera_identity.applications import store as applications
from tessera_identity.applications.domain import client as application_client
from tessera_identity.oidc import store
from tessera_identity.oidc.authorize import INTERACTION_COOKIE
from tessera_identity.oidc.provider import Provider
from tessera_identity.users import store as users
from tessera_identity.users.domain import user_info
from tessera_kit.errors import RequestError, not_found
from tessera_kit.rpc import RpcHandler


def _session_not_found() -> RequestError:
    # Logto: oidc-provider's SessionNotFound becomes 400 `session.not_found`.
    return RequestError("session.not_found", 400)


class InteractionRpc:
    def __init__(self, provider: Provider) -> None:
        self.provider = provider

    def _uid(self, request: InteractionRef | FinishLogin | GrantConsent | AbortInteraction) -> str:
        uid = self.provider.cookies.verify(INTERACTION_COOKIE, request.interaction_cookie, request.interaction_signature)
        if uid is None or request.tenant_id != self.provider.tenant_id:
            raise _session_not_found()
        return uid

    async def _update(self, request: FinishLogin | GrantConsent | AbortInteraction, change) -> tuple[str, Any]:
        """(where the browser goes next, what `change` answered), `change` applied to the
        interaction's result under its row lock."""
        uid = self._uid(request)
        async with self.provider.pool.acquire() as conn, conn.transaction():
            row = await store.find_interaction(conn, self.provider.tenant_id, uid, lock=True)
            if row is None:
                raise _session_not_found()
            result: dict[str, Any] = dict(row["result"] or {})
            answer = await change(conn, row, result)
            await store.set_interaction_result(conn, uid, result)
        return f"{self.provider.issuer}/auth/{uid}", answer

    async def details(self, request: InteractionRef) -> InteractionDetails:
        uid = self._uid(request)
        row = await store.find_interaction(self.provider.pool, self.provider.tenant_id, uid)
        if row is None:
            raise _session_not_found()
        prompt = row["prompt"]
        result = row["result"] or {}
        params = dict(row["params"].get("raw") or {})
        return InteractionDetails(
            uid=uid, client_id=row["client_id"], params=params,
            prompt=Prompt(name=prompt["name"], reasons=prompt.get("reasons", []),
                          missing_oidc_scope=prompt.get("missing_oidc_scope", []),
                          missing_resource_scopes=prompt.get("missing_resource_scopes", {})),
            session_account_id=row["session_account_id"],
            login_account_id=(result.get("login") or {}).get("account_id"),
            consent_granted=bool(result.get("consent")),
            expires_at=int(row["expires_at"].timestamp() * 1000),
        )

    async def finish_login(self, request: FinishLogin) -> LoginFinished:
        """The login, the user's last sign-in time (when given; a quiet field, announced by no
        event) and what the experience's sign-in event tells of the user and the client: one
        call and one statement where there were three calls and a transaction."""
        uid = self._uid(request)
        login = {"account_id": request.account_id, "amr": list(request.amr), "ts": time.time()}
        signed_in_at = users.from_ms(request.last_sign_in_at) if request.last_sign_in_at is not None else None
        row = await store.finish_login(self.provider.pool, self.provider.tenant_id, uid, request.account_id,
                                       signed_in_at, login)
        if not row["found"]:
            raise _session_not_found()
        if row["suspended"] is None:
            raise not_found("users", request.account_id)
        if row["suspended"]:
            raise RequestError("user.suspended", 401)
        application = row["application"]
        return LoginFinished(redirect_to=f"{self.provider.issuer}/auth/{uid}", user=user_info(row["user"]),
                             application=application_client(application) if application else None)

    async def grant_consent(self, request: GrantConsent) -> ConsentGranted:
        # One statement. Logto asserts a signed-in user before consent: an interaction without
        # one is not found, as one that is gone.
        uid = self._uid(request)
        row = await store.grant_consent(self.provider.pool, self.provider.tenant_id, uid)
        if row is None:
            raise _session_not_found()
        return ConsentGranted(redirect_to=f"{self.provider.issuer}/auth/{uid}", account_id=row["account_id"],
                              client_id=row["client_id"], first_application=bool(row["first_application"]))

    async def abort(self, request: AbortInteraction) -> Redirect:
        async def change(conn, row, result):
            result.clear()
            result["error"] = request.error
            result["error_description"] = request.error_description

        redirect_to, _ = await self._update(request, change)
        return Redirect(redirect_to=redirect_to)

    def handlers(self) -> list[RpcHandler]:
        return [
            RpcHandler(INTERACTION_DETAILS, self.details),
            RpcHandler(FINISH_LOGIN, self.finish_login),
            RpcHandler(GRANT_CONSENT, self.grant_consent),
            RpcHandler(ABORT_INTERACTION, self.abort),
        ]

"""Sending and checking verification codes, for the interaction API (codes of an
interaction and its event) and the management API (Generic codes of a recipient).

A code is sent through the connectors service (`rpc.connectors.send_message`); the rate
limits (settings.py) are counted first, and given back when the message was never sent, so
a provider that fails leaves the user free to ask again at once.
"""

from __future__ import annotations

from typing import Any

from tessera_events.contracts.connectors import SEND_MESSAGE, SendMessageRequest
from tessera_experience import connectors
from tessera_experience.verification_codes import domain, store
from tessera_experience.verification_codes.settings import CodeLimits, CodeSettings
from tessera_experience.verification_codes.settings import load as load_settings
from tessera_kit.app import ServiceContext
from tessera_kit.context import current_tenant
from tessera_kit.errors import RequestError
from tessera_kit.ids import new_id
from tessera_kit.ratelimit import RateLimiter

EXTRA = "verification_codes"


def install(ctx: ServiceContext, settings: CodeSettings | None = None) -> None:
    """At start-up: the limits (from the environment unless given) and the limiter."""
    ctx.extras[EXTRA] = (CodeLimits.of(settings or load_settings()), RateLimiter(ctx.pool))


class VerificationCodes:
    def __init__(self, ctx: ServiceContext) -> None:
        self.ctx = ctx
        self.tenant = current_tenant()
        self.limits: CodeLimits
        self.limiter: RateLimiter
        self.limits, self.limiter = ctx.extras[EXTRA]

    async def send(self, *, interaction_uid: str | None, type_: str, target: dict[str, str],
                   ip: str | None) -> str:
        """A new code for `target` (`{email}` or `{phone}`), sent with the template `type_`;
        answers the id of the connector that sent it."""
        kind, value = next(iter(target.items()))
        recipient = domain.recipient_key(self.tenant, kind, value)
        counted = ((self.limits.resend_cooldown, recipient), (self.limits.send_quota, recipient),
                   (self.limits.send_per_ip, f"{self.tenant}\x00{ip}" if ip else None))
        await self.limiter.hit(*counted)
        message_type = "Email" if kind == "email" else "Sms"
        code, code_id = domain.new_code(), new_id()
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            await store.replace(conn, self.tenant, code_id, interaction_uid, type_, target.get("email"),
                                target.get("phone"), domain.digest(code_id, code))
        try:
            sent = await self.ctx.call(SEND_MESSAGE, SendMessageRequest(
                type=message_type, to=value, template=type_, payload={"code": code}, tenant_id=self.tenant,
            ))
        except RequestError as error:
            # Never sent: not a reason to make the user wait.
            await self.limiter.give_back(*counted)
            if error.code == "service.unavailable" and message_type not in await connectors.connector_types(
                    self.ctx.pool, self.tenant):
                # No connectors service, hence no connector: what Logto says without one.
                error = RequestError("connector.not_found", 400, type=message_type)
            if error.code != "connector.not_found":
                # A provider that failed: the code was never seen, so it is not a valid code.
                # Without a connector Logto keeps it (a guess answers `code_mismatch`, not
                # `not_found`), and its clients rely on that.
                await store.delete(self.ctx.pool, self.tenant, code_id)
            raise error
        return sent.connector_id

    async def verify(self, *, interaction_uid: str | None, type_: str, kind: str, value: str, code: str,
                     ip: str | None) -> None:
        """Logto's passcode check (§4.4); a wrong code counts as a try although the request fails."""
        recipient = domain.recipient_key(self.tenant, kind, value)
        await self.limiter.hit((self.limits.verify_per_ip, f"{self.tenant}\x00{ip}" if ip else None),
                               (self.limits.verify_per_recipient, recipient))
        email, phone = (value, None) if kind == "email" else (None, value)
        failure: RequestError | None = None
        async with self.ctx.pool.acquire() as conn, conn.transaction():
            row: dict[str, Any] | None = await store.latest(conn, self.tenant, interaction_uid, type_, email, phone)
            if row is None:
                failure = RequestError("verification_code.not_found", 400)
            elif kind == "phone" and row["phone"] != value:
                failure = RequestError("verification_code.phone_mismatch", 400)
            elif kind == "email" and row["email"] != value:
                failure = RequestError("verification_code.email_mismatch", 400)
            elif row["expired"]:
                failure = RequestError("verification_code.expired", 400)
            elif row["try_count"] >= domain.MAX_TRIES:
                failure = RequestError("verification_code.exceed_max_try", 400)
            elif not domain.matches(row["id"], row["code_digest"], code):
                await store.count_failed_try(conn, self.tenant, row["id"])
                failure = RequestError("verification_code.code_mismatch", 400)
            else:
                await store.consume(conn, self.tenant, row["id"])
        if failure is not None:
            raise failure




"""The `Interaction.*` log entries of one request (Logto §9.1, §9.2), as events.

A route creates its entries as it goes (Logto's `createLog`) and fills their payloads. On
success they are written with the request's change, in its transaction; when the request
fails they are written on their own, each with `result: "Error"` and the error, because a
failed attempt is exactly what an audit log is for. Passwords are masked before anything
leaves the process.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tessera_events.experience import InteractionStep
from tessera_experience.interaction.domain import mask_passwords
from tessera_kit.errors import RequestError


@dataclass(frozen=True)
class Caller:
    """Who is on the other end: the `_interaction` cookie (value and koa signature), and what
    the log keeps about them."""

    cookie: str | None
    cookie_signature: str | None = None
    ip: str | None = None
    user_agent: str | None = None


@dataclass
class StepLog:
    caller: Caller
    interaction_id: str
    entries: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    user_ids: dict[int, str] = field(default_factory=dict)
    written: bool = False

    def create(self, key: str) -> dict[str, Any]:
        """A new entry under `key`; returns its payload to fill in."""
        payload: dict[str, Any] = {}
        self.entries.append((key, payload))
        return payload

    def set_user(self, payload: dict[str, Any], user_id: str) -> None:
        for index, (_, entry) in enumerate(self.entries):
            if entry is payload:
                self.user_ids[index] = user_id

    def events(self, error: BaseException | None = None) -> list[InteractionStep]:
        steps = []
        for index, (key, payload) in enumerate(self.entries):
            extra = {k: v for k, v in payload.items() if v is not None}
            extra.update({"ip": self.caller.ip, "userAgent": self.caller.user_agent})
            user_id = self.user_ids.get(index)
            if user_id:
                extra["userId"] = user_id
            steps.append(InteractionStep(
                log_key=key,
                interaction_id=self.interaction_id,
                result="Error" if error is not None else "Success",
                user_id=user_id,
                payload=mask_passwords(extra),
                error=describe(error) if error is not None else None,
            ))
        return steps


def describe(error: BaseException) -> dict[str, Any]:
    if isinstance(error, RequestError):
        described: dict[str, Any] = {"message": error.message, "code": error.code}
        if error.data is not None:
            described["data"] = mask_passwords(error.data)
        return described
    return {"message": f"{type(error).__name__}: {error}"}

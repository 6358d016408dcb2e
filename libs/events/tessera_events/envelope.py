"""The envelope every domain event travels in (DESIGN.md, "Subjects").

An event's subject is its `type` (`identity.user.created`), prefixed by the
deployment namespace on the wire. `data` is the versioned payload struct of that
type; readers decode the envelope with `data` left raw, then decode `data` with the
struct registered for (`type`, `version`), so a consumer that only stores events
(audit-log) never needs to know every payload.
"""

from __future__ import annotations

from typing import Literal

import msgspec

ActorType = Literal["user", "application", "system"]


class Actor(msgspec.Struct, frozen=True, omit_defaults=True):
    """Who caused the event: a user, an application (client id) or the system."""

    type: ActorType
    id: str | None = None


SYSTEM = Actor(type="system")


class Envelope(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    type: str
    version: int
    tenant_id: str
    occurred_at: int  # ms since the epoch
    actor: Actor
    request_id: str | None = None
    data: msgspec.Raw = msgspec.Raw(b"{}")


class EventData(msgspec.Struct, frozen=True, kw_only=True, omit_defaults=False):
    """Base of every event payload. Subclasses are registered with `event()`."""


_envelope_decoder = msgspec.json.Decoder(Envelope)


def decode_envelope(payload: bytes) -> Envelope:
    return _envelope_decoder.decode(payload)

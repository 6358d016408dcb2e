"""Events published by the webhook-dispatcher (hooks and their deliveries).

Never a hook's signing key nor its custom headers (they may hold the receiver's credentials).
Delivery events carry the body that was sent and the receiver's answer, so audit-log can
keep Logto's `TriggerHook.<event>` log entries.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tessera_events.catalogue import event
from tessera_events.envelope import EventData


class HookSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A hook without its secrets: `url` is its configured URL."""

    id: str
    name: str
    event: str | None = None
    events: list[str] = []
    url: str
    enabled: bool = True
    created_at: int = 0  # ms since the epoch


@event("webhooks.hook.created")
class HookCreated(EventData):
    """A hook was created."""

    hook: HookSnapshot


@event("webhooks.hook.updated")
class HookUpdated(EventData):
    """A hook changed; `changed` names the fields (camelCase, as in the API; `signingKey` when
    the key was replaced, without its value)."""

    hook: HookSnapshot
    changed: list[str]


@event("webhooks.hook.deleted")
class HookDeleted(EventData):
    """A hook was deleted, with its pending deliveries."""

    hook_id: str


@event("webhooks.hook.disabled")
class HookDisabled(EventData):
    """A hook whose deliveries failed without a success since `failing_since` (ms) was disabled."""

    hook_id: str
    failing_since: int


class AttemptFacts(msgspec.Struct, frozen=True, kw_only=True):
    """One attempt of a delivery: what was sent and what came back."""

    delivery_id: str
    attempt_id: str
    hook_id: str
    event: str  # the hook event, e.g. PostSignIn
    attempt: int  # 1 for the first
    request_body: dict[str, Any]
    # Logto's `{statusCode, body}` when the receiver answered.
    response: dict[str, Any] | None = None


@event("webhooks.delivery.succeeded")
class DeliverySucceeded(EventData):
    """A receiver answered a delivery attempt with a 2xx."""

    attempt: AttemptFacts


@event("webhooks.delivery.failed")
class DeliveryFailed(EventData):
    """A delivery attempt failed; `next_attempt_at` (ms) is when it is tried again, None if never."""

    attempt: AttemptFacts
    error: str
    next_attempt_at: int | None = None


@event("webhooks.delivery.exhausted")
class DeliveryExhausted(EventData):
    """A delivery failed at every attempt it was allowed; it will not be tried again by itself."""

    delivery_id: str
    hook_id: str
    event: str
    attempts: int

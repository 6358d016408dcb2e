"""What the dispatcher consumes: each event that selects hooks becomes one delivery per hook,
written in the transaction that consumes the event (with the inbox row), so none is lost."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from tessera_events import STREAMS, Envelope
from tessera_events.epoch_ms import from_ms
from tessera_kit.consumer import Subscription
from tessera_webhook_dispatcher.deliveries import store as deliveries
from tessera_webhook_dispatcher.deliveries.domain import RETRY_DELAYS
from tessera_webhook_dispatcher.hooks import store as hooks
from tessera_webhook_dispatcher.hooks.domain import (
    DATA_EVENT_SOURCES,
    INTERACTION_HOOKS,
    RBAC_EVENT_SOURCES,
    data_hook,
    data_payload,
    interaction_payload,
    max_attempts,
    with_hook_id,
)


def subscriptions(channel: str, clock) -> list[Subscription]:
    """The consumers, with the NOTIFY channel that wakes the scheduler and the clock that
    stamps new deliveries due."""

    async def enqueue(conn: asyncpg.Connection, envelope: Envelope, hook_event: str, payload: dict[str, Any]) -> None:
        selected = await hooks.hooks_for(conn, envelope.tenant_id, hook_event)
        if selected:
            await deliveries.insert_deliveries(
                conn, envelope.tenant_id, hook_ids=[h["id"] for h in selected],
                bodies=[with_hook_id(h["id"], payload) for h in selected],
                max_attempts=[max_attempts(h["config"], len(RETRY_DELAYS)) for h in selected],
                event=hook_event, source_event_id=envelope.id, now=clock.now(), channel=channel,
            )

    async def on_interaction(conn: asyncpg.Connection, envelope: Envelope) -> None:
        hook_event = INTERACTION_HOOKS.get(envelope.type)
        if hook_event is None:
            return
        data = msgspec.json.decode(envelope.data)
        await enqueue(conn, envelope, hook_event, interaction_payload(hook_event, data, from_ms(envelope.occurred_at)))

    async def on_data(conn: asyncpg.Connection, envelope: Envelope) -> None:
        found = data_hook(envelope.type, msgspec.json.decode(envelope.data))
        if found is None:
            return
        hook_event, data = found
        await enqueue(conn, envelope, hook_event, data_payload(hook_event, data, from_ms(envelope.occurred_at)))

    return [
        Subscription("webhook-dispatcher-interactions", (STREAMS["experience"],), on_interaction,
                     event_types=tuple(INTERACTION_HOOKS), statement=no_hook_statement),
        Subscription("webhook-dispatcher-identity", (STREAMS["identity"],), on_data, event_types=DATA_EVENT_SOURCES,
                     statement=no_hook_statement),
        Subscription("webhook-dispatcher-rbac", (STREAMS["rbac"],), on_data, event_types=RBAC_EVENT_SOURCES,
                     statement=no_hook_statement),
    ]


def hook_event_of(envelope: Envelope) -> str | None:
    """The hook event an event becomes (Logto §6.1), if any."""
    hook_event = INTERACTION_HOOKS.get(envelope.type)
    if hook_event is not None:
        return hook_event
    found = data_hook(envelope.type, msgspec.json.decode(envelope.data))
    return found[0] if found else None


def no_hook_statement(envelopes: list[Envelope], first: int) -> tuple[list[str], list, str]:
    """The common case, no enabled hook selects these events: their inbox rows are all there
    is to write, one statement with the check (tessera_kit.consumer, Subscription.statement).
    When a hook does select one, nothing is written and the handlers make the deliveries in
    their transaction, as without this."""
    selecting = [(e.tenant_id, hook_event) for e in envelopes if (hook_event := hook_event_of(e)) is not None]
    return [], [[t for t, _ in selecting], [h for _, h in selecting]], hooks.NO_HOOK_SELECTS.format(
        tenants=f"${first}", events=f"${first + 1}")

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
from tessera_webhook_dispatcher.deliveries.domain import RETRY_DELAYS, NewDelivery
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


# An event a hook may select: (the event, its hook event, the body without `hookId`).
HookCall = tuple[Envelope, str, dict[str, Any]]


def subscriptions(channel: str, clock) -> list[Subscription]:
    """The consumers, with the NOTIFY channel that wakes the scheduler and the clock that
    stamps new deliveries due. A batch of events costs two statements in its transaction
    (the hooks that select them, their deliveries), whatever its size."""

    async def enqueue(conn: asyncpg.Connection, calls: list[HookCall]) -> None:
        """A delivery per hook that selects an event."""
        if not calls:
            return
        selected = await hooks.hooks_selecting(conn, ((e.tenant_id, hook_event) for e, hook_event, _ in calls))
        new = [
            NewDelivery(tenant_id=envelope.tenant_id, hook_id=hook["id"], event=hook_event,
                        source_event_id=envelope.id, body=with_hook_id(hook["id"], payload),
                        max_attempts=max_attempts(hook["config"], len(RETRY_DELAYS)))
            for envelope, hook_event, payload in calls
            for hook in selected.get((envelope.tenant_id, hook_event), ())
        ]
        if new:
            await deliveries.insert_deliveries(conn, new, now=clock.now(), channel=channel)

    async def on_events(conn: asyncpg.Connection, envelopes: list[Envelope]) -> None:
        await enqueue(conn, [call for envelope in envelopes if (call := hook_call_of(envelope)) is not None])

    async def on_event(conn: asyncpg.Connection, envelope: Envelope) -> None:
        await on_events(conn, [envelope])

    return [
        Subscription("webhook-dispatcher-interactions", (STREAMS["experience"],), on_event,
                     event_types=tuple(INTERACTION_HOOKS), batch_handler=on_events, statement=no_hook_statement),
        Subscription("webhook-dispatcher-identity", (STREAMS["identity"],), on_event, event_types=DATA_EVENT_SOURCES,
                     batch_handler=on_events, statement=no_hook_statement),
        Subscription("webhook-dispatcher-rbac", (STREAMS["rbac"],), on_event, event_types=RBAC_EVENT_SOURCES,
                     batch_handler=on_events, statement=no_hook_statement),
    ]


def hook_call_of(envelope: Envelope) -> HookCall | None:
    """An event as (the event, its hook event, the body without `hookId`), if it is one a hook
    may select: an interaction (Logto §6.1), or a later Logto's data hook."""
    data = msgspec.json.decode(envelope.data)
    hook_event = INTERACTION_HOOKS.get(envelope.type)
    if hook_event is not None:
        return envelope, hook_event, interaction_payload(hook_event, data, from_ms(envelope.occurred_at))
    found = data_hook(envelope.type, data)
    if found is None:
        return None
    hook_event, data = found
    return envelope, hook_event, data_payload(hook_event, data, from_ms(envelope.occurred_at))


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

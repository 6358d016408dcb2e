"""The audit-log's subscription: every event of every stream becomes a log entry."""

from __future__ import annotations

import asyncpg

from tessera_audit_log import store
from tessera_audit_log.domain import LogEntry, is_user_activity, log_entry_for
from tessera_events import STREAMS, Envelope
from tessera_kit.consumer import Subscription


async def record(conn: asyncpg.Connection, envelope: Envelope) -> None:
    entry = log_entry_for(envelope)
    await store.insert_log(conn, envelope.tenant_id, envelope.id, entry)
    await _count_users(conn, envelope, entry)


async def record_many(conn: asyncpg.Connection, envelopes: list[Envelope]) -> None:
    """A batch: its log entries in one statement, then the user counts event by event."""
    entries = [log_entry_for(envelope) for envelope in envelopes]
    await store.insert_logs(conn, [(e.tenant_id, e.id, entry) for e, entry in zip(envelopes, entries)])
    for envelope, entry in zip(envelopes, entries):
        await _count_users(conn, envelope, entry)


# Events whose user counts the one statement leaves to the handlers (rare: a user created or
# deleted; the active-user days of token events are in it). _count_users tells them by these.
_USER_CREATED = "identity.user.created"
_USER_DELETED = "identity.user.deleted"
_USER_COUNT_EVENTS = frozenset({_USER_CREATED, _USER_DELETED})


def statement(envelopes: list[Envelope], first: int) -> tuple[list[str], list] | None:
    """The log entries and active-user days of these events as one statement with the
    consumer's inbox insert (tessera_kit.consumer, Subscription.statement): one round trip
    per batch, or per lone event, where a transaction took four or five."""
    if any(envelope.type in _USER_COUNT_EVENTS for envelope in envelopes):
        return None
    entries = [log_entry_for(envelope) for envelope in envelopes]
    # Index-aligned with the log rows (the statement pairs them by position through the event
    # id array): an event that is no user activity has a NULL user.
    activity = [(e.tenant_id, entry.created_at.date(), entry.payload["userId"] if is_user_activity(entry) else None)
                for e, entry in zip(envelopes, entries)]
    return store.logs_statement([(e.tenant_id, e.id, entry) for e, entry in zip(envelopes, entries)],
                                activity, first)


async def _count_users(conn: asyncpg.Connection, envelope: Envelope, entry: LogEntry) -> None:
    user_id = entry.payload.get("userId")
    if envelope.type == _USER_CREATED:
        await store.user_created(conn, envelope.tenant_id, user_id, entry.created_at)
    elif envelope.type == _USER_DELETED:
        await store.user_deleted(conn, envelope.tenant_id, user_id, entry.created_at)
    elif is_user_activity(entry):
        await store.user_active(conn, envelope.tenant_id, user_id, entry.created_at.date())


# A busy stream is written ~10 events a statement instead of one, for entries that appear up
# to 20 ms later; a quiet moment's event is written at once (Subscription.gather_seconds).
every_event = Subscription(name="audit-log", streams=tuple(STREAMS.values()), handler=record,
                           batch_handler=record_many, statement=statement, gather_seconds=0.02)

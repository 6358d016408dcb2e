"""rbac's subscription to identity: the read models of users and applications, and the
removal of a deleted user's or application's role links (announced as unassigned events)."""

from __future__ import annotations

import asyncpg

from tessera_events import STREAMS, Envelope, decode_data
from tessera_events.identity import (
    ApplicationCreated,
    ApplicationDeleted,
    ApplicationUpdated,
    UserCreated,
    UserDeleted,
    UserSuspended,
    UserUnsuspended,
    UserUpdated,
)
from tessera_events.rbac import RoleApplicationsUnassigned, RoleUsersUnassigned
from tessera_kit.consumer import Subscription
from tessera_kit.outbox import Outbox, now_ms
from tessera_rbac.directory import store
from tessera_rbac.directory.freshness import IDENTITY_SUBSCRIPTION, SOURCE, LagReporter

IDENTITY_EVENT_TYPES = (
    "identity.user.created",
    "identity.user.updated",
    "identity.user.deleted",
    "identity.user.suspended",
    "identity.user.unsuspended",
    "identity.application.created",
    "identity.application.updated",
    "identity.application.deleted",
)

lag = LagReporter()


async def _outbox(conn: asyncpg.Connection) -> Outbox:
    # The service's schema is first on the connection's search path; the outbox needs it
    # only to wake its relay (NOTIFY channel).
    return Outbox(await conn.fetchval("SELECT current_schema()"))


async def apply_identity_event(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data = decode_data(envelope)
    tenant, at = envelope.tenant_id, envelope.occurred_at
    if isinstance(data, UserCreated):
        await store.save_user(conn, tenant, data.user, at, application_id=data.application_id)
    elif isinstance(data, UserUpdated):
        await store.save_user(conn, tenant, data.user, at)
    elif isinstance(data, (UserSuspended, UserUnsuspended)):
        await store.set_user_suspended(conn, tenant, data.user_id, isinstance(data, UserSuspended), at)
    elif isinstance(data, UserDeleted):
        role_ids = await store.delete_user(conn, tenant, data.user_id, at)
        outbox = await _outbox(conn) if role_ids else None
        for role_id in role_ids:
            await outbox.emit(conn, RoleUsersUnassigned(role_id=role_id, user_ids=[data.user_id], reason="user_deleted"),
                              aggregate_id=role_id, tenant_id=tenant)
    elif isinstance(data, (ApplicationCreated, ApplicationUpdated)):
        await store.save_application(conn, tenant, data.application, at)
    elif isinstance(data, ApplicationDeleted):
        role_ids = await store.delete_application(conn, tenant, data.application_id, at)
        outbox = await _outbox(conn) if role_ids else None
        for role_id in role_ids:
            await outbox.emit(conn, RoleApplicationsUnassigned(
                role_id=role_id, application_ids=[data.application_id], reason="application_deleted",
            ), aggregate_id=role_id, tenant_id=tenant)
    applied_at = now_ms()
    await store.record_progress(conn, SOURCE, envelope.id, at, applied_at)
    lag.applied(applied_at - at)


identity_events = Subscription(
    name=IDENTITY_SUBSCRIPTION,
    streams=(STREAMS["identity"],),
    handler=apply_identity_event,
    event_types=IDENTITY_EVENT_TYPES,
    # Role assignment share-locks directory rows in id order; a batch would lock them in
    # stream order, and the two could deadlock. One event per transaction never holds two.
    max_per_transaction=1,
)

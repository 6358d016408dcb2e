"""Writing rbac's events into the outbox, in the transaction of the change they announce."""

from __future__ import annotations

import asyncpg

from tessera_events import EventData
from tessera_kit.app import ServiceContext
from tessera_kit.context import current_tenant


async def announce(ctx: ServiceContext, conn: asyncpg.Connection, event: EventData, *, aggregate_id: str) -> None:
    await ctx.outbox.emit(conn, event, aggregate_id=aggregate_id, tenant_id=current_tenant())

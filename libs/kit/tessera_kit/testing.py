"""Helpers for service tests that run a service in the test's own event loop, against the
real PostgreSQL and NATS of the test session.

- `started(spec)`: the service's app with its context started (database, migrations, NATS,
  relay, consumers, rpc), stopped on the way out.
- `publisher(...)`: another service's outbox and relay on one stream, so a test publishes
  that service's events exactly as it would (through an outbox, with dedupe ids).
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator

import msgspec
from litestar import Litestar

from tessera_events import Stream
from tessera_kit.app import ServiceContext, ServiceSpec, create_app, start_context, stop_context
from tessera_kit.bus import Bus
from tessera_kit.db import create_pool, migrate
from tessera_kit.outbox import Outbox, OutboxRelay


@asynccontextmanager
async def started(spec: ServiceSpec) -> AsyncIterator[tuple[Litestar, ServiceContext]]:
    app = create_app(spec)
    app.state.ctx = ctx = await start_context(spec)
    try:
        yield app, ctx
    finally:
        await stop_context(spec, ctx)


@dataclass
class Publisher:
    """Stands in for the service that owns `stream`."""

    pool: object
    bus: Bus
    outbox: Outbox

    async def publish(self, *events: msgspec.Struct) -> None:
        """The events, in one transaction, as that service's domain write would emit them."""
        async with self.pool.acquire() as conn, conn.transaction():
            for event in events:
                await self.outbox.emit(conn, event)


@asynccontextmanager
async def publisher(database_url: str, nats_url: str, *, namespace: str, stream: Stream,
                    schema: str) -> AsyncIterator[Publisher]:
    pool = await create_pool(database_url, schema, max_size=4)
    bus = await Bus.connect(nats_url, namespace=namespace)
    relay: OutboxRelay | None = None
    try:
        await migrate(pool, schema, None)
        await bus.ensure_stream(stream)
        outbox = Outbox(schema)
        relay = OutboxRelay(pool, bus, outbox)
        relay.start()
        yield Publisher(pool, bus, outbox)
    finally:
        if relay is not None:
            await relay.stop()
        await bus.close()
        await pool.close()

"""An rbac in the test's loop, on real PostgreSQL and NATS, with an "identity" beside it.

Each test gets its own schema (`rbac_<n>`) and NATS namespace, so tests never see each
other's rows, streams, consumers or rpc subjects. The identity stand-in publishes real
identity events through its own outbox and relay, as identity does.
"""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from tessera_events import STREAMS, Envelope, EventData
from tessera_events.identity import ApplicationCreated, ApplicationSnapshot, UserCreated, UserSnapshot
from tessera_kit.app import ServiceContext, create_app, start_context, stop_context
from tessera_kit.bus import Bus
from tessera_kit.config import ServiceSettings
from tessera_kit.db import create_pool, migrate
from tessera_kit.outbox import Outbox, OutboxRelay
from tessera_rbac.main import build_spec

_count = itertools.count()
ADMIN = {"x-tessera-caller-type": "user", "x-tessera-caller-id": "admin-user"}


@dataclass
class Deployment:
    client: httpx.AsyncClient
    ctx: ServiceContext
    identity_pool: Any
    identity_outbox: Outbox
    namespace: str
    published: int = 0

    async def publish(self, *events: EventData) -> None:
        """Identity commits these events (one transaction); its relay publishes them."""
        async with self.identity_pool.acquire() as conn, conn.transaction():
            for event in events:
                await self.identity_outbox.emit(conn, event)
        self.published += len(events)

    async def applied(self) -> None:
        """Wait until rbac has applied every identity event published so far."""
        for _ in range(1000):
            count = await self.ctx.pool.fetchval(
                "SELECT coalesce(sum(events_applied), 0) FROM read_model_progress"
            )
            if count >= self.published:
                return
            await asyncio.sleep(0.01)
        raise AssertionError(f"rbac applied {count} of {self.published} identity events")

    async def apply_directly(self, envelope: Envelope) -> bool:
        """Hand rbac's identity consumer an envelope as a redelivery would (not via the stream)."""
        consumer = next(c for c in self.ctx.consumers if c.subscription.name == "rbac-directory")
        applied = await consumer.apply(envelope)
        self.published += applied  # counted by read_model_progress like any other
        return applied

    async def users(self, *ids: str, **profile: Any) -> None:
        await self.publish(*[UserCreated(user=UserSnapshot(id=i, **profile)) for i in ids])
        await self.applied()

    async def applications(self, *ids: str, type: str = "MachineToMachine") -> None:  # noqa: A002
        await self.publish(*[ApplicationCreated(application=ApplicationSnapshot(id=i, name=f"app {i}", type=type))
                             for i in ids])
        await self.applied()

    async def events(self, type_: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """rbac's outbox, oldest first: (type, data)."""
        rows = await self.ctx.pool.fetch("SELECT envelope FROM outbox ORDER BY seq")
        found = []
        for row in rows:
            envelope = msgspec.json.decode(row["envelope"], type=Envelope)
            if type_ is None or envelope.type == type_:
                found.append((envelope.type, msgspec.json.decode(envelope.data)))
        return found


@pytest.fixture
async def rbac(database_url, nats_url, namespace):
    ns = f"{namespace}r{next(_count)}"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns)
    base = build_spec(settings)
    spec = type(base)(**{**base.__dict__, "name": f"rbac-{ns}"})
    app = create_app(spec)
    app.state.ctx = ctx = await start_context(spec)
    identity_schema = f"identity_{ns}"
    identity_pool = await create_pool(database_url, identity_schema, max_size=4)
    await migrate(identity_pool, identity_schema, None)
    identity_bus = await Bus.connect(nats_url, namespace=ns)
    await identity_bus.ensure_stream(STREAMS["identity"])
    identity_outbox = Outbox(identity_schema)
    relay = OutboxRelay(identity_pool, identity_bus, identity_outbox)
    relay.start()
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://rbac", headers=ADMIN)
    yield Deployment(client, ctx, identity_pool, identity_outbox, ns)
    await client.aclose()
    await relay.stop()
    await identity_bus.close()
    await identity_pool.close()
    await stop_context(spec, ctx)


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
import pytest

from tessera_events import STREAMS, Actor, Envelope, EventData
from tessera_events.identity import ApplicationCreated, ApplicationSnapshot, UserCreated, UserSnapshot
from tessera_kit.app import ServiceContext
from tessera_kit.config import ServiceSettings
from tessera_kit.testing import outbox_events, Publisher, publisher, service_client, started
from tessera_rbac.main import build_spec

_count = itertools.count()
ADMIN = Actor(type="user", id="admin-user")


@dataclass
class Deployment:
    client: httpx.AsyncClient
    ctx: ServiceContext
    identity: Publisher
    namespace: str
    published: int = 0

    async def publish(self, *events: EventData) -> None:
        """Identity commits these events (one transaction); its relay publishes them."""
        await self.identity.publish(*events)
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
        return await outbox_events(self.ctx.pool, type_=type_)


@pytest.fixture
async def rbac(database_url, nats_url, namespace):
    ns = f"{namespace}r{next(_count)}"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns)
    base = build_spec(settings)
    spec = type(base)(**{**base.__dict__, "name": f"rbac-{ns}"})
    async with started(spec) as (app, ctx), publisher(
        database_url, nats_url, namespace=ns, stream=STREAMS["identity"], schema=f"identity_{ns}"
    ) as identity:
        async with service_client(app, ADMIN, base_url="http://rbac") as client:
            yield Deployment(client, ctx, identity, ns)


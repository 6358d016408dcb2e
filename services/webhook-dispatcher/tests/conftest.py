"""A webhook-dispatcher in the test's loop, on real PostgreSQL and NATS, with real HTTP receivers.

Each test gets its own schema and NATS namespace. An "experience" (and "identity", "rbac")
beside it publishes real events through its own outbox and relay. Receivers are aiohttp
servers on free local ports that record every request and answer as the test says. The
dispatcher's clock is a ManualClock: retries become due when the test moves it.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, AsyncIterator

import httpx
import pytest
from aiohttp import web

from tessera_events import STREAMS, EventData
from tessera_events import Actor
from tessera_kit.app import ServiceContext
from tessera_kit.testing import outbox_events, service_client, Publisher, publisher, started
from tessera_webhook_dispatcher.clock import ManualClock
from tessera_webhook_dispatcher.main import build_spec
from tessera_webhook_dispatcher.settings import DispatcherSettings

_count = itertools.count()
ADMIN = Actor(type="user", id="admin-user")


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """Records requests; answers with `answers` in turn (then 200), each (status, headers, body)."""

    url: str
    requests: list[Received] = field(default_factory=list)
    answers: list[tuple[int, dict[str, str], str]] = field(default_factory=list)
    hold: asyncio.Event | None = None  # while set to an unset Event, requests wait for it
    arrived: asyncio.Condition = field(default_factory=asyncio.Condition)

    async def handle(self, request: web.Request) -> web.Response:
        received = Received({k.lower(): v for k, v in request.headers.items()}, await request.read())
        async with self.arrived:
            self.requests.append(received)
            self.arrived.notify_all()
        if self.hold is not None:
            await self.hold.wait()
        status, headers, body = self.answers.pop(0) if self.answers else (200, {}, '{"ok":true}')
        return web.Response(status=status, headers=headers, text=body)

    async def wait_for(self, count: int, timeout: float = 20.0) -> list[Received]:
        async with self.arrived:
            await asyncio.wait_for(self.arrived.wait_for(lambda: len(self.requests) >= count), timeout)
        return self.requests


@asynccontextmanager
async def receiving() -> AsyncIterator[Receiver]:
    receiver = Receiver(url="")
    app = web.Application()
    app.router.add_post("/{tail:.*}", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # aiohttp exposes the bound port only here
    receiver.url = f"http://127.0.0.1:{port}/hook"
    try:
        yield receiver
    finally:
        if receiver.hold is not None:
            receiver.hold.set()
        await runner.cleanup()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r


@dataclass
class Deployment:
    client: httpx.AsyncClient
    ctx: ServiceContext
    clock: ManualClock
    experience: Publisher
    identity: Publisher
    rbac: Publisher
    namespace: str
    settings: DispatcherSettings

    @property
    def scheduler(self):
        return self.ctx.extras["scheduler"]

    async def create_hook(self, url: str, events: list[str] | None = None, **fields: Any) -> dict[str, Any]:
        body = {"name": "a hook", "events": events or ["PostSignIn"], "config": {"url": url}, **fields}
        response = await self.client.post("/api/hooks", json=body)
        assert response.status_code == 201, response.text
        return response.json()

    async def deliveries(self, hook_id: str) -> list[dict[str, Any]]:
        response = await self.client.get(f"/api/hooks/{hook_id}/deliveries")
        assert response.status_code == 200, response.text
        return response.json()

    async def until(self, condition: Callable[[], Any], timeout: float = 20.0) -> Any:
        """Poll an async condition until it is truthy (no timing is asserted; the timeout only
        bounds a broken test)."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            value = await condition()
            if value:
                return value
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("condition not met")
            await asyncio.sleep(0.02)

    async def settled(self, hook_id: str, attempts: int) -> dict[str, Any]:
        """The hook's only delivery once it has `attempts` recorded attempts."""
        async def check():
            found = await self.deliveries(hook_id)
            return found[0] if found and len(found[0]["attempts"]) >= attempts else None
        return await self.until(check)

    async def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)
        self.scheduler.wake()

    async def events(self, type_: str | None = None) -> list[tuple[str, dict[str, Any]]]:
        """The dispatcher's outbox, oldest first: (type, data)."""
        return await outbox_events(self.ctx.pool, type_=type_)


def dispatcher_settings(database_url: str, nats_url: str, namespace: str, **overrides: Any) -> DispatcherSettings:
    return DispatcherSettings(database_url=database_url, nats_url=nats_url, namespace=namespace,
                              **{"webhooks_allow_private": True, **overrides})


@asynccontextmanager
async def deployment(database_url: str, nats_url: str, namespace: str, **overrides: Any) -> AsyncIterator[Deployment]:
    ns = f"{namespace}w{next(_count)}"
    settings = dispatcher_settings(database_url, nats_url, ns, **overrides)
    clock = ManualClock()
    spec = build_spec(settings, clock=clock, name=f"webhook-dispatcher-{ns}")
    async with started(spec) as (app, ctx), \
            publisher(database_url, nats_url, namespace=ns, stream=STREAMS["experience"],
                      schema=f"experience_{ns}") as experience, \
            publisher(database_url, nats_url, namespace=ns, stream=STREAMS["identity"],
                      schema=f"identity_{ns}") as identity, \
            publisher(database_url, nats_url, namespace=ns, stream=STREAMS["rbac"], schema=f"rbac_{ns}") as rbac:
        async with service_client(app, ADMIN, base_url="http://webhook-dispatcher") as client:
            yield Deployment(client, ctx, clock, experience, identity, rbac, ns, settings)


@pytest.fixture
async def dispatcher(database_url, nats_url, namespace) -> AsyncIterator[Deployment]:
    async with deployment(database_url, nats_url, namespace) as d:
        yield d


@pytest.fixture
async def resting(database_url, nats_url, namespace) -> AsyncIterator[Deployment]:
    """A dispatcher whose pool lets a connection go after 0.5 s unused (db_idle_seconds), and
    whose scheduler reads its clock for the next due delivery every 0.05 s."""
    async with deployment(database_url, nats_url, namespace, db_idle_seconds=0.5, webhooks_poll_seconds=0.05) as d:
        yield d


@pytest.fixture
async def saturated(database_url, nats_url, namespace) -> AsyncIterator[Deployment]:
    """A dispatcher with one slot for attempts in flight, whose scheduler looks on its own
    only every ten minutes: it must be woken to send anything."""
    async with deployment(database_url, nats_url, namespace, webhooks_max_in_flight=1,
                          webhooks_poll_seconds=600) as d:
        yield d


@pytest.fixture
async def guarded(database_url, nats_url, namespace) -> AsyncIterator[Deployment]:
    """A dispatcher with the SSRF guard on (as deployed)."""
    async with deployment(database_url, nats_url, namespace, webhooks_allow_private=False) as d:
        yield d


async def publish(publisher_: Publisher, *events: EventData) -> None:
    await publisher_.publish(*events)


@pytest.fixture
async def second_receiver() -> AsyncIterator[Receiver]:
    async with receiving() as r:
        yield r

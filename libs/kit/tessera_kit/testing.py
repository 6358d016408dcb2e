"""Helpers for service tests that run a service in the test's own event loop, against the
real PostgreSQL and NATS of the test session.

- `started(spec)`: the service's app with its context started (database, migrations, NATS,
  relay, consumers, rpc), stopped on the way out. A spec whose settings have no internal key
  gets a generated one.
- `service_client(app, caller=...)`: an httpx client on the app (ASGI, in this loop) that signs
  every request as the gateway would, for `caller` (the system unless said otherwise);
  `acting_as(actor)` signs one request for another caller. `service_transport` is the same
  transport for clients built elsewhere (an OAuth client, a browser).
- `signed_client(url, internal_key, caller=...)`: the same over the network, for a service
  running as a process (the e2e stack's `service_url`).
- `publisher(...)`: another service's outbox and relay on one stream, so a test publishes
  that service's events exactly as it would (through an outbox, with dedupe ids).
- `sessions_ended(db, pids)`: PostgreSQL sessions whose client has gone are gone from the server
  (its process leaves `pg_stat_activity` moments after the client closed).
- `relays_backend(db, relay)`, `end_the_relays_session(database_url, relay)`: the session holding
  an outbox relay's lock, and its end (as if the server dropped it).
"""

from __future__ import annotations

import asyncio
import dataclasses
import os
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, AsyncIterator

import httpx
import msgspec
from litestar import Litestar

from tessera_events import Envelope, SYSTEM, Actor, Stream
from tessera_kit.app import ServiceContext, ServiceSpec, create_app, start_context, stop_context
from tessera_kit.assertion import ASSERTION_HEADER, CLIENT_IP_HEADER, AssertionSigner, generate_key
from tessera_kit.bus import Bus
from tessera_kit.config import ServiceSettings, load_settings
from tessera_kit.context import new_request_id
from tessera_kit.db import create_pool, migrate
from tessera_kit.outbox import Outbox, OutboxRelay

# One per test process (the devstack plugin's, if it set one): what `started` gives a spec
# without a key.
INTERNAL_KEY = os.environ.get("TESSERA_INTERNAL_KEY") or generate_key()
_CALLER = "tessera_caller"


def with_internal_key(spec: ServiceSpec) -> ServiceSpec:
    settings = spec.settings or load_settings(ServiceSettings)
    if settings.internal_key:
        return spec
    return dataclasses.replace(spec, settings=msgspec.structs.replace(settings, internal_key=INTERNAL_KEY))


@asynccontextmanager
async def started(spec: ServiceSpec) -> AsyncIterator[tuple[Litestar, ServiceContext]]:
    spec = with_internal_key(spec)
    app = create_app(spec)
    app.state.ctx = ctx = await start_context(spec)
    try:
        yield app, ctx
    finally:
        await stop_context(spec, ctx)


def acting_as(actor: Actor) -> dict[str, Any]:
    """`client.get(url, extensions=acting_as(Actor(type="user", id=...)))`: this request only."""
    return {_CALLER: actor}


class SignedTransport(httpx.AsyncBaseTransport):
    """Adds the gateway's assertion (and a request id) to each request, then sends it on."""

    def __init__(self, inner: httpx.AsyncBaseTransport, signer: AssertionSigner, caller: Actor = SYSTEM):
        self._inner = inner
        self._signer = signer
        self._caller = caller

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        request_id = request.headers.get("x-request-id") or new_request_id()
        request.headers["x-request-id"] = request_id
        caller = request.extensions.get(_CALLER, self._caller)
        client = request.headers.get(CLIENT_IP_HEADER.decode(), "").encode()
        request.headers[ASSERTION_HEADER.decode()] = self._signer.sign(
            request.method, request.url.raw_path, caller, request_id.encode(), client=client).decode()
        return await self._inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self._inner.aclose()


def service_transport(app: Litestar, caller: Actor = SYSTEM, *, tenant_id: str | None = None) -> SignedTransport:
    verifier = app.state.assertions  # set by create_app: the service's own key and tenants
    signer = AssertionSigner(verifier.internal_key, tenant_id or verifier.tenant_id)
    return SignedTransport(httpx.ASGITransport(app=app), signer, caller)


def service_client(app: Litestar, caller: Actor = SYSTEM, *, tenant_id: str | None = None,
                   **kwargs: Any) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=service_transport(app, caller, tenant_id=tenant_id), **kwargs)


def signed_client(base_url: str, internal_key: str, caller: Actor = SYSTEM, *, tenant_id: str = "default",
                  **kwargs: Any) -> httpx.AsyncClient:
    transport = SignedTransport(httpx.AsyncHTTPTransport(), AssertionSigner(internal_key, tenant_id), caller)
    return httpx.AsyncClient(base_url=base_url, transport=transport, **kwargs)


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


async def outbox_events(pool, *, prefix: str = "", type_: str | None = None) -> list[tuple[str, Any]]:
    """(type, data) of the events a service wrote to its outbox, oldest first: those whose type
    starts with `prefix`, or is exactly `type_`."""
    rows = await pool.fetch("SELECT envelope FROM outbox ORDER BY seq")
    envelopes = [msgspec.json.decode(row["envelope"], type=Envelope) for row in rows]
    return [(e.type, msgspec.json.decode(e.data)) for e in envelopes
            if e.type.startswith(prefix) and (type_ is None or e.type == type_)]


async def sessions_ended(db, pids: list[int], timeout: float = 5.0) -> None:
    """Wait until none of these backends is left on the server (`db`: a pool or a connection);
    AssertionError if one still is after `timeout`."""
    deadline = asyncio.get_running_loop().time() + timeout
    query = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY($1::int[])"
    while await db.fetchval(query, pids):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"sessions {pids} still on the server after {timeout} s")
        await asyncio.sleep(0.02)


async def relays_backend(db, relay: OutboxRelay) -> int | None:
    """The pid of the session holding `relay`'s lock (whichever replica's relay leads)."""
    return await db.fetchval(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND classid = 0"
        " AND objid = $1::bigint::oid"
        " AND pid IN (SELECT pid FROM pg_stat_activity WHERE datname = current_database())",
        relay.lock_key)


async def end_the_relays_session(database_url: str, relay: OutboxRelay) -> None:
    """Terminate the session holding `relay`'s lock, from a connection of its own, and wait (up
    to 5 s) until it is gone, not only signalled: the relay's next query then surely meets a
    dead session."""
    import asyncpg

    admin = await asyncpg.connect(database_url)
    try:
        pid = await relays_backend(admin, relay)
        assert pid is not None, "no relay holds the lock"
        assert await admin.fetchval("SELECT pg_terminate_backend($1, 5000)", pid)
    finally:
        await admin.close()

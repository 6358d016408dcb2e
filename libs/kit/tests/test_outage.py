"""PostgreSQL going down under a running service: its clients get 503 `service.unavailable`
with Retry-After (over HTTP and over rpc), never a 500; once it is back, the same requests work.

The service runs on a PostgreSQL of its own, which the test SIGKILLs (the postmaster and
every backend, as in a crash) and starts again on the same port and data.
"""

import os
import shutil
import signal
import tempfile
from pathlib import Path

import msgspec
import pytest
from litestar import get
import httpx

from tessera_kit.testing import INTERNAL_KEY, service_client, service_transport

from tessera_devstack.postgres import start_postgres
from tessera_events.rpc import RpcOperation
from tessera_kit import rpc
from tessera_kit.app import Ctx, ServiceSpec, create_app, start_context, stop_context
from tessera_kit.config import ServiceSettings
from tessera_kit.errors import RequestError


class Count(msgspec.Struct):
    tenant: str


class Counted(msgspec.Struct):
    rows: int


COUNT = RpcOperation("outage-test", "count", Count, Counted)


@get("/api/rows")
async def count_rows(ctx: Ctx) -> dict:
    async with ctx.pool.acquire() as conn:
        return {"rows": await conn.fetchval("SELECT count(*) FROM schema_migrations")}


async def answer_count(ctx, request: Count) -> Counted:
    async with ctx.pool.acquire() as conn:
        return Counted(await conn.fetchval("SELECT count(*) FROM schema_migrations"))


@pytest.fixture
def own_postgres():
    # Not in tmp_path: pytest sessions of other worktrees prune /tmp/pytest-of-<user>.
    root = Path(tempfile.mkdtemp(prefix="tessera-outage-"))
    # fsync on: with synchronous_commit off, a crash loses what was just committed
    server = start_postgres(root / "data", log_path=root / "pg.log")
    yield server
    server.stop()
    shutil.rmtree(root, ignore_errors=True)


def signal_cluster(server, signum: int) -> None:
    """The postmaster and every backend (each backend leads its own process group)."""
    import psutil

    postmaster = psutil.Process(server.process.pid)
    for process in [postmaster, *postmaster.children(recursive=True)]:
        process.send_signal(signum)


def crash(server) -> None:
    signal_cluster(server, signal.SIGKILL)
    server.process.wait()
    server.stop()  # releases the data dir's lock


async def test_postgres_down_is_503_with_retry_after_then_works_again(own_postgres, nats_url, unique):
    spec = ServiceSpec(
        name=f"svc-{unique}",
        route_handlers=[count_rows],
        rpc_handlers=[rpc.RpcHandler(COUNT, answer_count, with_context=True)],
        settings=ServiceSettings(database_url=own_postgres.dsn, nats_url=nats_url, namespace=unique,
                                 internal_key=INTERNAL_KEY),
    )
    app = create_app(spec)
    app.state.ctx = ctx = await start_context(spec)
    try:
        async with service_client(app, base_url="http://svc") as client:
            assert (await client.get("/api/rows")).status_code == 200

            crash(own_postgres)
            # The pooled connection is dead and no new one can be opened: both are outages.
            for _ in range(2):
                response = await client.get("/api/rows")
                assert response.status_code == 503, response.text
                assert response.json()["code"] == "service.unavailable"
                assert response.headers["retry-after"] == "2"
            with pytest.raises(RequestError) as raised:
                await rpc.call(ctx.bus, COUNT, Count("default"))
            assert (raised.value.status, raised.value.code) == (503, "service.unavailable")
            assert raised.value.headers == {"retry-after": "2"}

            restarted = start_postgres(own_postgres.data_dir, port=own_postgres.port,
                                       log_path=own_postgres.log_path)
            try:
                response = await client.get("/api/rows")
                assert response.status_code == 200, response.text
                assert (await rpc.call(ctx.bus, COUNT, Count("default"))).rows >= 1
            finally:
                await stop_context(spec, ctx)
                restarted.stop()
    finally:
        if not ctx.pool._closed:
            await stop_context(spec, ctx)


async def test_a_stalled_database_sheds_load_instead_of_piling_requests_up(own_postgres, nats_url, unique):
    """PostgreSQL stopped (SIGSTOP: it accepts connections and answers nothing, as a stalled
    disk or a lock pile-up would): the process holds at most `max_in_flight` requests, and
    answers every further one at once with 503 and Retry-After, so its memory is bounded by
    the limit, not by the length of the stall. When PostgreSQL resumes, the held ones finish."""
    import asyncio

    limit = 3
    spec = ServiceSpec(
        name=f"svc-{unique}",
        route_handlers=[count_rows],
        settings=ServiceSettings(database_url=own_postgres.dsn, nats_url=nats_url, namespace=unique,
                                 max_in_flight=limit, internal_key=INTERNAL_KEY),
    )
    app = create_app(spec)
    app.state.ctx = ctx = await start_context(spec)
    in_flight = app.state.in_flight
    transport = service_transport(app)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://svc", timeout=60) as client:
            signal_cluster(own_postgres, signal.SIGSTOP)
            try:
                held = [asyncio.create_task(client.get("/api/rows")) for _ in range(limit)]
                while in_flight.current < limit:  # each is now waiting on PostgreSQL
                    await asyncio.sleep(0.01)
                # Without shedding these would wait for as long as the stall lasts: give up
                # after a minute rather than hang the suite.
                shed = await asyncio.wait_for(
                    asyncio.gather(*(client.get("/api/rows") for _ in range(20))), 60)
                assert [r.status_code for r in shed] == [503] * 20
                assert {r.json()["code"] for r in shed} == {"service.unavailable"}
                assert {r.headers["retry-after"] for r in shed} == {"2"}
                assert (await client.get("/health/live")).status_code == 200  # probes never shed
                assert not [task.result().text for task in held if task.done()]
            finally:
                signal_cluster(own_postgres, signal.SIGCONT)
            assert [r.status_code for r in await asyncio.gather(*held)] == [200] * limit
            assert (in_flight.peak, in_flight.shed, in_flight.current) == (limit, 20, 0)
            assert (await client.get("/api/rows")).status_code == 200
    finally:
        await stop_context(spec, ctx)


async def test_a_consumer_survives_a_nats_crash_and_applies_each_event_once(pool, unique):
    """nats-server SIGKILLed and started again on its port and store: the consumer's pull
    request died with the connection; it asks again when the connection is back, and events
    from before and after the crash are each applied exactly once."""
    import asyncio

    from tessera_devstack.nats import start_nats
    from tessera_events import STREAMS
    from tessera_events.identity import UserCreated, UserSnapshot
    from tessera_kit.bus import Bus
    from tessera_kit.consumer import EventConsumer, Subscription
    from tessera_kit.outbox import build_envelope

    root = Path(tempfile.mkdtemp(prefix="tessera-outage-nats-"))
    server = start_nats(root / "store", log_path=root / "nats.log")
    bus = await Bus.connect(server.url, namespace=unique)
    await pool.execute("CREATE TABLE effects (event_id text)")

    async def record(conn, envelope):
        await conn.execute("INSERT INTO effects VALUES ($1)", envelope.id)

    async def publish(user_id: str) -> str:
        envelope = build_envelope(UserCreated(user=UserSnapshot(id=user_id)))
        await bus.js.publish(bus.subject(envelope.type), msgspec.json.encode(envelope),
                             headers={"Nats-Msg-Id": envelope.id})
        return envelope.id

    async def applied() -> list[str]:
        return [r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects ORDER BY 1")]

    async def until(check) -> None:
        for _ in range(1500):  # the consumer's own fallback re-asks after 7 s; this allows 30
            if await check():
                return
            await asyncio.sleep(0.02)
        raise AssertionError("never happened")

    consumer = EventConsumer(pool, bus, Subscription("survivor", (STREAMS["identity"],), record),
                             STREAMS["identity"])
    await bus.ensure_stream(STREAMS["identity"])
    await consumer.ensure()
    consumer.start()
    try:
        reconnected = asyncio.Event()
        bus.reconnect_listeners.append(reconnected.set)
        first = await publish("before")
        await until(lambda: _is(applied(), [first]))
        os.killpg(server.process.pid, signal.SIGKILL)
        server.process.wait()
        server.stop()
        server = start_nats(server.store_dir, port=server.port, monitor_port=server.monitor_port,
                            log_path=server.log_path)
        await until(lambda: _true(reconnected.is_set()))
        second = await publish("after")
        await until(lambda: _is(applied(), sorted([first, second])))
        assert await pool.fetchval("SELECT count(*) FROM inbox") == 2
        assert await pool.fetchval("SELECT count(*) FROM dead_letters") == 0
    finally:
        await consumer.stop()
        await bus.close()
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


async def _is(value, expected) -> bool:
    return await value == expected


async def _true(value) -> bool:
    return value

"""PostgreSQL going down under a running service: its clients get 503 `service.unavailable`
with Retry-After (over HTTP and over rpc), never a 500; once it is back, the same requests work.

The service runs on a PostgreSQL of its own, which the test SIGKILLs (the whole process
group: postmaster and backends, as in a crash) and starts again on the same port and data.
"""

import os
import signal

import msgspec
import pytest
from litestar import get
import httpx

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
def own_postgres(tmp_path):
    # fsync on: with synchronous_commit off, a crash loses what was just committed
    server = start_postgres(tmp_path / "data", log_path=tmp_path / "pg.log")
    yield server
    server.stop()


def crash(server) -> None:
    os.killpg(server.process.pid, signal.SIGKILL)
    server.process.wait()
    server.stop()  # releases the data dir's lock


async def test_postgres_down_is_503_with_retry_after_then_works_again(own_postgres, nats_url, unique):
    spec = ServiceSpec(
        name=f"svc-{unique}",
        route_handlers=[count_rows],
        rpc_handlers=[rpc.RpcHandler(COUNT, answer_count, with_context=True)],
        settings=ServiceSettings(database_url=own_postgres.dsn, nats_url=nats_url, namespace=unique),
    )
    app = create_app(spec)
    app.state.ctx = ctx = await start_context(spec)
    try:
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as client:
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

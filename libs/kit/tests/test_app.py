"""The app factory: a tiny service built with the kit, on real PostgreSQL and NATS."""

import asyncio
import json
import time

import asyncpg
import msgspec
import pytest
from litestar import Request, get, post
from litestar.params import FromPath, JSONBody
import httpx

from tessera_events import STREAMS, Actor, decode_envelope
from tessera_events.identity import UserCreated, UserSnapshot
from tessera_kit.app import Ctx, ServiceContext, ServiceSpec, create_app, start_context, stop_context
from tessera_kit.assertion import AssertionSigner
from tessera_kit.config import ConfigError, ServiceSettings
from tessera_kit.context import current_tenant
from tessera_kit.errors import RequestError
from tessera_kit.http import paginated
from tessera_kit.logging import get_logger
from tessera_kit.pagination import parse_page
from tessera_kit.testing import INTERNAL_KEY, acting_as, service_client, sessions_ended


class CreateThing(msgspec.Struct):
    name: str
    size: int = 1


@post("/api/things", status_code=200)
async def create_thing(data: JSONBody[CreateThing], ctx: Ctx) -> dict:
    get_logger("test").info("creating thing")
    async with ctx.pool.acquire() as conn, conn.transaction():
        await ctx.outbox.emit(conn, UserCreated(user=UserSnapshot(id=data.name)))
    return {"name": data.name, "size": data.size}


@get("/api/things")
async def list_things(request: Request) -> object:
    page = parse_page(request.query_params)
    return paginated(request, page, [{"n": page.page}], 42)


@get("/api/things/{thing_id:str}")
async def get_thing(thing_id: FromPath[str]) -> dict:
    raise RequestError("entity.not_exists_with_id", 404, name="things", id=thing_id)


@pytest.fixture
async def client(database_url, nats_url, unique):
    spec = ServiceSpec(
        name=f"svc-{unique}",
        route_handlers=[create_thing, list_things, get_thing],
        publishes=STREAMS["identity"],
        settings=ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=unique,
                                 internal_key=INTERNAL_KEY),
    )
    app = create_app(spec)
    # Start the service context in the test's own loop (what the lifespan does), so
    # tests may use its pool and bus.
    app.state.ctx = await start_context(spec)
    async with service_client(app, base_url="http://svc") as client:
        client.app = app
        yield client
    await stop_context(spec, app.state.ctx)


async def test_ready_once_database_migrations_and_nats_are(client):
    response = await client.get("/health/ready")
    assert response.status_code == 200
    ctx: ServiceContext = client.app.state.ctx
    assert await ctx.pool.fetchval("SELECT count(*) FROM schema_migrations") >= 1
    await ctx.bus.nc.close()  # NATS gone: no longer ready
    assert (await client.get("/health/ready")).status_code == 503
    assert (await client.get("/health/live")).status_code == 200


async def test_ready_from_the_relays_session_without_a_connection_of_the_pool(client):
    ctx: ServiceContext = client.app.state.ctx
    assert ctx.relay.answered_lately()  # the start waited for its first answer
    # At rest the relay holds the pool's only connection: a probe that asked the pool would
    # open another (a backend kept for db_idle_seconds).
    size = ctx.pool.get_size()
    assert ctx.pool.get_idle_size() == 0
    assert (await client.get("/health/ready")).status_code == 200
    assert ctx.pool.get_size() == size
    # A pool with no room is asked as before: 503 once no connection came free within 1 s.
    held = [await ctx.pool.acquire() for _ in range(ctx.pool.get_max_size() - size)]
    try:
        assert (await client.get("/health/ready")).status_code == 503
    finally:
        for conn in held:
            await ctx.pool.release(conn)
    # A relay that does not vouch (its last query failed): the pool is asked.
    ctx.relay.answered_lately = lambda: False
    try:
        assert (await client.get("/health/ready")).status_code == 200
    finally:
        del ctx.relay.answered_lately


async def test_start_up_hooks_and_the_relay_share_one_connection(database_url, nats_url, unique):
    """The relay starts after the hooks: their work goes through the connection it then holds,
    so the service at rest has one backend, and what they emitted is published once it starts."""
    async def seed(ctx: ServiceContext) -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            await ctx.outbox.emit(conn, UserCreated(user=UserSnapshot(id="seeded")))

    spec = ServiceSpec(name=f"svc-{unique}", route_handlers=[], publishes=STREAMS["identity"], on_startup=[seed],
                       settings=ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=unique,
                                                internal_key=INTERNAL_KEY))
    ctx = await start_context(spec)
    try:
        assert ctx.relay.answered_lately()
        assert ctx.pool.get_size() == 1
        for _ in range(100):
            if not await ctx.relay.pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL"):
                break
            await asyncio.sleep(0.05)
        name = ctx.bus.stream_name(STREAMS["identity"].name)
        raw = await ctx.bus.js.get_msg(name, (await ctx.bus.js.stream_info(name)).state.last_seq)
        assert msgspec.json.decode(decode_envelope(raw.data).data)["user"]["id"] == "seeded"
    finally:
        await stop_context(spec, ctx)


async def test_upkeep_runs_each_time_on_a_connection_of_its_own_closed_after(client):
    ctx: ServiceContext = client.app.state.ctx
    runs: list[tuple[int, int, object]] = []

    async def job(conn) -> None:
        # Set up as the pool's: the service's schema first, JSON decoded.
        runs.append((await conn.fetchval("SELECT pg_backend_pid()"),
                     await conn.fetchval("SELECT count(*) FROM schema_migrations"),
                     await conn.fetchval("""SELECT '{"a": 1}'::jsonb""")))

    upkeep = ctx.upkeep("test-upkeep", 0.05, job)
    upkeep.start()
    try:
        for _ in range(200):
            if len(runs) >= 2:
                break
            await asyncio.sleep(0.02)
    finally:
        await upkeep.stop()
    assert len(runs) >= 2
    (first, migrations, document), (second, _, _) = runs[:2]
    assert first != second and migrations >= 1 and document == {"a": 1}
    await sessions_ended(ctx.pool, [pid for pid, _, _ in runs[:2]])  # no backend stays behind at rest


@pytest.mark.timeout(60)  # without its lock_timeout it would wait for good
async def test_a_statement_on_a_brief_connection_waits_for_a_lock_only_so_long(client):
    """An upkeep run stuck behind a lock fails after lock_timeout instead of holding its job
    (and a backend) for good."""
    from tessera_kit.db import brief_connection

    ctx: ServiceContext = client.app.state.ctx
    async with ctx.pool.acquire() as holder, holder.transaction():
        await holder.execute("SELECT pg_advisory_xact_lock(4242)")
        with pytest.raises(asyncpg.LockNotAvailableError):
            async with brief_connection(ctx.settings.database_url, ctx.outbox.schema, lock_timeout=0.3) as conn:
                await conn.execute("SELECT pg_advisory_xact_lock(4242)")  # waits on `holder`


@pytest.mark.timeout(60)  # without its command_timeout it would wait for the statement
async def test_a_statement_running_too_long_on_a_brief_connection_is_cancelled_and_its_session_ends(client):
    from tessera_kit.db import brief_connection

    ctx: ServiceContext = client.app.state.ctx
    stuck_pid = None
    with pytest.raises(asyncio.TimeoutError):
        async with brief_connection(ctx.settings.database_url, ctx.outbox.schema, command_timeout=0.3) as conn:
            stuck_pid = await conn.fetchval("SELECT pg_backend_pid()")
            await conn.execute("SELECT pg_sleep(120)")
    await sessions_ended(ctx.pool, [stuck_pid])  # cancelled on the server too, long before the sleep ends


async def test_validation_error_shape_and_unknown_keys_dropped(client):
    response = await client.post("/api/things", json={"size": "big"})
    body = response.json()
    assert response.status_code == 400
    assert body["code"] == "guard.invalid_input"
    assert body["message"] == "The request body is invalid."
    assert 'Error in key path' in body["details"]
    ok = await client.post("/api/things", json={"name": "a", "unknown": 1})
    assert ok.status_code == 200 and ok.json() == {"name": "a", "size": 1}


async def test_non_json_body_is_invalid_input(client):
    response = await client.post("/api/things", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert response.json()["code"] == "guard.invalid_input"


async def test_errors_unknown_routes_and_methods(client):
    missing = await client.get("/api/things/abc")
    assert missing.status_code == 404
    assert missing.json() == {"message": "The things with ID `abc` does not exist.",
                              "code": "entity.not_exists_with_id"}
    unknown = await client.get("/api/nothing-here")
    assert (unknown.status_code, unknown.text) == (404, "Not Found")
    wrong_method = await client.delete("/api/things")
    assert wrong_method.status_code == 405


async def test_pagination_headers_use_the_forwarded_origin(client):
    response = await client.get(
        "/api/things?page=2&page_size=10",
        headers={"x-forwarded-proto": "https", "x-forwarded-host": "id.example.com"},
    )
    assert response.headers["total-number"] == "42"
    assert '<https://id.example.com/api/things?page_size=10&page=3>; rel="next"' in response.headers["link"]
    bad = await client.get("/api/things?page_size=101")
    assert bad.status_code == 400 and bad.json()["code"] == "guard.invalid_pagination"


async def test_get_answers_have_an_etag_and_honour_if_none_match(client):
    first = await client.get("/api/things")
    etag = first.headers["etag"]
    again = await client.get("/api/things", headers={"if-none-match": etag})
    assert again.status_code == 304 and again.content == b""


async def test_request_id_and_caller_follow_into_logs_and_events(client, capsys):
    response = await client.post(
        "/api/things",
        json={"name": "traced"},
        headers={"x-request-id": "abc-123"}, extensions=acting_as(Actor(type="user", id="admin1")),
    )
    assert response.headers["x-request-id"] == "abc-123"
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert any(line.get("event") == "creating thing" and line.get("request_id") == "abc-123" for line in lines)
    ctx: ServiceContext = client.app.state.ctx
    row = await ctx.pool.fetchrow("SELECT envelope FROM outbox ORDER BY seq DESC LIMIT 1")
    envelope = decode_envelope(row["envelope"])
    assert envelope.request_id == "abc-123"
    assert envelope.actor == Actor(type="user", id="admin1")


async def test_a_request_without_id_gets_one(client):
    response = await client.get("/api/things")
    assert len(response.headers["x-request-id"]) >= 8


# ------------------------------------------------------------------ the gateway's assertion


def _unsigned(client) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=client.app), base_url="http://svc")


async def test_nothing_but_the_health_probes_answers_without_the_gateways_assertion(client):
    ctx: ServiceContext = client.app.state.ctx
    before = await ctx.pool.fetchval("SELECT count(*) FROM outbox")
    async with _unsigned(client) as unsigned:
        for method, path in [("GET", "/api/things"), ("POST", "/api/things"), ("GET", "/api/nothing-here"),
                             ("DELETE", "/api/things"), ("GET", "/schema/openapi.json")]:
            response = await unsigned.request(method, path, json={"name": "sneaky"},
                                              headers={"x-request-id": "r-1"})
            assert response.status_code == 401, (method, path)
            assert response.json() == {"message": "Unauthorized. Please check credentials and its scope.",
                                       "code": "auth.unauthorized",
                                       "data": "the request carries no internal assertion"}
            assert response.headers["x-request-id"] == "r-1"
        assert (await unsigned.get("/health/live")).status_code == 200
        assert (await unsigned.get("/health/ready")).status_code == 200
    assert await ctx.pool.fetchval("SELECT count(*) FROM outbox") == before  # no handler ran


async def test_an_assertion_is_good_for_one_method_target_and_request_id_only(client):
    signer = AssertionSigner(INTERNAL_KEY)
    admin = Actor(type="user", id="admin1")

    async def send(method: str, path: str, signed_for: tuple[str, str], request_id: str = "r-1",
                   client_ip: str | None = None, **kwargs):
        header = signer.sign(signed_for[0], signed_for[1].encode(), admin, b"r-1", **kwargs).decode()
        headers = {"x-tessera-assertion": header, "x-request-id": request_id}
        if client_ip is not None:
            headers["x-tessera-client-ip"] = client_ip
        async with _unsigned(client) as unsigned:
            return await unsigned.request(method, path, headers=headers)

    assert (await send("GET", "/api/things?page=1", ("GET", "/api/things?page=1"))).status_code == 200
    assert (await send("GET", "/api/things", ("GET", "/api/things"), client_ip="192.0.2.1",
                       client=b"192.0.2.1")).status_code == 200
    for refused in [
        await send("GET", "/api/things?page=2", ("GET", "/api/things?page=1")),  # another query
        await send("GET", "/api/things/x", ("GET", "/api/things")),  # another path
        await send("DELETE", "/api/things", ("GET", "/api/things")),  # another method
        await send("GET", "/api/things", ("GET", "/api/things"), request_id="r-2"),  # another request
        # another client address than the one the gateway stated (rate limits count by it)
        await send("GET", "/api/things", ("GET", "/api/things"), client_ip="6.6.6.6", client=b"192.0.2.1"),
        await send("GET", "/api/things", ("GET", "/api/things"), client_ip="6.6.6.6"),
        await send("GET", "/api/things", ("GET", "/api/things"), client=b"192.0.2.1"),
    ]:
        assert (refused.status_code, refused.json()["code"]) == (401, "auth.unauthorized")
        assert "signature" in refused.json()["data"]
    expired = await send("GET", "/api/things", ("GET", "/api/things"), issued_at=int(time.time()) - 31)
    assert (expired.status_code, expired.json()["data"]) == (401, "the internal assertion has expired")
    future = await send("GET", "/api/things", ("GET", "/api/things"), issued_at=int(time.time()) + 60)
    assert future.status_code == 401


async def test_the_caller_comes_from_the_assertion_not_from_headers(client):
    response = await client.post(
        "/api/things", json={"name": "forged"},
        headers={"x-tessera-caller-type": "user", "x-tessera-caller-id": "root"},  # not believed
    )
    assert response.status_code == 200
    row = await client.app.state.ctx.pool.fetchrow("SELECT envelope FROM outbox ORDER BY seq DESC LIMIT 1")
    assert decode_envelope(row["envelope"]).actor == Actor(type="system")


def test_a_service_without_a_good_internal_key_refuses_to_start(database_url, nats_url, unique):
    for key in ["", "c2hvcnQ", "ab" * 31, "not base64!"]:
        spec = ServiceSpec(name=f"svc-{unique}", route_handlers=[],
                           settings=ServiceSettings(database_url=database_url, nats_url=nats_url, internal_key=key))
        with pytest.raises(ConfigError, match="TESSERA_INTERNAL_KEY"):
            create_app(spec)


def test_sigterm_ends_a_startup_still_waiting_for_its_database(tmp_path):
    """Without the stop signal reaching the retries, the process would keep waiting for
    PostgreSQL for about two minutes after SIGTERM."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    env = {**os.environ, "TESSERA_INTERNAL_KEY": INTERNAL_KEY,
           "DATABASE_URL": f"postgresql://nobody@127.0.0.1:{closed_port}/none",
           "NATS_URL": f"nats://127.0.0.1:{closed_port}", "PORT": "0", "LOG_LEVEL": "warning"}
    process = subprocess.Popen([sys.executable, "-m", "tessera_kit.serve", "tessera_audit_log.main:app"],
                               env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        output = ""
        while "waiting for dependency" not in output:  # it is in the retry loop
            assert time.monotonic() < deadline and process.poll() is None, output
            output += process.stdout.readline()
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=20)  # raises TimeoutExpired while it keeps retrying
    finally:
        process.kill()
        process.wait()


async def test_a_websocket_handshake_is_refused(client):
    sent = []

    async def receive():
        return {"type": "websocket.connect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "websocket", "path": "/api/things", "raw_path": b"/api/things", "query_string": b"",
             "headers": [], "scheme": "ws", "server": ("svc", 80), "client": ("1.2.3.4", 5), "subprotocols": []}
    await client.app(scope, receive, send)
    assert sent == [{"type": "websocket.close", "code": 1008}]


@get("/api/whose")
async def whose() -> dict:
    return {"tenant": current_tenant()}


async def test_the_request_is_for_the_tenant_the_assertion_names(database_url, nats_url, unique):
    spec = ServiceSpec(
        name=f"svc-{unique}", route_handlers=[create_thing, whose], publishes=STREAMS["identity"],
        settings=ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=unique,
                                 internal_key=INTERNAL_KEY, admin_endpoint="http://localhost:3002"),
    )
    app = create_app(spec)
    app.state.ctx = ctx = await start_context(spec)
    try:
        for tenant in ("default", "admin"):
            async with service_client(app, base_url="http://svc", tenant_id=tenant) as client:
                assert (await client.get("/api/whose")).json() == {"tenant": tenant}
                # A header naming another tenant changes nothing.
                forged = await client.get("/api/whose", headers={"tenant-id": "t3", "x-tessera-tenant": "t3"})
                assert forged.json() == {"tenant": tenant}
                assert (await client.post("/api/things", json={"name": f"of-{tenant}"})).status_code == 200
            row = await ctx.pool.fetchrow("SELECT tenant_id, envelope FROM outbox ORDER BY seq DESC LIMIT 1")
            assert row["tenant_id"] == tenant and decode_envelope(row["envelope"]).tenant_id == tenant
        async with service_client(app, base_url="http://svc", tenant_id="t3") as stranger:
            refused = await stranger.get("/api/whose")
            assert (refused.status_code, refused.json()["data"]) == (401, "the internal assertion is for another tenant")
    finally:
        await stop_context(spec, ctx)


async def test_a_body_nested_deeper_than_the_stack_is_invalid_input_not_a_500(client):
    # msgspec raises RecursionError for this, which no handler expected
    response = await client.post("/api/things", content=b"[" * 100_000 + b"]" * 100_000,
                                 headers={"content-type": "application/json"})
    assert response.status_code == 400, response.text
    assert response.json()["code"] == "guard.invalid_input"


async def test_an_rpc_the_access_table_does_not_give_is_refused_before_nats(bus):
    """NATS would refuse it as a timeout; the kit says what is wrong instead. A service the
    table does not list is not restricted (NATS does not restrict it either)."""
    from tessera_events.contracts.rbac import USER_SCOPES, UserScopesRequest

    request = UserScopesRequest(user_id="u1", indicator="https://api.example", tenant_id="default")
    rbac = ServiceContext("rbac", ServiceSettings(), pool=None, bus=bus, outbox=None)  # rbac calls nothing
    with pytest.raises(RuntimeError, match="rbac calls rpc.rbac.user_scopes, which tessera_kit.access does not"):
        await rbac.call(USER_SCOPES, request)
    assert USER_SCOPES in ServiceContext("identity", ServiceSettings(), pool=None, bus=bus, outbox=None).may_call
    assert ServiceContext("not-in-the-table", ServiceSettings(), pool=None, bus=bus, outbox=None).may_call is None


@post("/api/echo", status_code=200)
async def echo_routed(request: Request) -> dict:
    return {"served_by": "router"}


async def echo_direct(request: Request):
    from litestar import Response

    body = await request.body()  # the registered route's body cap applies
    if body == b"raw":
        from tessera_kit.app import DirectResponse

        return DirectResponse(201, [(b"content-type", b"text/plain"), (b"x-answer", b"as-is")], b"raw answer")
    if body == b"fail":
        raise RequestError("entity.not_exists_with_id", 404, name="echoes", id="fail")
    return Response({"served_by": "direct", "body": body.decode(), "tenant": current_tenant(),
                     "route": request.scope["path_template"]}, status_code=200)


async def test_a_direct_route_runs_behind_every_kit_middleware(database_url, nats_url, unique):
    from litestar import Router

    from tessera_kit import metrics

    spec = ServiceSpec(
        name=f"svc-{unique}", route_handlers=[Router("/", route_handlers=[echo_routed], request_max_body_size=16)],
        settings=ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=unique,
                                 internal_key=INTERNAL_KEY),
        direct_routes={("POST", "/api/echo"): echo_direct},
    )
    app = create_app(spec)
    app.state.ctx = ctx = await start_context(spec)
    try:
        async with service_client(app, base_url="http://svc") as client:
            served = await client.post("/api/echo", content=b"hello", headers={"x-request-id": "rid-direct"})
            assert served.json() == {"served_by": "direct", "body": "hello", "tenant": "default", "route": "/api/echo"}
            assert served.headers["x-request-id"] == "rid-direct"
            raw = await client.post("/api/echo", content=b"raw", headers={"x-request-id": "rid-raw"})
            # A DirectResponse goes out as it is, with its length, behind the same middlewares.
            assert (raw.status_code, raw.content, raw.headers["content-type"]) == (201, b"raw answer", "text/plain")
            assert raw.headers["content-length"] == "10" and raw.headers["x-answer"] == "as-is"
            assert raw.headers["x-request-id"] == "rid-raw"
            too_big = await client.post("/api/echo", content=b"x" * 17)
            assert too_big.status_code == 413  # the route's cap, answered by the kit's handlers
            failed = await client.post("/api/echo", content=b"fail")
            assert (failed.status_code, failed.json()["code"]) == (404, "entity.not_exists_with_id")
            nul = await client.post("/api/echo", content=b"a\x00b", headers={"content-type": "text/plain"})
            assert nul.status_code == 400 and nul.json()["code"] == "guard.invalid_input"
            assert (await client.get("/api/echo")).status_code == 405  # other methods: the router
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc") as anonymous:
            refused = await anonymous.post("/api/echo", content=b"hello")
            assert refused.status_code == 401  # no assertion, no handler
        sample = metrics.HTTP_DURATION.labels("POST", "/api/echo", "200")._sum.get()
        assert sample > 0
        assert metrics.HTTP_DURATION.labels("POST", "/api/echo", "201")._sum.get() > 0
    finally:
        await stop_context(spec, ctx)


def test_a_direct_route_needs_a_registered_route(database_url, nats_url, unique):
    spec = ServiceSpec(
        name=f"svc-{unique}", route_handlers=[echo_routed],
        settings=ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=unique,
                                 internal_key=INTERNAL_KEY),
        direct_routes={("POST", "/api/elsewhere"): echo_direct},
    )
    with pytest.raises(RuntimeError, match="direct routes without a registered route handler"):
        create_app(spec)

"""The foundation end to end: every service its own process, the gateway in front."""

import asyncio
import os

import httpx
import psutil
import pytest
from openapi_spec_validator.validation.validators import OpenAPIV30SpecValidator

from tessera_events import STREAMS
from tessera_events.identity import UserCreated, UserSnapshot
from tessera_kit.bus import Bus
from tessera_kit.db import create_pool, migrate
from tessera_kit.outbox import Outbox, OutboxRelay

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "e2e-admin"}


@pytest.fixture
async def api(stack):
    async with httpx.AsyncClient(base_url=stack.url, timeout=10) as client:
        yield client


@pytest.fixture
async def publisher(stack):
    """A stand-in publishing service on the stack's database and namespace."""
    schema = "e2e_publisher"
    pool = await create_pool(stack.env["DATABASE_URL"], schema)
    await migrate(pool, schema, None)
    bus = await Bus.connect(stack.env["NATS_URL"], namespace=stack.env["TESSERA_NAMESPACE"])
    await bus.ensure_stream(STREAMS["identity"])
    outbox = Outbox(schema)
    relay = OutboxRelay(pool, bus, outbox)
    relay.start()

    async def publish(*events):
        async with pool.acquire() as conn, conn.transaction():
            return [await outbox.emit(conn, e) for e in events]

    yield publish
    await relay.stop()
    await bus.close()
    await pool.close()


async def logs_with(api, user_id: str, expected: int, tries: int = 300):
    for _ in range(tries):
        response = await api.get("/api/logs", params={"userId": user_id}, headers=ADMIN)
        if response.status_code == 200 and int(response.headers["total-number"]) >= expected:
            return response
        await asyncio.sleep(0.05)
    raise AssertionError(f"expected {expected} logs for {user_id}; last answer {response.status_code}")


def test_every_service_is_a_process_of_its_own_forked_from_the_fork_server(stack):
    """Forked (tessera_kit.forkserver) to share the preloaded libraries, yet each with its own
    pid, process group, environment and port, as an exec'd process would be."""
    pids = {name: stack.supervisor.get(name).pid for name in stack.names}
    assert len(set(pids.values())) == len(pids) == len(stack.names)
    server = stack.supervisor.fork_server_pid
    assert stack.fork == (server is not None)  # TESSERA_FORK_SERVER=off: exec'd, as before
    for name, pid in pids.items():
        process = psutil.Process(pid)
        if stack.fork:
            assert process.ppid() == server, name
        assert os.getpgid(pid) == pid  # its own process group: a kill of the group reaches it alone
        # Its own PORT (/proc/<pid>/environ shows a forked process's initial environment, the
        # fork server's: what it was given lives in its os.environ, so ask the socket).
        listening = {c.laddr.port for c in process.net_connections() if c.status == psutil.CONN_LISTEN}
        assert listening == {stack.ports[name]}, name


async def test_status_is_anonymous_204(api):
    response = await api.get("/api/status")
    assert response.status_code == 204 and response.content == b""


async def test_management_routes_need_a_bearer_token(api):
    response = await api.get("/api/logs")
    assert response.status_code == 401
    assert response.json()["code"] == "auth.authorization_header_missing"


async def test_an_event_published_by_a_service_shows_up_in_logs(api, publisher):
    (event,) = await publisher(UserCreated(user=UserSnapshot(id="e2e-user-1", username="ada")))
    response = await logs_with(api, "e2e-user-1", 1)
    (row,) = response.json()
    assert row["key"] == "identity.user.created"
    assert row["payload"]["eventId"] == event.id
    assert response.headers["link"].startswith(f"<{api.base_url}/api/logs?")
    one = await api.get(f"/api/logs/{row['id']}", headers=ADMIN)
    assert one.status_code == 200 and one.json() == row


async def test_audit_log_down_gives_503_then_catches_up(stack, api, publisher):
    stack.stop_service("audit-log")
    try:
        down = await api.get("/api/logs", headers=ADMIN)
        assert down.status_code == 503
        assert down.json()["code"] == "service.unavailable"
        await publisher(*[UserCreated(user=UserSnapshot(id="e2e-user-2")) for _ in range(10)])
    finally:
        stack.start_service("audit-log")
    response = await logs_with(api, "e2e-user-2", 10)
    assert response.headers["total-number"] == "10"


async def test_request_id_is_returned_and_generated(api):
    mine = await api.get("/api/status", headers={"x-request-id": "e2e-req-1"})
    assert mine.headers["x-request-id"] == "e2e-req-1"
    generated = await api.get("/api/logs", headers=ADMIN)
    assert generated.headers["x-request-id"]


async def test_swagger_and_asyncapi_documents(api):
    swagger = (await api.get("/api/swagger.json")).json()
    # One path of every service: a service whose OpenAPI fails to build would be missing.
    for path in ("/api/logs", "/api/dashboard/users/total", "/api/users", "/api/applications",
                 "/api/roles", "/api/resources", "/api/sign-in-exp", "/api/interaction"):
        assert path in swagger["paths"], path
    # Request bodies are documented, also where a service reads its body itself (identity).
    for path, method in (("/api/users", "post"), ("/api/applications/{id}", "patch"), ("/api/roles", "post")):
        body = swagger["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        name = body["$ref"].rsplit("/", 1)[-1]
        assert swagger["components"]["schemas"][name]["properties"], (path, method)
    # A 404 without an id in the path is declared where it happens (a new role's unknown scopeIds).
    assert "404" in swagger["paths"]["/api/roles"]["post"]["responses"]
    # The token endpoint's rate limit on failures.
    assert "429" in swagger["paths"]["/oidc/token"]["post"]["responses"]
    # Logto serves OpenAPI 3.0 and its suite validates the document as such.
    assert swagger["openapi"] == "3.0.3"
    errors = list(OpenAPIV30SpecValidator(swagger).iter_errors())
    assert errors == [], [f"{list(e.path)}: {e.message}"[:300] for e in errors[:10]]
    asyncapi = (await api.get("/api/asyncapi.json")).json()
    assert "identity.user.created" in asyncapi["channels"]


async def test_unknown_route_is_404(api):
    response = await api.get("/nothing/here")
    assert (response.status_code, response.text) == (404, "Not Found")

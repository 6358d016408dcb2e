"""GET /metrics: Prometheus text with HTTP, outbox and rpc figures, on real PostgreSQL and NATS."""

import httpx
import msgspec
import pytest
from litestar import get
from litestar.params import FromPath
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from tessera_events import STREAMS
from tessera_events.identity import UserCreated, UserSnapshot
from tessera_events.rpc import RpcOperation
from tessera_kit import rpc
from tessera_kit.testing import INTERNAL_KEY, service_client
from tessera_kit.app import Ctx, ServiceSpec, create_app, start_context, stop_context
from tessera_kit.config import ServiceSettings
from tessera_kit.errors import RequestError


@get("/api/widgets/{widget_id:str}")
async def get_widget(widget_id: FromPath[str], ctx: Ctx) -> dict:
    if widget_id == "missing":
        raise RequestError("entity.not_exists_with_id", 404, name="widgets", id=widget_id)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await ctx.outbox.emit(conn, UserCreated(user=UserSnapshot(id=widget_id)))
    return {"id": widget_id}


@pytest.fixture
async def service(database_url, nats_url, unique):
    spec = ServiceSpec(
        name=f"m-{unique}",
        route_handlers=[get_widget],
        publishes=STREAMS["identity"],
        settings=ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=unique,
                                 internal_key=INTERNAL_KEY),
    )
    app = create_app(spec)
    app.state.ctx = await start_context(spec)
    async with service_client(app, base_url="http://svc") as client:
        yield client, app.state.ctx
    await stop_context(spec, app.state.ctx)


def sample(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


async def scrape(client) -> dict[str, list]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {family.name: family.samples for family in text_string_to_metric_families(response.text)}


async def test_requests_are_counted_by_route_template_and_status(service):
    client, _ = service
    route = "/api/widgets/{widget_id}"  # Litestar's template, without the type
    before = sample("tessera_http_request_duration_seconds_count", method="GET", route=route, status="404")
    assert (await client.get("/api/widgets/missing")).status_code == 404
    assert (await client.get("/api/widgets/missing")).status_code == 404
    families = await scrape(client)
    counts = {
        (s.labels["route"], s.labels["status"]): s.value
        for s in families["tessera_http_request_duration_seconds"]
        if s.name.endswith("_count") and s.labels["method"] == "GET"
    }
    assert counts[(route, "404")] == before + 2
    assert not any("missing" in r for r, _ in counts)  # never the raw path
    buckets = [s for s in families["tessera_http_request_duration_seconds"]
               if s.name.endswith("_bucket") and s.labels["route"] == route and s.labels["status"] == "404"]
    assert buckets[-1].labels["le"] == "+Inf" and buckets[-1].value == before + 2


async def test_a_made_up_method_is_counted_as_other(service):
    """The method is the client's to choose: each made-up one must not become a series."""
    client, _ = service
    before = sample("tessera_http_request_duration_seconds_count", method="other", route="unmatched", status="405")
    for method in ("BREW", "WHEN-1", "WHEN-2"):
        assert (await client.request(method, "/api/widgets/w1")).status_code == 405
    families = await scrape(client)
    methods = {s.labels["method"] for s in families["tessera_http_request_duration_seconds"]}
    assert not methods & {"BREW", "WHEN-1", "WHEN-2"}
    assert sample("tessera_http_request_duration_seconds_count", method="other", route="unmatched",
                  status="405") == before + 3


async def test_outbox_backlog_and_relay_lag(service):
    client, ctx = service
    await ctx.relay.stop()  # nothing is published: the event waits in the outbox
    assert (await client.get("/api/widgets/w1")).status_code == 200
    families = await scrape(client)
    assert families["tessera_outbox_backlog"][0].value == 1
    assert families["tessera_outbox_oldest_unpublished_age_seconds"][0].value > 0
    assert families["tessera_outbox_relay_leader"][0].value == 0

    published_before = sample("tessera_outbox_relay_lag_seconds_count")
    async with ctx.pool.acquire() as conn:
        assert await ctx.relay.publish_pending(conn) == 1
    families = await scrape(client)
    assert families["tessera_outbox_backlog"][0].value == 0
    assert families["tessera_outbox_oldest_unpublished_age_seconds"][0].value == 0
    assert sample("tessera_outbox_relay_lag_seconds_count") == published_before + 1


class Question(msgspec.Struct):
    text: str


class Answer(msgspec.Struct):
    text: str


async def test_rpc_latency_and_failures_on_both_sides(bus, unique):
    ask = RpcOperation(f"answers{unique}", "ask", Question, Answer)
    nobody = RpcOperation(f"nobody{unique}", "ask", Question, Answer)

    async def answer(question: Question) -> Answer:
        if question.text == "bad":
            raise RequestError("guard.invalid_input", 400)
        return Answer(text=question.text)

    await rpc.serve(bus, rpc.RpcHandler(ask, answer))
    assert (await rpc.call(bus, ask, Question(text="hi"))).text == "hi"
    with pytest.raises(RequestError):
        await rpc.call(bus, ask, Question(text="bad"))
    with pytest.raises(RequestError):
        await rpc.call(bus, nobody, Question(text="?"), no_responders_retry_after=0)

    assert sample("tessera_rpc_call_duration_seconds_count", operation=ask.subject) == 2
    assert sample("tessera_rpc_call_failures_total", operation=ask.subject, reason="400") == 1
    assert sample("tessera_rpc_call_failures_total", operation=nobody.subject, reason="unavailable") == 1
    assert sample("tessera_rpc_handler_duration_seconds_count", operation=ask.subject) == 2
    assert sample("tessera_rpc_handler_failures_total", operation=ask.subject, status="400") == 1

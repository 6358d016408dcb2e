"""Prometheus metrics: one registry per process (one process = one service replica).

`GET /metrics` on the service's own port answers the text format, like `/health/*` (the
gateway does not route it under `/api`). Prometheus adds the service and pod as `job` and
`pod` labels (the ServiceMonitor in deploy/k8s), so no metric carries the service's name.

- HTTP: `tessera_http_request_duration_seconds{method,route,status}`, a histogram whose
  `_count` is the requests by route template and status. The middleware is raw ASGI and keeps
  one labelled child per (method, route, status) in a dict: one `observe` per request.
- Outbox: backlog and the age of its oldest unpublished event, read at scrape time; the lag
  of each published event (created → published) as a histogram, observed by the relay.
- Consumers: pending messages per durable consumer (JetStream's count, at scrape time),
  events applied and dead-lettered (counters), dead letters stored (at scrape time).
- RPC: call latency and failures on the calling side, handler latency and failures on the
  serving side, by operation subject.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

from tessera_kit.logging import get_logger

if TYPE_CHECKING:
    from tessera_kit.app import ServiceContext

log = get_logger(__name__)

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Requests are fast (most answer in a few ms); sign-ins with argon2 take ~50-300 ms.
LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

HTTP_DURATION = Histogram(
    "tessera_http_request_duration_seconds",
    "HTTP requests by route template and status, with their latency",
    ["method", "route", "status"],
    buckets=LATENCY_BUCKETS,
)
OUTBOX_BACKLOG = Gauge("tessera_outbox_backlog", "Events written to the outbox, not yet published")
OUTBOX_OLDEST_AGE = Gauge(
    "tessera_outbox_oldest_unpublished_age_seconds",
    "Age of the oldest unpublished outbox event (0 when none waits): the relay's lag now",
)
OUTBOX_RELAY_LAG = Histogram(
    "tessera_outbox_relay_lag_seconds",
    "Time from an event's outbox write to its publication on NATS",
    buckets=LATENCY_BUCKETS,
)
OUTBOX_RELAY_LEADER = Gauge(
    "tessera_outbox_relay_leader", "1 while this replica holds the relay's advisory lock"
)
CONSUMER_PENDING = Gauge(
    "tessera_consumer_pending",
    "Messages the durable consumer has not acked yet (its lag)",
    ["consumer", "stream"],
)
CONSUMER_APPLIED = Counter(
    "tessera_consumer_applied", "Events applied by this replica", ["consumer"]
)
CONSUMER_DEAD_LETTERS = Counter(
    "tessera_consumer_dead_letters", "Messages this replica gave up on (dead-lettered)", ["consumer"]
)
DEAD_LETTERS_STORED = Gauge(
    "tessera_dead_letters_stored", "Rows in the service's dead_letters table", ["consumer"]
)
RPC_CALL_DURATION = Histogram(
    "tessera_rpc_call_duration_seconds",
    "RPC calls this service made, by operation, until the answer (or the failure)",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
RPC_CALL_FAILURES = Counter(
    "tessera_rpc_call_failures",
    "RPC calls that failed: `unavailable` (no responder, timeout) or the error status answered",
    ["operation", "reason"],
)
RPC_SERVE_DURATION = Histogram(
    "tessera_rpc_handler_duration_seconds",
    "RPC requests this service answered, by operation",
    ["operation"],
    buckets=LATENCY_BUCKETS,
)
RPC_SERVE_FAILURES = Counter(
    "tessera_rpc_handler_failures", "RPC requests answered with an error, by status", ["operation", "status"]
)
PERIODIC_LEADER = Gauge(
    "tessera_periodic_leader", "1 while this replica holds the advisory lock of a timed job", ["job"]
)
PERIODIC_RUNS = Counter("tessera_periodic_runs", "Runs of a timed job by this replica", ["job"])
UPSTREAM_REPLICA_FAILURES = Counter(
    "tessera_gateway_upstream_replica_failures",
    "Requests one replica of a service gave no answer to (the gateway then tries the next one"
    " when nothing was sent or the request is idempotent)",
    ["service", "reason"],
)


# The methods counted by name; any other token a client sends is counted as `other`, or each
# made-up method would be a new series.
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def metrics_middleware(app: Any) -> Any:
    """Time every HTTP request and count it by route template (never the raw path: ids would
    make a series per user; the app puts the template in `scope["path_template"]`, as Litestar
    does) and status."""
    children: dict[tuple[str, str, int], Any] = {}
    perf_counter = time.perf_counter

    async def middleware(scope, receive, send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        started = perf_counter()
        status = 500  # an exception that escapes is answered 500 by the server

        async def send_and_note_status(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await app(scope, receive, send_and_note_status)
        finally:
            observe_request(children, scope["method"], scope.get("path_template") or "unmatched",
                            status, perf_counter() - started)

    return middleware


def observe_request(children: dict, method: str, route: str, status: int, seconds: float) -> None:
    if method not in METHODS:
        method = "other"
    key = (method, route, status)
    child = children.get(key)
    if child is None:
        child = children[key] = HTTP_DURATION.labels(method, route, str(status))
    child.observe(seconds)


async def refresh(ctx: ServiceContext) -> None:
    """Read what only the database and JetStream know, just before a scrape."""
    try:
        async with ctx.pool.acquire(timeout=2.0) as conn:
            row = await conn.fetchrow(
                "SELECT count(*) AS backlog,"
                " coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest"
                " FROM outbox WHERE published_at IS NULL"
            )
            OUTBOX_BACKLOG.set(row["backlog"])
            OUTBOX_OLDEST_AGE.set(row["oldest"])
            for dead in await conn.fetch("SELECT consumer, count(*) AS n FROM dead_letters GROUP BY consumer"):
                DEAD_LETTERS_STORED.labels(dead["consumer"]).set(dead["n"])
    except Exception as exc:  # a scrape must answer; the gauges keep their last values
        log.warning("metrics: database figures unavailable", error=repr(exc))
    OUTBOX_RELAY_LEADER.set(1 if ctx.relay is not None and ctx.relay.is_leader else 0)
    for consumer in ctx.consumers:
        try:
            CONSUMER_PENDING.labels(consumer.durable, consumer.stream_name).set(await consumer.pending())
        except Exception as exc:
            log.warning("metrics: consumer lag unavailable", consumer=consumer.durable, error=repr(exc))


def exposition() -> bytes:
    return generate_latest(REGISTRY)

"""The app factory: a service's `main` declares what it is, the kit does the wiring.

Start-up, in order: logging, database pool and migrations, NATS and the streams the
service publishes to, the outbox relay, rpc handlers, event consumers, then the
service's own start-up hooks (seeding). Readiness is true only when the database
answers, migrations are done and NATS is connected.
"""

from __future__ import annotations

import asyncio
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncContextManager, AsyncIterator, Awaitable, Callable, Mapping, Sequence

import asyncpg
import msgspec
from litestar import Litestar, Request, Response, get
from litestar._openapi.plugin import OpenAPIPlugin
from litestar.di import NamedDependency, Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, OpenAPIMediaType, RequestBody

from tessera_events import Stream
from tessera_events.rpc import Ping, Pong, ping
from tessera_kit import metrics, rpc
from tessera_kit.assertion import AssertionVerifier
from tessera_kit.backpressure import InFlight, load_shedding
from tessera_kit.bus import Bus
from tessera_kit.config import ServiceSettings, load_settings
from tessera_kit.access import ACCESS
from tessera_kit.consumer import EventConsumer, Subscription
from tessera_kit.db import brief_connection, create_pool, migrate
from tessera_kit.http import (
    EXCEPTION_HANDLERS,
    answer_after_the_body,
    context_middleware,
    internal_error_handler,
    request_error_handler,
)
from tessera_kit.errors import RequestError
from tessera_kit.outage import OUTAGE_EXCEPTIONS, is_outage, outage_error
from tessera_kit.openapi_docs import document_operations
from tessera_kit.text_guard import text_guard_middleware
from tessera_kit.logging import configure_logging, get_logger
from tessera_kit.outbox import Outbox, OutboxRelay
from tessera_kit.periodic import Periodic

log = get_logger(__name__)
POOL_CLOSE_SECONDS = 10.0


@dataclass
class ServiceContext:
    """Everything a request handler or hook may need, built at start-up."""

    name: str
    settings: ServiceSettings
    pool: asyncpg.Pool
    bus: Bus
    outbox: Outbox
    relay: OutboxRelay | None = None
    consumers: list[EventConsumer] = field(default_factory=list)
    migrated: bool = False
    extras: dict[str, Any] = field(default_factory=dict)
    # The rpc operations tessera_kit.access lets this service call (None: a service it does not
    # list, which NATS does not restrict either); looked up once, not on every call.
    may_call: frozenset | None = field(init=False, repr=False)

    def __post_init__(self) -> None:
        entry = ACCESS.get(self.name)
        self.may_call = frozenset(entry.calls) if entry is not None and entry.uses_nats else None

    def upkeep(self, name: str, every_seconds: float, job: Callable[[asyncpg.Connection], Awaitable[object]],
               *, at_start: bool = True) -> Periodic:
        """A timed job (tessera_kit.periodic) run by the replica whose relay leads, each run on a
        connection of its own closed after it (`brief_connection`): one every minute or more
        costs a connect, while a pooled one would be kept alive at rest. Call `start()` on it."""
        async def run() -> None:
            async with self.brief_connection() as conn:
                await job(conn)
        return Periodic(name, every_seconds, run, at_start=at_start, leader=self.relay)

    def brief_connection(self, **limits: float) -> AsyncContextManager[asyncpg.Connection]:
        """tessera_kit.db.brief_connection on this service's database and schema (`limits`: its
        lock_timeout and command_timeout)."""
        return brief_connection(self.settings.database_url, self.outbox.schema, **limits)

    async def call(self, operation, request, *, timeout: float = 3.0):
        if self.may_call is not None and operation not in self.may_call:
            # NATS would refuse the request, which looks like a responder that never answers
            # (a 503 after the timeout); say what is wrong instead, in every test that calls it.
            raise RuntimeError(f"{self.name} calls {operation.subject}, which tessera_kit.access does "
                               f"not give it: add it to the service's `calls`")
        return await rpc.call(self.bus, operation, request, timeout=timeout)

    async def call_unless_away(self, operation, request, *, timeout: float = 3.0):
        """`call`, or None when the other service cannot answer (503): for a caller that has
        a copy of its own to fall back on (a read model fed by the other's events)."""
        try:
            return await self.call(operation, request, timeout=timeout)
        except RequestError as exc:
            if exc.status != 503:
                raise
            return None

    async def is_ready(self) -> bool:
        if not (self.migrated and self.bus.connected):
            return False
        pool = self.pool
        if (self.relay is not None and self.relay.answered_lately()
                and (pool.get_idle_size() > 0 or pool.get_size() < pool.get_max_size())):
            # Its session answered just now and the pool has room: no connection opened for
            # the check. A full pool is asked as before (503 if none comes free within 1 s).
            return True
        try:
            async with self.pool.acquire(timeout=1.0) as conn:
                await conn.fetchval("SELECT 1")
        except Exception:
            return False
        return True


# What a route handler declares to receive the service context: `ctx: Ctx`.
Ctx = NamedDependency[ServiceContext]

Hook = Callable[[ServiceContext], Awaitable[None]]


@dataclass
class ServiceSpec:
    name: str  # "audit-log"
    route_handlers: Sequence[Any]
    migrations: Path | None = None
    publishes: Stream | None = None  # the service's own stream, if it publishes events
    subscriptions: Sequence[Subscription] = ()
    rpc_handlers: Sequence[rpc.RpcHandler] = ()
    on_startup: Sequence[Hook] = ()
    on_shutdown: Sequence[Hook] = ()
    settings: ServiceSettings | None = None  # default: read from the environment
    openapi_title: str | None = None
    # operation id → a type describing its JSON body, for handlers that read the body
    # themselves (to answer Logto's exact validation details): the OpenAPI shows it anyway.
    documented_bodies: Mapping[str, Any] = field(default_factory=dict)
    # operation id → a raw OpenAPI fragment (`parameters`, `requestBody`, `responses`, with
    # `replaceResponses: True` to drop the generated ones) for what the kit cannot infer: the
    # statuses, parameters and media types of routes that read their input themselves.
    documented_operations: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    # (method, path) → `async (request) -> Response | DirectResponse`: a hot route answered
    # without Litestar's routing, signature parsing and response pipeline (see `direct_routes`).
    # The path must also be a route of `route_handlers` (its OpenAPI entry, its body cap, other
    # methods).
    direct_routes: Mapping[tuple[str, str], Callable[[Request], Awaitable["Response | DirectResponse"]]] = field(
        default_factory=dict)

    @property
    def schema(self) -> str:
        return self.name.replace("-", "_")


class DirectResponse:
    """A direct route's answer sent as it is: the status, the headers (`(name, value)` bytes,
    lower case; `content-length` is added) and the whole body, in two ASGI messages. Litestar's
    Response builds the same two messages through a header multidict, its media-type rules and
    an ASGIResponse object, which cost a hot route (the token endpoint) as much as its JSON."""

    __slots__ = ("status_code", "headers", "body")

    def __init__(self, status_code: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        self.status_code = status_code
        self.headers = headers
        self.body = body

    def as_litestar(self) -> Response:
        """The same answer as a Litestar Response (for the route's handler on the router)."""
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in self.headers}
        media_type = headers.pop("content-type", None)
        return Response(self.body, status_code=self.status_code, headers=headers, media_type=media_type)

    async def send(self, send: Any) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": [*self.headers, (b"content-length", b"%d" % len(self.body))]})
        await send({"type": "http.response.body", "body": self.body, "more_body": False})


class StartupAborted(RuntimeError):
    """The process was asked to stop before its dependencies answered."""


# Set by `request_stop` (the signal handler of `tessera_kit.serve`): a service still
# waiting for its database or NATS gives up within a tenth of a second instead of
# retrying for up to two minutes after SIGTERM. A plain flag, not an asyncio.Event, so
# it belongs to no event loop.
_stop_requested = False


def request_stop() -> None:
    global _stop_requested
    _stop_requested = True


async def _pause_unless_stopping(seconds: float) -> None:
    deadline = asyncio.get_running_loop().time() + seconds
    while not _stop_requested and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.1)


async def _retry(what: str, attempt: Callable[[], Awaitable[Any]], tries: int = 60) -> Any:
    """Dependencies may still be starting (or restarting): wait for them a while."""
    for n in range(tries):
        if _stop_requested:
            raise StartupAborted(f"asked to stop while waiting for {what}")
        try:
            return await attempt()
        except Exception as exc:
            if n == tries - 1:
                raise
            log.warning("waiting for dependency", dependency=what, error=str(exc))
            await _pause_unless_stopping(min(0.25 * (n + 1), 2.0))


async def start_context(spec: ServiceSpec) -> ServiceContext:
    settings = spec.settings or load_settings(ServiceSettings)
    pool = await _retry(
        "postgres", lambda: create_pool(settings.database_url, spec.schema, max_size=settings.db_pool_size,
                                       idle_seconds=settings.db_idle_seconds)
    )
    bus = await _retry("nats", lambda: Bus.from_settings(settings, spec.name))
    outbox = Outbox(spec.schema)
    ctx = ServiceContext(spec.name, settings, pool, bus, outbox)
    try:
        await migrate(pool, spec.schema, spec.migrations)
        ctx.migrated = True
        if spec.publishes is not None:
            await bus.ensure_stream(spec.publishes, owner=True)
            # Made now (start-up hooks give it their LISTENs and timed jobs), started after them:
            # until then the hooks' work and the consumers' first batches share the connection it
            # would hold for good, so a service at rest keeps one backend fewer (their events
            # wait in the outbox meanwhile).
            ctx.relay = OutboxRelay(pool, bus, outbox)

        async def answer_ping(_: Ping) -> Pong:
            return Pong(service=spec.name, ready=await ctx.is_ready())

        await rpc.serve(bus, rpc.RpcHandler(ping(spec.name), answer_ping), context=ctx)
        for subscription in spec.subscriptions:
            for stream in subscription.streams:
                consumer = EventConsumer(pool, bus, subscription, stream)
                await consumer.ensure()
                consumer.start()
                ctx.consumers.append(consumer)
        for hook in spec.on_startup:
            await hook(ctx)
        if ctx.relay is not None:
            ctx.relay.start()
            await ctx.relay.first_answer(timeout=2.0)
        # Last: a replica joins its rpc queue groups only once what the handlers use is started
        # (identity's provider, rate limits), or the replica starting beside a running one
        # would be handed requests it cannot answer yet.
        for handler in spec.rpc_handlers:
            await rpc.serve(bus, handler, context=ctx)
    except BaseException:
        # A start-up that fails (a refused setting, a broken migration) leaves nothing open;
        # shutdown hooks are written to tolerate what never started.
        try:
            await stop_context(spec, ctx)
        except Exception as exc:
            log.warning("cleanup after a failed start-up failed", error=repr(exc))
        raise
    log.info("service started", port=settings.port)
    return ctx


async def stop_context(spec: ServiceSpec, ctx: ServiceContext) -> None:
    for hook in spec.on_shutdown:
        await hook(ctx)
    for consumer in ctx.consumers:
        await consumer.stop()
    if ctx.relay:
        await ctx.relay.stop()
    await ctx.bus.close()
    try:
        # asyncpg waits for every connection to come back; one kept by a task that never
        # ended would hold the stop for ever. Past the bound the pool is terminated.
        async with asyncio.timeout(POOL_CLOSE_SECONDS):
            await ctx.pool.close()
    except TimeoutError:
        log.warning("pool closed by force: a connection was not given back", service=spec.name)


@get("/health/live", include_in_schema=False, sync_to_thread=False)
def live() -> dict[str, str]:
    return {"status": "ok"}


@get("/health/ready", include_in_schema=False)
async def ready(request: Request) -> Response:
    ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
    ok = ctx is not None and await ctx.is_ready()
    return Response({"status": "ready" if ok else "starting"}, status_code=200 if ok else 503)


@get("/metrics", include_in_schema=False)
async def metrics_endpoint(request: Request) -> Response:
    ctx: ServiceContext | None = getattr(request.app.state, "ctx", None)
    if ctx is not None:
        await metrics.refresh(ctx)
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE)


def _provide_ctx(request: Request) -> ServiceContext:
    return request.app.state.ctx


def _exception_handlers(service: str) -> dict:
    """The kit's handlers, and PostgreSQL or NATS being down as 503 with Retry-After (also
    when the outage surfaces wrapped in another exception) instead of a 500."""

    def outage_handler(request: Request, exc: Exception) -> Response:
        log.warning("dependency unavailable", path=request.url.path, error=repr(exc))
        return request_error_handler(request, outage_error(service))

    def internal_or_outage(request: Request, exc: Exception) -> Response:
        if is_outage(exc):
            return outage_handler(request, exc)
        return internal_error_handler(request, exc)

    return {**EXCEPTION_HANDLERS, **{kind: outage_handler for kind in OUTAGE_EXCEPTIONS},
            Exception: internal_or_outage}


def create_app(spec: ServiceSpec) -> Litestar:
    settings = spec.settings or load_settings(ServiceSettings)
    configure_logging(spec.name, settings.log_level)
    # No key: no start. The service serves every configured tenant; each request names its own.
    verifier = AssertionVerifier(settings.internal_key, settings.tenants)

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        ctx = await start_context(spec)
        app.state.ctx = ctx
        try:
            yield
        finally:
            await stop_context(spec, ctx)

    in_flight = InFlight(settings.max_in_flight)
    app = Litestar(
        route_handlers=[live, ready, metrics_endpoint, *spec.route_handlers],
        lifespan=[lifespan],
        exception_handlers=_exception_handlers(spec.name),
        dependencies={"ctx": Provide(_provide_ctx, sync_to_thread=False)},
        openapi_config=OpenAPIConfig(
            title=spec.openapi_title or f"Tessera {spec.name}",
            version="0.1.0",
            path="/schema",
            render_plugins=[],
        ),
        debug=False,
        logging_config=None,
    )
    # Before Litestar's router, not as route middleware: an unknown path or method must get the
    # same 401 as a known one, and no handler may run for a request the gateway did not sign.
    # From the outside in: metrics (refused requests are counted too, by the template Litestar
    # matched), answers only after the body (every refusal below included), load shedding, the
    # assertion, the text rule.
    app.state.assertions = verifier
    app.state.in_flight = in_flight
    router = direct_routes(app, spec.name, spec.direct_routes, app.asgi_handler) if spec.direct_routes else app.asgi_handler
    app.asgi_handler = metrics.metrics_middleware(answer_after_the_body(load_shedding(spec.name, in_flight)(
        context_middleware(text_guard_middleware(router), verifier))))
    app.state.openapi_documentation = (spec.documented_bodies, spec.documented_operations)
    app.plugins.get(OpenAPIPlugin).__class__ = _DocumentedOpenAPIPlugin
    return app


def direct_routes(app: Litestar, service: str,
                  routes: Mapping[tuple[str, str], Callable[[Request], Awaitable["Response | DirectResponse"]]],
                  router: Any) -> Any:
    """Serve each (method, exact path) of `routes` before Litestar's router, behind the same kit
    middlewares (metrics, load shedding, the assertion, the text rule): for a route so hot that
    the router, the handler's signature model and the response pipeline are a good part of its
    cost (the token endpoint). The request still is Litestar's, bound to the registered route
    handler, so the body cap of its router applies; anything else goes to the router. The answer
    is a Litestar Response, or a DirectResponse sent as it is."""
    registered: dict[tuple[str, str], Any] = {}
    for route in app.routes:
        for method, path in routes:
            if route.path == path and method in getattr(route, "route_handler_map", {}):
                registered[(method, path)] = route.route_handler_map[method][0]
    missing = set(routes) - set(registered)
    if missing:
        raise RuntimeError(f"direct routes without a registered route handler: {sorted(missing)}")
    handlers = _exception_handlers(service)

    async def serve(scope: Any, receive: Any, send: Any) -> None:
        key = (scope["method"], scope["path"])
        answer = routes.get(key)
        if answer is None:
            await router(scope, receive, send)
            return
        scope["route_handler"] = registered[key]
        scope["path_template"] = key[1]
        scope["path_params"] = {}
        request: Request = Request(scope, receive, send)
        try:
            response = await answer(request)
        except Exception as exc:  # as Litestar's exception middleware would answer it
            handler = next((handlers[kind] for kind in type(exc).__mro__ if kind in handlers),
                           internal_error_handler)
            response = handler(request, exc)
        if isinstance(response, DirectResponse):
            await response.send(send)
        else:
            await response.to_asgi_response(app=None, request=request)(scope, receive, send)

    return serve


class _DocumentedOpenAPIPlugin(OpenAPIPlugin):
    """Litestar's OpenAPI plugin, adding the kit's documentation to the document when it is
    built: on the first request for it, not at start-up (a process nobody asks keeps ~0.5 MB
    less). Swapped in as the class of the plugin Litestar made, so it adds no slots."""

    __slots__ = ()

    def _build_openapi(self) -> Any:
        openapi = super()._build_openapi()
        bodies, operations = self.app.state.openapi_documentation
        _document_bodies(openapi, bodies)
        document_operations(openapi, operations)
        return openapi


def _document_bodies(openapi: Any, bodies: Mapping[str, Any]) -> None:
    if not bodies:
        return
    names = list(bodies)
    schemas, components = msgspec.json.schema_components(
        [bodies[name] for name in names], ref_template="#/components/schemas/{name}")
    for path_item in (openapi.paths or {}).values():
        for method in ("post", "put", "patch", "delete"):
            operation = getattr(path_item, method, None)
            if operation is not None and operation.operation_id in bodies and operation.request_body is None:
                schema = schemas[names.index(operation.operation_id)]
                operation.request_body = RequestBody(
                    content={"application/json": OpenAPIMediaType(schema=schema)}, required=True)
    if openapi.components is None:
        openapi.components = Components()
    openapi.components.schemas = {**(openapi.components.schemas or {}), **components}

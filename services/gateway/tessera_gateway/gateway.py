"""The gateway as one raw ASGI application.

Per request: one pass over the headers, a route-table lookup, the Management API check (a dict
hit for a token seen before), then either a local answer or the proxy. No framework sits in the
hot path: Litestar's routing, request objects and middleware would cost more than the work itself,
and the gateway needs none of what they offer (validation, DI, generated OpenAPI).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from tessera_events import SYSTEM
from tessera_kit.assertion import ASSERTION_HEADER, CLIENT_IP_HEADER, AssertionSigner, request_target
from tessera_kit import metrics
from tessera_kit.context import new_request_id, request_id_var
from tessera_kit.errors import RequestError
from tessera_kit.logging import get_logger
from tessera_gateway.auth import InternalCalls, JwksCache, ManagementAuth, TokenVerifier
from tessera_gateway.handlers import OwnRoutes
from tessera_gateway.openapi import OpenApiAggregator
from tessera_gateway.proxy import CLOSE, REQUEST_ID, IncomingRequest, Proxy, bad_request
from tessera_gateway.responses import send_error, send_not_found
from tessera_gateway.routes import GATEWAY, RouteTable, route_table_for
from tessera_gateway.settings import GatewaySettings
from tessera_gateway.replicas import upstream_for

log = get_logger(__name__)

# An incoming X-Request-Id is kept only if it is short and harmless in logs and headers.
_SANE_REQUEST_ID = re.compile(rb"[A-Za-z0-9_-]{1,64}").fullmatch


class Gateway:
    def __init__(self, settings: GatewaySettings):
        self.settings = settings
        # One listener serves one tenant, the one its endpoint belongs to (settings.tenant_id):
        # the tenant every assertion names comes from configuration, never from the request.
        self.routes = RouteTable(route_table_for(settings.is_admin_tenant))
        self.pools = {
            name: upstream_for(name, urls, down_seconds=settings.replica_down_seconds,
                               max_connections=settings.max_upstream_connections,
                               connect_timeout=settings.connect_timeout, read_timeout=settings.read_timeout)
            for name, urls in settings.upstream_replicas.items()
        }
        self.proxy = Proxy(trust_forwarded=settings.trust_forwarded)
        # Every request that reaches a service carries the gateway's signed word for it.
        self.signer = AssertionSigner(settings.internal_key, settings.tenant_id)  # no key: no start
        # For the gateway's own calls (JWKS, OpenAPI documents), not for proxying.
        self.http = httpx.AsyncClient(timeout=httpx.Timeout(5.0, connect=settings.connect_timeout),
                                      auth=InternalCalls(self.signer, [url for urls in settings.upstream_replicas.values() for url in urls]))
        jwks = JwksCache(settings.effective_jwks_url, self.http,
                         refresh_interval=settings.jwks_refresh_interval, max_age=settings.jwks_max_age)
        verifier = TokenVerifier(jwks, issuer=settings.issuer, audience=settings.effective_management_audience,
                                 leeway=settings.jwt_leeway, cache_size=settings.token_cache_size)
        self.auth = ManagementAuth(verifier, dev_auth=settings.dev_auth)
        # The Me API: the same keys and issuer, its own audience; a user's token only.
        me_verifier = TokenVerifier(jwks, issuer=settings.issuer, audience=settings.me_audience,
                                    leeway=settings.jwt_leeway, cache_size=settings.token_cache_size)
        self.me_auth = ManagementAuth(me_verifier, dev_auth=settings.dev_auth, users_only=True)
        # Counted by route pattern (never the raw path) and status, as the services are.
        self._http = metrics.metrics_middleware(self._route)
        self.own = OwnRoutes(OpenApiAggregator(settings.upstream_urls, self.http,
                                               cache_seconds=settings.openapi_cache_seconds))

    # ------------------------------------------------------------------ lifespan

    async def startup(self) -> None:
        self.own.ready = True
        log.info("gateway started", port=self.settings.port, tenant=self.settings.tenant_id, upstreams=self.settings.upstream_urls,
                 jwks=self.settings.effective_jwks_url, dev_auth=self.settings.dev_auth)

    async def shutdown(self) -> None:
        self.own.ready = False
        for pool in self.pools.values():
            await pool.close()
        await self.http.aclose()

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.startup()
                except Exception as error:
                    log.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": repr(error)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.shutdown()
                await send({"type": "lifespan.shutdown.complete"})
                return

    # ------------------------------------------------------------------ requests

    async def __call__(self, scope: dict[str, Any], receive, send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)
        # websocket: nothing behind the gateway speaks it; returning closes the connection.

    async def _route(self, scope: dict[str, Any], receive, send) -> None:
        """Answer or forward the request; the pattern it matched goes in `path_template` (metrics)."""
        incoming = IncomingRequest(scope["headers"])
        request_id = incoming.request_id
        if request_id is None or not _SANE_REQUEST_ID(request_id):
            request_id = new_request_id().encode()
        token = request_id_var.set(request_id.decode())
        echo = [(REQUEST_ID, request_id)]
        try:
            if incoming.framing_error is not None:
                # Ambiguous framing (RFC 9112 §6.3, §11.2): refused, and the connection closed so
                # no byte of it can be read as another request.
                await send_error(send, bad_request(incoming.framing_error), [*echo, CLOSE])
                return
            # The decoded path, as the services' own routers see it (so `%2F` cannot make the
            # gateway and a service disagree on which route this is); the raw one is forwarded.
            route = self.routes.match(scope["path"])
            if route is None:
                await send_not_found(send, echo)
                return
            scope["path_template"] = route.pattern
            if route.service == GATEWAY:
                await self.own.handle(route.pattern, scope, send, echo)
                return
            caller = SYSTEM  # /oidc, the sign-in pages and the public /api routes
            # A CORS preflight carries no credentials by design; the service answers it.
            if (route.management or route.me) and not _is_preflight(scope, incoming):
                auth = self.me_auth if route.me else self.auth
                try:
                    caller = await auth.authenticate(incoming.authorization, incoming.development_user_id)
                except RequestError as error:
                    await send_error(send, error, echo)
                    return
            pool = self.pools.get(route.service)
            if pool is None:  # not deployed / not configured
                await send_error(send, RequestError("service.unavailable", 503, service=route.service), echo)
                return
            # For exactly this method, target, request id and client address, as the proxy forwards them.
            client = self.proxy.client_address(scope, incoming)
            assertion = self.signer.sign(scope["method"], request_target(scope), caller, request_id, client=client)
            await self.proxy.forward(scope, receive, send, pool, incoming, request_id,
                                     [(CLIENT_IP_HEADER, client), (ASSERTION_HEADER, assertion)])
        finally:
            request_id_var.reset(token)


def _is_preflight(scope: dict[str, Any], incoming: IncomingRequest) -> bool:
    return scope["method"] == "OPTIONS" and any(
        name == b"access-control-request-method" for name, _ in incoming.forward
    )

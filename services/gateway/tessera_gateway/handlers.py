"""The gateway's own routes: health, `/api/status`, the merged OpenAPI and the AsyncAPI document."""

from __future__ import annotations

import ipaddress
from typing import Any, Awaitable, Callable

import msgspec

from tessera_kit import metrics
from tessera_kit.errors import RequestError
from tessera_kit.logging import get_logger
from tessera_gateway.openapi import OpenApiAggregator
from tessera_gateway.responses import JSON, Send, send_bytes, send_error, send_json, send_not_found

log = get_logger(__name__)

Handler = Callable[[dict[str, Any], Send, list[tuple[bytes, bytes]]], Awaitable[None]]
_READ_METHODS = frozenset({"GET", "HEAD"})


def _internal_peer(scope: dict[str, Any]) -> bool:
    """The connecting peer is not a public (global) address: loopback, private, shared (CGNAT
    pod ranges), link-local. No peer known: not internal."""
    client = scope.get("client")
    try:
        address = ipaddress.ip_address(client[0]) if client else None
    except ValueError:
        return False
    if address is None:
        return False
    mapped = getattr(address, "ipv4_mapped", None)
    return not (mapped or address).is_global


class OwnRoutes:
    def __init__(self, openapi: OpenApiAggregator):
        self.openapi = openapi
        self.ready = False
        self._asyncapi: bytes | None = None
        # Route-table pattern -> handler; every one answers GET (and HEAD, like Koa's router).
        self.handlers: dict[str, Handler] = {
            "/health/live": self.live,
            "/health/ready": self.health_ready,
            "/metrics": self.metrics,
            "/api/status": self.status,
            "/api/swagger.json": self.swagger,
            "/api/asyncapi.json": self.asyncapi,
        }

    async def handle(self, pattern: str, scope: dict[str, Any], send: Send,
                     headers: list[tuple[bytes, bytes]]) -> None:
        if scope["method"] not in _READ_METHODS:
            await send_bytes(send, 405, b"Method Not Allowed", b"text/plain; charset=utf-8",
                             [(b"allow", b"HEAD, GET"), *headers])
            return
        if scope["method"] == "HEAD":
            send = _without_body(send)
        await self.handlers[pattern](scope, send, headers)

    async def live(self, scope, send: Send, headers) -> None:
        await send_json(send, 200, {"status": "ok"}, headers)

    async def health_ready(self, scope, send: Send, headers) -> None:
        # No database, no bus: ready as soon as the upstream pools and the JWKS client exist.
        if self.ready:
            await send_json(send, 200, {"status": "ready"}, headers)
        else:
            await send_json(send, 503, {"status": "starting"}, headers)

    async def metrics(self, scope, send: Send, headers) -> None:
        # For Prometheus scraping the pod, not for the public: a request that came through a
        # proxy (the Ingress adds X-Forwarded-For), or straight from a public address (the
        # gateway as the edge: no proxy, no header), is told there is nothing here.
        if any(name == b"x-forwarded-for" for name, _ in scope["headers"]) or not _internal_peer(scope):
            await send_not_found(send, headers)
            return
        await send_bytes(send, 200, metrics.exposition(), metrics.CONTENT_TYPE.encode(), headers)

    async def status(self, scope, send: Send, headers) -> None:
        await send_bytes(send, 204, b"", None, headers)

    async def swagger(self, scope, send: Send, headers) -> None:
        await send_bytes(send, 200, await self.openapi.document(), JSON, headers)

    async def asyncapi(self, scope, send: Send, headers) -> None:
        if self._asyncapi is None:
            try:
                # Imported on first use: the event catalogue is a separate package whose
                # document builder may be absent or broken without taking the gateway down.
                from tessera_events.asyncapi import build_document

                document = build_document()
            except Exception as error:  # noqa: BLE001 - any failure means "not available"
                log.warning("asyncapi document unavailable", error=repr(error))
                await send_error(send, RequestError("service.unavailable", 503, service="asyncapi"), headers)
                return
            self._asyncapi = msgspec.json.encode(document)
        await send_bytes(send, 200, self._asyncapi, JSON, headers)


def _without_body(send: Send) -> Send:
    """HEAD: the same status and headers (Content-Length included), no body."""

    async def send_head(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)

    return send_head

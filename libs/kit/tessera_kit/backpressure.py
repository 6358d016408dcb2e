"""Load shedding: at most `max_in_flight` requests are handled at once by a service process;
one more is answered at once with 503 `service.unavailable` and `Retry-After`.

Why: when PostgreSQL or NATS stalls, requests wait on it. Without a bound they pile up (each
holds its body, its coroutine, its buffers) for as long as the stall lasts and as fast as
clients send them, and the process's memory grows with the stall; with it, the process holds
at most `max_in_flight` of them and the rest learn right away to come back later. Health
probes are never shed (readiness must still say what is wrong).
"""

from __future__ import annotations

import json

from litestar.types import ASGIApp, Receive, Scope, Send

from tessera_kit.errors import service_unavailable
from tessera_kit.outage import RETRY_AFTER_SECONDS

_HEALTH = "/health/"


class InFlight:
    """The count of requests a process is handling (shared by the middleware and tests)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.current = 0
        self.peak = 0
        self.shed = 0


def load_shedding(service: str, in_flight: InFlight):
    """ASGI middleware factory (Litestar `DefineMiddleware`) bound to one `InFlight`."""
    error = service_unavailable(service)
    body = (
        b'{"message":' + json.dumps(error.message).encode() + b',"code":"' + error.code.encode() + b'"}'
    )
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
               (b"retry-after", str(RETRY_AFTER_SECONDS).encode())]

    def middleware(app: ASGIApp) -> ASGIApp:
        async def shed_or_handle(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"].startswith(_HEALTH):
                await app(scope, receive, send)
                return
            if in_flight.current >= in_flight.limit:
                in_flight.shed += 1
                await send({"type": "http.response.start", "status": 503, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
            in_flight.current += 1
            in_flight.peak = max(in_flight.peak, in_flight.current)
            try:
                await app(scope, receive, send)
            finally:
                in_flight.current -= 1

        return shed_or_handle

    return middleware


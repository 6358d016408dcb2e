"""A dependency outage (PostgreSQL or NATS down, restarting, or out of connections) is the
client's 503 `service.unavailable` with `Retry-After`, not a 500: the request did not fail
because of what the client sent, and the same request later will work.

`is_outage(exc)` says whether an exception is one; `OUTAGE_EXCEPTIONS` are the types the app
factory maps to the 503 (Litestar picks a handler by the exception's class hierarchy).
"""

from __future__ import annotations

import asyncio

import asyncpg
import nats.errors
import nats.js.errors

from tessera_kit.errors import service_unavailable

# Seconds a client should wait before trying again: a restart of either takes about this long.
RETRY_AFTER_SECONDS = 2

OUTAGE_EXCEPTIONS: tuple[type[BaseException], ...] = (
    # PostgreSQL: unreachable, gone mid-query, restarting, shutting down, out of connections.
    asyncpg.PostgresConnectionError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    asyncpg.exceptions.TooManyConnectionsError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    # NATS: disconnected, reconnecting, or JetStream not answering.
    nats.errors.ConnectionClosedError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.OutboundBufferLimitError,
    nats.errors.NoServersError,
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.js.errors.ServiceUnavailableError,
    # A socket refused or reset (a pool opening a new connection to a server that is down).
    ConnectionError,
    asyncio.TimeoutError,  # pool.acquire / connect timeouts
)


def is_outage(exc: BaseException) -> bool:
    """True for an exception caused by PostgreSQL or NATS being unavailable, also when it
    is wrapped (raised `from` one, or an asyncpg InterfaceError about a closed connection)."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OUTAGE_EXCEPTIONS):
            return True
        if isinstance(exc, asyncpg.InterfaceError) and "connection" in str(exc) and "closed" in str(exc):
            return True
        # Seen only while PostgreSQL was being killed (chaos): a pooled connection whose protocol
        # was left mid-operation by the lost server. Not investigated further: see the closing
        # note of the session that added this.
        if isinstance(exc, asyncpg.exceptions.InternalClientError) and "another operation" in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return False


def retry_after_headers() -> dict[str, str]:
    return {"retry-after": str(RETRY_AFTER_SECONDS)}


def outage_error(service: str):
    """The RequestError a client sees: 503 service.unavailable, with Retry-After."""
    error = service_unavailable(service)
    error.headers = retry_after_headers()  # read by the kit's RequestError handler
    return error

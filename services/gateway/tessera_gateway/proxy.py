"""Forwarding a request to its upstream service and the answer back, streamed both ways.

Request headers: hop-by-hop ones go (RFC 9110 §7.6.1), so do client-sent `X-Tessera-*` (the
gateway's word to the services) and, unless a trusted proxy is in front, client-sent
`X-Forwarded-*`; the gateway adds Host (the upstream's), `X-Forwarded-For/-Proto/-Host`,
`X-Request-Id`, the client's address and the assertion (`extra_headers`, from the gateway). Response headers come back
unchanged (each `Set-Cookie` and `Link` on its own line) minus hop-by-hop ones.

Framing: the client's framing headers (`Content-Length`, `Transfer-Encoding`) are never
forwarded; the upstream client frames each request itself from the body the gateway read, and
whatever `Connection` names is dropped from the client's headers only, so it can never take away
that framing. Ambiguous framing (RFC 9112 §6.3, §11.2: Transfer-Encoding with Content-Length,
several or invalid Content-Lengths, a transfer coding other than chunked, several Hosts) is
refused with 400 and the connection closed, before anything is read or forwarded
(`IncomingRequest.framing_error`, checked first thing by the gateway). What granian itself does
with each smuggling vector is in tests/test_smuggling.py.

Streaming: a request without Content-Length or Transfer-Encoding (or with a length of 0) has no
body to read. Otherwise the first ASGI body message is awaited; if it is the whole body (the usual case:
all of the client's Content-Length, even when granian has yet to say so) it goes up in the same
write as the head, with its exact Content-Length. Otherwise the rest follows
as the client sends it (with the client's checked Content-Length, which h11 holds the stream to,
or chunked), with back-pressure. The answer goes back chunk by chunk as it arrives. Nothing is
buffered beyond a chunk.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable

from tessera_kit.assertion import request_target
from tessera_kit.errors import RequestError
from tessera_kit.logging import get_logger
from tessera_gateway.responses import send_error
from tessera_gateway.upstream import RequestNotSendable, UpstreamError, UpstreamPool

log = get_logger(__name__)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = list[tuple[bytes, bytes]]

# RFC 9110 §7.6.1: meaningful for one connection only, never forwarded.
HOP_BY_HOP = frozenset({
    b"connection", b"keep-alive", b"proxy-connection", b"proxy-authenticate",
    b"proxy-authorization", b"te", b"trailer", b"trailers", b"transfer-encoding", b"upgrade",
})
FORWARDED = frozenset({b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                       b"x-forwarded-port", b"x-forwarded-prefix", b"forwarded", b"x-real-ip"})
# Headers in this namespace are the gateway's word to the services (the verified caller);
# a client must never be able to send one.
INTERNAL_PREFIX = b"x-tessera-"
REQUEST_ID = b"x-request-id"
DEVELOPMENT_USER_ID = b"development-user-id"
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS"})

# What to do with each incoming request header (all others are forwarded as they are).
(_DROP, _HOST, _AUTHORIZATION, _DEV_USER, _REQUEST_ID, _CONTENT_LENGTH, _TRANSFER_ENCODING, _CONNECTION,
 _FWD) = range(9)
_ACTIONS: dict[bytes, int] = {
    **{name: _DROP for name in HOP_BY_HOP},
    b"connection": _CONNECTION,
    b"transfer-encoding": _TRANSFER_ENCODING,
    b"expect": _DROP,  # the server already answered `100-continue` when we read the body
    b"host": _HOST,
    b"authorization": _AUTHORIZATION,
    DEVELOPMENT_USER_ID: _DEV_USER,
    REQUEST_ID: _REQUEST_ID,
    b"content-length": _CONTENT_LENGTH,
    **{name: _FWD for name in FORWARDED},
}
_RESPONSE_DROP = HOP_BY_HOP | {REQUEST_ID}


_MAX_CONTENT_LENGTH_DIGITS = 18  # below 2**63: no Content-Length may overflow anything downstream


class IncomingRequest:
    """One pass over the client's headers: what to forward, what the gateway needs, and whether
    the request's framing is ambiguous (`framing_error`: then it must be refused)."""

    __slots__ = ("forward", "host", "authorization", "development_user_id", "request_id",
                 "content_length", "chunked", "forwarded", "framing_error")

    def __init__(self, raw_headers: Headers):
        forward: Headers = []
        self.host = self.authorization = self.development_user_id = self.request_id = None
        self.content_length: int | None = None
        self.framing_error: str | None = None
        self.forwarded: dict[bytes, bytes] = {}
        connection_tokens: bytes | None = None
        hosts = lengths = codings = 0
        actions = _ACTIONS
        for name, value in raw_headers:
            action = actions.get(name)
            if action is None:
                if not name.startswith(INTERNAL_PREFIX):
                    forward.append((name, value))
            elif action == _AUTHORIZATION:
                self.authorization = value
                forward.append((name, value))  # /oidc/me needs it, services may log the caller
            elif action == _CONTENT_LENGTH:
                # The client's framing, checked and never forwarded: the upstream request is
                # framed from the body the gateway read.
                lengths += 1
                value = value.strip(b" \t")
                if value.isdigit() and len(value) <= _MAX_CONTENT_LENGTH_DIGITS:
                    self.content_length = int(value)
                else:
                    self.framing_error = "The Content-Length header is invalid."
            elif action == _TRANSFER_ENCODING:
                codings += 1
                if value.strip(b" \t").lower() != b"chunked":
                    self.framing_error = "Only the chunked transfer coding is accepted."
            elif action == _HOST:
                hosts += 1
                self.host = value
            elif action == _REQUEST_ID:
                self.request_id = value
            elif action == _DEV_USER:
                self.development_user_id = value
            elif action == _FWD:
                self.forwarded[name] = value
            elif action == _CONNECTION:
                connection_tokens = value
        self.chunked = codings > 0
        if lengths > 1 or codings > 1 or hosts > 1:
            self.framing_error = "The request has several Content-Length, Transfer-Encoding or Host headers."
        elif lengths and codings:
            self.framing_error = "The request has both Content-Length and Transfer-Encoding."
        if connection_tokens:
            # `Connection: foo` makes `foo` hop-by-hop too.
            named = {t.strip().lower() for t in connection_tokens.split(b",")}
            forward = [(n, v) for n, v in forward if n not in named]
        self.forward = forward


class ClientDisconnected(Exception):
    """The client went away, or granian could not read its body (it reports a malformed chunk
    size or a truncated body as a disconnect)."""


def bad_request(details: str) -> RequestError:
    return RequestError("request.invalid_input", 400, details=details)


CLOSE = (b"connection", b"close")
_BAD_BODY = "The request body is malformed or incomplete."


_EMPTY_BODY = {"type": "http.request", "body": b"", "more_body": False}
_DRAIN_LIMIT = 4 * 1024 * 1024
_DRAIN_SECONDS = 5.0


async def _drain(body: AsyncIterator[bytes]) -> None:
    """Read what is left of a request body, at most _DRAIN_LIMIT bytes for _DRAIN_SECONDS."""
    async def read() -> None:
        total = 0
        async for chunk in body:
            total += len(chunk)
            if total > _DRAIN_LIMIT:
                return

    try:
        await asyncio.wait_for(read(), _DRAIN_SECONDS)
    except (asyncio.TimeoutError, ClientDisconnected, RuntimeError):
        pass  # the connection closes after the answer either way


async def _rest_of_body(first: bytes, receive: Receive) -> AsyncIterator[bytes]:
    if first:
        yield first
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        body = message.get("body")
        if body:
            yield body
        if not message.get("more_body"):
            return


def _is_disconnect(received: asyncio.Future) -> bool:
    if received.cancelled() or received.exception() is not None:
        return True
    return received.result()["type"] == "http.disconnect"


class Proxy:
    def __init__(self, *, trust_forwarded: bool = False):
        self._trust_forwarded = trust_forwarded

    def client_address(self, scope: Scope, incoming: IncomingRequest) -> bytes:
        """The one address services believe (rate limits, logs), stated in `X-Tessera-Client-IP`
        and signed into the assertion: the gateway's own peer, or behind a trusted proxy the
        client that proxy saw (the hop it appended; not the proxy, which every client shares)."""
        client = scope.get("client")
        peer = client[0].encode() if client else b""
        if self._trust_forwarded:
            previous = incoming.forwarded.get(b"x-forwarded-for")
            if previous:
                return previous.rsplit(b",", 1)[-1].strip()[:64] or peer
        return peer

    def _upstream_headers(self, scope: Scope, incoming: IncomingRequest, pool: UpstreamPool,
                          request_id: bytes, extra: Headers) -> Headers:
        headers = incoming.forward
        headers.append((b"host", pool.host_header))
        client = scope.get("client")
        client_address = client[0].encode() if client else b""
        host = incoming.host
        if host is None:  # HTTP/1.0 without Host
            server = scope.get("server") or ("localhost", None)
            host = (f"{server[0]}:{server[1]}" if server[1] else server[0]).encode()
        proto = scope.get("scheme", "http").encode()
        if self._trust_forwarded and incoming.forwarded:
            forwarded = incoming.forwarded
            previous = forwarded.get(b"x-forwarded-for")
            headers.append((b"x-forwarded-for", previous + b", " + client_address if previous else client_address))
            headers.append((b"x-forwarded-proto", forwarded.get(b"x-forwarded-proto", proto)))
            headers.append((b"x-forwarded-host", forwarded.get(b"x-forwarded-host", host)))
        else:
            headers.append((b"x-forwarded-for", client_address))
            headers.append((b"x-forwarded-proto", proto))
            headers.append((b"x-forwarded-host", host))
        headers.append((REQUEST_ID, request_id))
        headers.extend(extra)
        return headers

    async def forward(self, scope: Scope, receive: Receive, send: Send, pool: UpstreamPool,
                      incoming: IncomingRequest, request_id: bytes, extra_headers: Headers = ()) -> None:
        method: str = scope["method"]
        target = request_target(scope)
        headers = self._upstream_headers(scope, incoming, pool, request_id, list(extra_headers))

        echo = [(REQUEST_ID, request_id)]
        # Neither Content-Length nor Transfer-Encoding (a GET), or a length of 0: the body is
        # empty by definition (RFC 9112 §6.3), nothing to ask granian for.
        body_unread = incoming.chunked or bool(incoming.content_length)
        message = await receive() if body_unread else _EMPTY_BODY
        if message["type"] == "http.disconnect":
            # Gone, or a body granian could not read: nothing goes up. (If the client is gone,
            # granian drops this answer.)
            await send_error(send, bad_request(_BAD_BODY), [*echo, CLOSE])
            return
        first: bytes = message.get("body", b"")
        body: bytes | AsyncIterator[bytes]
        # The whole body in one message (the usual case): sent with its exact length. granian
        # hands a Content-Length body over as `more_body: True` and then an empty final
        # message: the first already holds the whole body when it holds Content-Length bytes
        # (granian delivers no more than that), and waiting for the empty one would turn each
        # request into a stream (three writes upstream instead of one). Otherwise a stream, held
        # by h11 to the client's Content-Length, or chunked without one.
        whole = not message.get("more_body") or (
            incoming.content_length is not None and len(first) == incoming.content_length)
        body = first if whole else _rest_of_body(first, receive)

        try:
            response = await pool.request(
                method.encode(), target, headers, body, length=incoming.content_length,
                # A keep-alive connection the upstream closed an instant ago fails on first use;
                # a request that cannot have had an effect is then sent once more.
                retry_on_stale=method in _IDEMPOTENT and isinstance(body, bytes),
            )
        except (ClientDisconnected, RequestNotSendable) as error:
            # At most half a request went up, on a connection now closed; none of it is served.
            # (A client that went away does not see this answer: granian drops it.)
            if isinstance(error, RequestNotSendable):
                log.warning("request not forwarded", upstream=pool.name, error=str(error))
            await send_error(send, bad_request(_BAD_BODY), [*echo, CLOSE])
            return
        except UpstreamError as error:
            log.warning("upstream failed", upstream=pool.name, status=error.status, error=str(error))
            # Retry-After invites the client to send the request again: not when the service
            # may have acted on it already (the whole write was up when the service went away).
            retry = ([(b"retry-after", b"2")]
                     if error.status == 503 and (method in _IDEMPOTENT or not error.request_sent) else [])
            await send_error(send, RequestError("service.unavailable", error.status, service=pool.name),
                             [*echo, *retry])
            return

        if not isinstance(body, bytes):
            # The upstream may have answered before reading the whole body (a 413 over its cap).
            # Read what the client is still sending (bounded) before answering: a server that
            # closes on unread bytes makes the client's TCP stack reset the connection, and the
            # client then sees no answer at all instead of the 413.
            await _drain(body)

        try:
            response_headers: Headers = [(n, v) for n, v in response.headers if n not in _RESPONSE_DROP]
            response_headers.append((REQUEST_ID, request_id))
            await send({"type": "http.response.start", "status": response.status, "headers": response_headers})
            # Each chunk goes on as soon as it arrives. The last chunk of a Content-Length body
            # is sent as the final message, so a small answer is one body message, not two.
            finished = False
            client_gone: asyncio.Future | None = None
            try:
                async for chunk in response.chunks():
                    finished = response.body_read
                    await send({"type": "http.response.body", "body": chunk, "more_body": not finished})
                    if finished:
                        continue
                    # A long answer: watch for the client going away, because granian's send()
                    # silently drops what is sent after that and we would read the upstream's whole
                    # answer for nobody. The request body is read by now, so receive() completes
                    # with `http.disconnect` (after the empty body's message, if it was not asked for).
                    if client_gone is None:
                        client_gone = asyncio.ensure_future(receive())
                    elif client_gone.done():
                        if _is_disconnect(client_gone):
                            log.debug("client went away mid-answer", upstream=pool.name)
                            return  # response.close() below drops the upstream connection
                        client_gone = asyncio.ensure_future(receive())
                if not finished:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                if client_gone is not None and not client_gone.done():
                    client_gone.cancel()
        except UpstreamError as error:
            # Too late for an error answer: the status line is out. Cut the client's connection
            # so it sees a truncated body rather than a complete-looking one.
            log.warning("upstream failed mid-answer", upstream=pool.name, error=str(error))
            raise
        finally:
            response.close()

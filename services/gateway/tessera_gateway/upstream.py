"""The gateway's upstream client: h11 for every byte of HTTP/1.1, a keep-alive pool of our own.

Framing and parsing are h11's, both ways: the request head, its body framing (which this module
chooses, never the caller: an exact `Content-Length`, or chunked for a body of unknown length),
and the answer (status line, headers, Content-Length/chunked/until-close bodies, no body for
HEAD/1xx/204/304, `Connection: close`). h11 refuses to send a body longer or shorter than the
length it announced and refuses header values with CR, LF or NUL, so nothing the client sent
can end an upstream request early or start another one.

Why not httpx/httpcore's pool: `httpx.AsyncClient` managed about 600 requests/s with 32
concurrent requests on the 2-core dev machine (httpcore's pool rescans every connection twice
per request); httpcore's connection class adds anyio streams and trace hooks around the same h11
calls. Here h11 sits directly on asyncio streams, with a LIFO stack of idle connections per
service and a semaphore bound (figures in the gateway README). It also stays out of a proxy's
way: no cookie jar, no default headers.

A connection goes back to the pool only when h11 says both sides finished the exchange (request
sent whole, answer read to its end, nobody said close) and nothing else arrived; after any
error, timeout or an answer not read to its end it is closed.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator
from urllib.parse import urlsplit

import h11

Headers = list[tuple[bytes, bytes]]

_HEAD_LIMIT = 64 * 1024  # largest response head accepted
_READ_SIZE = 256 * 1024  # most bytes read (and so passed on per body chunk) at a time
# Without a body, these requests carry no framing header at all (as clients send them).
_BODILESS_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"})


class UpstreamError(Exception):
    """The upstream gave no usable answer; `status` is what the client should get."""

    status = 502


class UpstreamUnavailable(UpstreamError):
    """No connection: refused, unreachable, connect timeout, or every connection busy."""

    status = 503


class UpstreamTimeout(UpstreamError):
    status = 504


class UpstreamProtocolError(UpstreamError):
    def __init__(self, message: str, *, nothing_received: bool = False):
        super().__init__(message)
        # The upstream closed before answering a single byte: on a reused keep-alive connection
        # that is the "closed while idle" race, and the request was most likely never read.
        self.nothing_received = nothing_received
        # A process that died (or restarts) with the request in flight is an outage of that
        # service, 503 with Retry-After, as when it refuses connections; a garbled answer is 502.
        self.status = 503 if nothing_received else 502


class RequestNotSendable(UpstreamError):
    """h11 refused to send the request as given (a header value it cannot carry, a body that
    does not match its length): the client's fault, and nothing was sent."""

    status = 400


class _Connection:
    __slots__ = ("reader", "writer", "protocol", "idle_since", "received")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.protocol = h11.Connection(h11.CLIENT, max_incomplete_event_size=_HEAD_LIMIT)
        self.idle_since = 0.0
        self.received = 0  # bytes of answer received for the current request

    def close(self) -> None:
        self.writer.close()

    def reusable(self) -> bool:
        protocol = self.protocol
        return (protocol.our_state is h11.DONE and protocol.their_state is h11.DONE
                and not protocol.trailing_data[0] and not self.reader.at_eof()
                and not self.writer.is_closing())

    def idle_and_quiet(self) -> bool:
        """Nothing arrived while the connection sat idle: an upstream that sends bytes nobody
        asked for (an extra answer, garbage) must not have them read as the next answer.
        StreamReader has no public "bytes buffered" call; `_buffer` has been its buffer since
        asyncio began."""
        return not self.reader.at_eof() and not self.writer.is_closing() \
            and not getattr(self.reader, "_buffer", b"")

    async def next_event(self, timeout: float) -> h11.Event:
        protocol = self.protocol
        while True:
            event = protocol.next_event()
            if event is not h11.NEED_DATA:
                return event
            async with asyncio.timeout(timeout):
                data = await self.reader.read(_READ_SIZE)
            if not data and not self.received:
                raise UpstreamProtocolError("connection closed without an answer", nothing_received=True)
            self.received += len(data)
            protocol.receive_data(data)  # b"": the upstream closed, h11 decides what that means


class UpstreamResponse:
    """Status and headers of an answer; the body is read with `chunks()`, then `close()`."""

    __slots__ = ("status", "headers", "body_read", "_pool", "_connection", "_read_timeout")

    def __init__(self, pool: "UpstreamPool", connection: _Connection, status: int, headers: Headers):
        self.status = status
        self.headers = headers
        # True once the chunk just handed out is the body's last, so it can be sent on as the
        # final one (a small answer is then one ASGI body message, not two).
        self.body_read = False
        self._pool = pool
        self._connection: _Connection | None = connection
        self._read_timeout = pool.read_timeout

    async def chunks(self) -> AsyncIterator[bytes]:
        connection = self._connection
        assert connection is not None
        protocol = connection.protocol
        pending: bytes | None = None  # a chunk held back to see whether the body ends after it
        try:
            while True:
                event = protocol.next_event()
                if event is h11.NEED_DATA:
                    if pending is not None:  # more must be read: pass on what we have first
                        yield pending
                        pending = None
                    async with asyncio.timeout(self._read_timeout):
                        data = await connection.reader.read(_READ_SIZE)
                    protocol.receive_data(data)
                elif type(event) is h11.Data:
                    if pending is not None:
                        yield pending
                    pending = bytes(event.data)
                elif type(event) is h11.EndOfMessage:
                    if pending is not None:
                        self.body_read = True
                        yield pending
                    return
                else:
                    raise UpstreamProtocolError(f"unexpected {type(event).__name__} in the body")
        except TimeoutError:
            raise UpstreamTimeout("upstream stopped sending the body") from None
        except (OSError, h11.ProtocolError) as error:
            raise UpstreamProtocolError(f"bad body: {error!r}") from None

    def close(self) -> None:
        """Give the connection back if h11 says the exchange is complete, else drop it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool._release(connection)


class UpstreamPool:
    """Keep-alive connections to one upstream service."""

    def __init__(self, name: str, base_url: str, *, max_connections: int = 512, connect_timeout: float = 2.0,
                 read_timeout: float = 60.0, keepalive_expiry: float = 30.0):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bad URL for the {name} service: {base_url!r}")
        self.name = name
        self.base_url = base_url
        self.host = parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.ssl = parts.scheme == "https"
        self.host_header = parts.netloc.encode("ascii")
        self.path_prefix = parts.path.rstrip("/").encode()
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.keepalive_expiry = keepalive_expiry
        self._idle: list[_Connection] = []
        self._slots = asyncio.Semaphore(max_connections)
        self.connections_opened = 0

    async def request(self, method: bytes, target: bytes, headers: Headers,
                      body: bytes | AsyncIterator[bytes], *, length: int | None = None,
                      retry_on_stale: bool = False) -> UpstreamResponse:
        """Send a request and read the head of the answer.

        `headers` include Host and no framing header: the request is framed here, with
        `Content-Length: len(body)` for bytes, and for a stream `Content-Length: length` if the
        length is known (h11 then holds the stream to it exactly) or else chunked.
        `retry_on_stale`: the request may be sent again on a fresh connection if a reused one
        turns out to have been closed by the upstream."""
        head = self._request_head(method, target, headers, body, length)
        await self._take_slot()
        try:
            allow_idle = True
            while True:
                connection, reused = await self._connection(allow_idle)
                try:
                    try:
                        await self._write(connection, head, body)
                    except UpstreamProtocolError:
                        early = await self._early_answer(connection)
                        if early is None:
                            raise
                        return early
                    return await self._read_head(connection)
                except UpstreamProtocolError as error:
                    connection.close()
                    if reused and retry_on_stale and error.nothing_received:
                        retry_on_stale = allow_idle = False  # once, on a new connection
                        continue
                    raise
                except BaseException:
                    connection.close()
                    raise
        except BaseException:
            self._slots.release()
            raise

    async def _early_answer(self, connection: _Connection) -> UpstreamResponse | None:
        """The upstream closed while the body was still going out: it may have answered first
        (a 413 for a body over its cap, sent before reading the rest; RFC 9112 §9.3 asks a
        client to read such an answer). Then that answer is relayed rather than a 502; the
        connection is not reused (h11 never finished our side of it)."""
        reader = connection.reader
        if reader.exception() is not None:
            # A reset after the answer: StreamReader raises before handing out what it holds,
            # so the bytes it buffered go to h11 directly, followed by the end of the stream.
            buffered = getattr(reader, "_buffer", None)
            if not buffered:
                return None
            data = bytes(buffered)
            buffered.clear()
            connection.received += len(data)
            connection.protocol.receive_data(data)
            connection.protocol.receive_data(b"")
        try:
            return await self._read_head(connection)
        except UpstreamError:
            return None

    def _request_head(self, method: bytes, target: bytes, headers: Headers,
                      body: bytes | AsyncIterator[bytes], length: int | None) -> h11.Request:
        framed = list(headers)
        if isinstance(body, bytes):
            if body or method not in _BODILESS_METHODS:
                framed.append((b"content-length", b"%d" % len(body)))
        elif length is not None:
            framed.append((b"content-length", b"%d" % length))
        else:
            framed.append((b"transfer-encoding", b"chunked"))
        try:
            # h11 validates every name and value (no CR, LF or NUL; one framing) as it builds it.
            return h11.Request(method=method, target=self.path_prefix + target, headers=framed)
        except h11.LocalProtocolError:
            # Not h11's text: it quotes the offending value, which may be a credential.
            raise RequestNotSendable("a request header h11 will not send") from None

    async def _take_slot(self) -> None:
        if self._slots.locked():
            try:
                async with asyncio.timeout(self.connect_timeout):
                    await self._slots.acquire()
            except TimeoutError:
                raise UpstreamUnavailable("every connection to the upstream is busy") from None
        else:
            await self._slots.acquire()

    async def _connection(self, allow_idle: bool = True) -> tuple[_Connection, bool]:
        idle = self._idle
        if idle and allow_idle:
            deadline = time.monotonic() - self.keepalive_expiry
            while idle:
                connection = idle.pop()  # the most recently used is the least likely to be stale
                if connection.idle_since > deadline and connection.idle_and_quiet():
                    connection.received = 0
                    return connection, True
                connection.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl or None, limit=_READ_SIZE
                )
        except TimeoutError:
            raise UpstreamUnavailable("connect timeout") from None
        except OSError as error:
            raise UpstreamUnavailable(f"connect failed: {error}") from None
        self.connections_opened += 1
        return _Connection(reader, writer), False

    async def _write(self, connection: _Connection, head: h11.Request,
                     body: bytes | AsyncIterator[bytes]) -> None:
        protocol = connection.protocol
        writer = connection.writer
        try:
            if isinstance(body, bytes):
                # Head, body and end in one write.
                parts = [protocol.send(head)]
                if body:
                    parts += protocol.send_with_data_passthrough(h11.Data(data=body))
                parts.append(protocol.send(h11.EndOfMessage()))
                writer.write(b"".join(parts))
                return
            writer.write(protocol.send(head))
            async for chunk in body:
                if chunk:  # an empty chunk would end a chunked body early
                    writer.writelines(protocol.send_with_data_passthrough(h11.Data(data=chunk)))
                    async with asyncio.timeout(self.read_timeout):
                        await writer.drain()  # back-pressure: never hold more than the socket buffer
            writer.write(protocol.send(h11.EndOfMessage()))
        except h11.LocalProtocolError:
            # The stream did not match its Content-Length: the upstream has a partial request,
            # and this connection is closed by the caller.
            raise RequestNotSendable("the request body does not match its length") from None
        except TimeoutError:
            raise UpstreamTimeout("upstream stopped reading the request body") from None
        except (OSError, RuntimeError) as error:  # RuntimeError: uvloop, transport already closed
            raise UpstreamProtocolError(f"write failed: {error!r}", nothing_received=True) from None

    async def _read_head(self, connection: _Connection) -> UpstreamResponse:
        try:
            while True:
                event = await connection.next_event(self.read_timeout)
                if type(event) is h11.Response:
                    break
                if type(event) is not h11.InformationalResponse:  # 100 Continue, 103 Early Hints
                    raise UpstreamProtocolError(f"unexpected {type(event).__name__} instead of an answer")
        except TimeoutError:
            raise UpstreamTimeout("no answer in time") from None
        except ConnectionError as error:
            raise UpstreamProtocolError(f"connection failed: {error!r}",
                                        nothing_received=not connection.received) from None
        except (OSError, h11.ProtocolError) as error:
            raise UpstreamProtocolError(f"bad answer: {error!r}") from None
        return UpstreamResponse(self, connection, event.status_code, list(event.headers))

    def _release(self, connection: _Connection) -> None:
        self._slots.release()
        if connection.reusable():
            connection.protocol.start_next_cycle()
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

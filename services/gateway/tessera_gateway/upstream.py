"""The gateway's upstream client: maintained libraries for every byte of HTTP/1.1, a keep-alive
pool of our own.

Requests are framed by h11: the request head and its body framing (which this module chooses,
never the caller: an exact `Content-Length`, or chunked for a body of unknown length). h11
refuses to send a body longer or shorter than the length it announced and header values with
CR, LF or NUL, so nothing the client sent can end an upstream request early or start another.

Answers are parsed by llhttp (Node's parser, in C, through httptools): status line, headers,
Content-Length/chunked/until-close bodies, no body for 1xx/204/304, `Connection: close` and
HTTP/1.0. In its strict mode it refuses what could desync us: Content-Length with
Transfer-Encoding, several or invalid Content-Lengths, bad chunk sizes, obs-fold, bare LF, NUL.
No body is read for HEAD (the answer ends with its head).

Why not h11 both ways, as before: h11's event machinery cost ~60 µs of CPU per request/answer
cycle and asyncio's streams another ~40 µs (the gateway spent ~130 µs of its ~210 µs per GET in
the client); here the connection is an `asyncio.Protocol` that hands each packet to llhttp as
it arrives (~2 µs to parse an answer), and h11 only writes (figures in the gateway README).
It also stays out of a proxy's way: no cookie jar, no default headers.

A connection goes back to the pool only when the request went out whole, the answer was read to
its end by llhttp, llhttp says the upstream keeps the connection alive, and no byte came after
the answer or while the connection sat idle; after any error, timeout or an answer not read to
its end it is closed.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator
from urllib.parse import urlsplit

import h11
import httptools

from tessera_kit.serve import IDLE_CONNECTION_SECONDS

Headers = list[tuple[bytes, bytes]]

_HEAD_LIMIT = 64 * 1024  # largest response head accepted
_READ_SIZE = 256 * 1024  # body bytes buffered before the socket stops being read (back-pressure)
# Without a body, these requests carry no framing header at all (as clients send them).
_BODILESS_METHODS = frozenset({b"GET", b"HEAD", b"OPTIONS", b"DELETE", b"TRACE"})


class UpstreamError(Exception):
    """The upstream gave no usable answer; `status` is what the client should get."""

    status = 502
    # The upstream closed before a byte of answer (UpstreamProtocolError says so).
    nothing_received = False
    # The whole request had gone up when this happened: the service may have acted on it.
    request_sent = False


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
        # service, 503 as when it refuses connections (with Retry-After unless it may have acted
        # on the request: `request_sent`, proxy.forward); a garbled answer is 502.
        self.status = 503 if nothing_received else 502


class RequestNotSendable(UpstreamError):
    """h11 refused to send the request as given (a header value it cannot carry, a body that
    does not match its length): the client's fault, and nothing was sent."""

    status = 400


class _Answer:
    """One answer as llhttp parses it (httptools calls the `on_*` methods from `feed_data`)."""

    __slots__ = ("parser", "head_only", "status", "headers", "head_done", "complete", "keep_alive",
                 "extra", "body", "buffered", "error", "waiter")

    def __init__(self, head_only: bool):
        self.parser = httptools.HttpResponseParser(self)
        self.head_only = head_only  # HEAD: the head is the whole answer
        self.status = 0
        self.headers: Headers = []
        self.head_done = False
        self.complete = False
        self.keep_alive = False
        self.extra = False  # bytes followed the answer: the connection cannot be reused
        self.body: list[bytes] = []
        self.buffered = 0
        self.error: UpstreamError | None = None
        self.waiter: asyncio.Future | None = None

    # ------------------------------------------------------------ llhttp's callbacks

    def on_message_begin(self) -> None:
        if self.complete:
            self.extra = True  # another answer nobody asked for

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self.complete:
            self.headers.append((name.lower(), value))
            self.buffered += len(name) + len(value)  # until the head is done: its size

    def on_headers_complete(self) -> None:
        if self.complete:
            return
        status = self.parser.get_status_code()
        if 100 <= status < 200:
            # 100 Continue, 103 Early Hints: interim, the real answer follows (llhttp reads no
            # body for them). 101 makes feed_data raise HttpParserUpgrade: refused below.
            self.headers = []
            return
        if self.buffered > _HEAD_LIMIT:  # llhttp sets no limit itself
            self.fail(UpstreamProtocolError("the answer's head is too long"))
            return
        self.buffered = 0
        self.status = status
        self.head_done = True
        # Asked now: once the answer is complete llhttp has already reset its flags.
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_only:
            self.complete = True
        self.wake()

    def on_body(self, body: bytes) -> None:
        if self.complete:
            self.extra = True  # a body after a HEAD answer
            return
        self.body.append(body)
        self.buffered += len(body)

    def on_message_complete(self) -> None:
        if self.status and not self.complete:  # not an interim answer's end
            self.complete = True
            self.wake()

    # ------------------------------------------------------------ from the connection

    def feed(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            self.fail(UpstreamProtocolError("the upstream switched protocols"))
        except httptools.HttpParserError as error:
            if self.complete:
                self.extra = True  # garbage after a complete answer: dropped with the connection
            else:
                self.fail(UpstreamProtocolError(f"bad answer: {error}"))
        self.wake()

    def ended(self, received: int, error: Exception | None) -> None:
        """The connection closed (or was reset)."""
        if self.complete:
            return
        if self.head_done and error is None and not self._delimited():
            self.complete = True  # a body that runs until the connection closes
        elif self.head_done:
            self.fail(UpstreamProtocolError("the upstream closed the connection mid-body"))
        else:
            self.fail(UpstreamProtocolError("connection closed without an answer" if not received
                                            else "connection closed mid-answer", nothing_received=not received))
        self.wake()

    def _delimited(self) -> bool:
        for name, value in self.headers:
            if name == b"content-length":
                return True
            if name == b"transfer-encoding" and value.rsplit(b",", 1)[-1].strip().lower() == b"chunked":
                return True
        return False

    def fail(self, error: UpstreamError) -> None:
        if self.error is None and not self.complete:
            self.error = error

    def wake(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)


class _Connection(asyncio.Protocol):
    __slots__ = ("transport", "answer", "idle_since", "received", "lost", "unasked", "sent",
                 "_paused", "_drained")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.answer: _Answer | None = None  # the answer being read, None while idle
        self.idle_since = 0.0
        self.received = 0  # bytes of answer received for the current request
        self.lost = False
        self.unasked = False  # bytes arrived while no answer was expected
        self.sent = False  # the current request went out whole
        self._paused = False  # reading paused: the proxy has not taken the body buffered so far
        self._drained: asyncio.Future | None = None  # set while the socket's write buffer is full

    # ------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        answer = self.answer
        if answer is None:
            # An upstream that sends bytes nobody asked for (an extra answer, garbage) must not
            # have them read as the next answer.
            self.unasked = True
            self.transport.close()
            return
        self.received += len(data)
        answer.feed(data)
        if not answer.head_done and self.received > _HEAD_LIMIT:  # a head that never ends
            answer.fail(UpstreamProtocolError("the answer's head is too long"))
            answer.wake()
            self.transport.close()
            return
        if answer.head_done and answer.buffered > _READ_SIZE and not self._paused:
            self._paused = True
            self.transport.pause_reading()

    def eof_received(self) -> bool:
        return False  # close: a half-closed upstream connection is of no use

    def connection_lost(self, error: Exception | None) -> None:
        self.lost = True
        if self.answer is not None:
            self.answer.ended(self.received, error)
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    def pause_writing(self) -> None:
        if self._drained is None or self._drained.done():
            self._drained = asyncio.get_running_loop().create_future()

    def resume_writing(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            drained.set_result(None)

    # ------------------------------------------------------------ ours

    async def drain(self) -> None:
        drained = self._drained
        if drained is not None and not drained.done():
            await drained
        if self.lost:
            raise ConnectionResetError("connection lost")

    def take_body(self) -> bytes:
        answer = self.answer
        body = answer.body
        data = body[0] if len(body) == 1 else b"".join(body)
        answer.body = []
        answer.buffered = 0
        if self._paused:
            self._paused = False
            self.transport.resume_reading()
        return data

    def close(self) -> None:
        self.answer = None
        if self.transport is not None:
            self.transport.close()

    def reusable(self) -> bool:
        answer = self.answer
        return (answer is not None and self.sent and answer.complete and answer.keep_alive
                and not answer.extra and not answer.body and not self.lost and not self.unasked
                and not self.transport.is_closing())

    def idle_and_quiet(self) -> bool:
        return not self.lost and not self.unasked and not self.transport.is_closing()


class UpstreamResponse:
    """Status and headers of an answer; the body is read with `chunks()`, then `close()`."""

    __slots__ = ("status", "headers", "body_read", "_pool", "_connection", "_read_timeout")

    def __init__(self, pool: "UpstreamPool", connection: _Connection, answer: _Answer):
        self.status = answer.status
        self.headers = answer.headers
        # True once the chunk just handed out is the body's last, so it can be sent on as the
        # final one (a small answer is then one ASGI body message, not two).
        self.body_read = False
        self._pool = pool
        self._connection: _Connection | None = connection
        self._read_timeout = pool.read_timeout

    async def chunks(self) -> AsyncIterator[bytes]:
        connection = self._connection
        assert connection is not None
        answer = connection.answer
        while True:
            if answer.body:
                data = connection.take_body()
                if answer.complete:
                    self.body_read = True
                    yield data
                    return
                yield data
            elif answer.complete:
                return
            elif answer.error is not None:
                if isinstance(answer.error, UpstreamProtocolError) and answer.head_done:
                    raise UpstreamProtocolError(f"bad body: {answer.error}")
                raise answer.error
            else:
                answer.waiter = asyncio.get_running_loop().create_future()
                try:
                    async with asyncio.timeout(self._read_timeout):
                        await answer.waiter
                except TimeoutError:
                    raise UpstreamTimeout("upstream stopped sending the body") from None
                finally:
                    answer.waiter = None

    def close(self) -> None:
        """Give the connection back if the exchange is complete, else drop it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool._release(connection)


# A service closes a kept-alive connection after IDLE_CONNECTION_SECONDS without a request. One
# reused just as that happens fails under the request, and a write cannot be sent again (the
# client gets a 503): a connection is reused only well before.
KEEPALIVE_EXPIRY_SECONDS = IDLE_CONNECTION_SECONDS - 10


class UpstreamPool:
    """Keep-alive connections to one upstream service."""

    def __init__(self, name: str, base_url: str, *, max_connections: int = 512, connect_timeout: float = 2.0,
                 read_timeout: float = 60.0, keepalive_expiry: float = KEEPALIVE_EXPIRY_SECONDS):
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
        head_only = method == b"HEAD"
        await self._take_slot()
        try:
            allow_idle = True
            while True:
                connection, reused = await self._connection(allow_idle)
                answer = connection.answer = _Answer(head_only)
                try:
                    try:
                        await self._write(connection, head, body)
                    except UpstreamProtocolError:
                        # The upstream closed while the body was still going out: it may have
                        # answered first (a 413 for a body over its cap, sent before reading the
                        # rest; RFC 9112 §9.3 asks a client to read such an answer). That answer
                        # is relayed rather than a 502; the connection is not reused (the
                        # request never went out whole).
                        if answer.head_done and answer.error is None:
                            return UpstreamResponse(self, connection, answer)
                        raise
                    return await self._read_head(connection, answer)
                except UpstreamError as error:
                    connection.close()
                    if reused and retry_on_stale and error.nothing_received:
                        retry_on_stale = allow_idle = False  # once, on a new connection
                        continue
                    error.request_sent = connection.sent
                    raise
                except BaseException:
                    connection.close()
                    raise
        except BaseException:
            self._slots.release()
            raise

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
                    connection.sent = False
                    return connection, True
                connection.close()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.connect_timeout):
                _, connection = await loop.create_connection(
                    _Connection, self.host, self.port, ssl=self.ssl or None)
        except TimeoutError:
            raise UpstreamUnavailable("connect timeout") from None
        except OSError as error:
            raise UpstreamUnavailable(f"connect failed: {error}") from None
        self.connections_opened += 1
        return connection, False

    async def _write(self, connection: _Connection, head: h11.Request,
                     body: bytes | AsyncIterator[bytes]) -> None:
        # h11 on the writing side only: a fresh state machine per request (its answer is read
        # by llhttp), which frames the head and holds the body to it.
        protocol = h11.Connection(h11.CLIENT)
        transport = connection.transport
        try:
            if connection.lost or transport.is_closing():
                raise ConnectionResetError("connection closed")
            if isinstance(body, bytes):
                # Head, body and end in one write.
                parts = [protocol.send(head)]
                if body:
                    parts += protocol.send_with_data_passthrough(h11.Data(data=body))
                parts.append(protocol.send(h11.EndOfMessage()))
                transport.write(b"".join(parts))
                connection.sent = True
                return
            transport.write(protocol.send(head))
            answer = connection.answer
            async for chunk in body:
                if answer.head_done:
                    # The upstream answered before the body was through (a 413 over its cap):
                    # sending more would only meet its reset, which can take the answer with it.
                    raise UpstreamProtocolError("answered before the request body was sent")
                if chunk:  # an empty chunk would end a chunked body early
                    transport.writelines(protocol.send_with_data_passthrough(h11.Data(data=chunk)))
                    async with asyncio.timeout(self.read_timeout):
                        await connection.drain()  # back-pressure: never hold more than the socket buffer
            transport.write(protocol.send(h11.EndOfMessage()))
            connection.sent = True
        except h11.LocalProtocolError:
            # The stream did not match its Content-Length: the upstream has a partial request,
            # and this connection is closed by the caller.
            raise RequestNotSendable("the request body does not match its length") from None
        except TimeoutError:
            raise UpstreamTimeout("upstream stopped reading the request body") from None
        except (OSError, RuntimeError) as error:  # RuntimeError: uvloop, transport already closed
            raise UpstreamProtocolError(f"write failed: {error!r}", nothing_received=True) from None

    async def _read_head(self, connection: _Connection, answer: _Answer) -> UpstreamResponse:
        if not answer.head_done and answer.error is None:
            try:
                async with asyncio.timeout(self.read_timeout):
                    # Every read wakes the waiter, and a head may come in several.
                    while not answer.head_done and answer.error is None:
                        answer.waiter = asyncio.get_running_loop().create_future()
                        await answer.waiter
            except TimeoutError:
                raise UpstreamTimeout("no answer in time") from None
            finally:
                answer.waiter = None
        if answer.error is not None and not answer.head_done:
            raise answer.error
        return UpstreamResponse(self, connection, answer)

    def _release(self, connection: _Connection) -> None:
        self._slots.release()
        if connection.reusable():
            connection.answer = None
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

"""A small HTTP/1.1 client for the gateway's upstreams: keep-alive pooling, streaming both ways.

Why not httpx: `httpx.AsyncClient` (through httpcore's pool, which rescans every connection
quadratically twice per request) managed about 600 requests/s with 32 concurrent requests on
the 2-core dev machine, less than the gateway must carry. The gateway on httpcore's HTTP/1.1
connections with a pool of its own did about 4 200/s; on this client, about 16 000/s (numbers
in the gateway README). It also stays out of a proxy's way: no cookie jar, no default headers.

Scope: exactly what talking to our own services needs. Requests are written as given (the
caller supplies Host and the body framing header); responses are parsed per RFC 9112 §6.3:
no body for HEAD/1xx/204/304, chunked, Content-Length, or until the connection closes.
Interim 1xx answers are skipped. Connections are reused only when the answer was read to its
end and neither side said `Connection: close`.
"""

from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator
from urllib.parse import urlsplit

Headers = list[tuple[bytes, bytes]]

_HEAD_LIMIT = 64 * 1024  # largest response head accepted (StreamReader limit)
_READ_SIZE = 256 * 1024  # most bytes passed on per body chunk
_NO_BODY_STATUSES = frozenset({204, 304})


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


class _Connection:
    __slots__ = ("reader", "writer", "idle_since", "requests")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        self.reader = reader
        self.writer = writer
        self.idle_since = 0.0
        self.requests = 0

    def close(self) -> None:
        self.writer.close()


class UpstreamResponse:
    """Status and headers of an answer; the body is read with `chunks()`, then `close()`."""

    __slots__ = ("status", "headers", "_pool", "_connection", "_length", "_chunked", "_keep_alive",
                 "_complete", "_read_timeout", "_remaining")

    def __init__(self, pool: "UpstreamPool", connection: _Connection, status: int, headers: Headers,
                 length: int | None, chunked: bool, keep_alive: bool):
        self.status = status
        self.headers = headers
        self._pool = pool
        self._connection: _Connection | None = connection
        self._length = length  # None: until the connection closes (unless chunked)
        self._chunked = chunked
        self._keep_alive = keep_alive
        self._complete = length == 0 and not chunked
        self._read_timeout = pool.read_timeout
        self._remaining = length if length is not None and not chunked else -1

    @property
    def body_read(self) -> bool:
        """True once the last byte of a Content-Length body has been handed out, so the chunk
        just received can be sent on as the final one."""
        return self._remaining == 0

    async def chunks(self) -> AsyncIterator[bytes]:
        if self._complete:
            return
        assert self._connection is not None
        reader = self._connection.reader
        timeout = self._read_timeout
        try:
            if self._chunked:
                async for chunk in _chunked_body(reader, timeout):
                    yield chunk
            elif self._length is not None:
                while self._remaining:
                    async with asyncio.timeout(timeout):
                        data = await reader.read(min(self._remaining, _READ_SIZE))
                    if not data:
                        raise UpstreamProtocolError("connection closed before the end of the body")
                    self._remaining -= len(data)
                    yield data
            else:
                while True:
                    async with asyncio.timeout(timeout):
                        data = await reader.read(_READ_SIZE)
                    if not data:
                        break
                    yield data
        except TimeoutError:
            raise UpstreamTimeout("upstream stopped sending the body") from None
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as error:
            raise UpstreamProtocolError(f"bad body: {error!r}") from None
        self._complete = True

    def close(self) -> None:
        """Give the connection back if the answer was read to its end, else drop it."""
        connection, self._connection = self._connection, None
        if connection is not None:
            self._pool._release(connection, reusable=self._complete and self._keep_alive)


async def _chunked_body(reader: asyncio.StreamReader, timeout: float) -> AsyncIterator[bytes]:
    while True:
        async with asyncio.timeout(timeout):
            line = await reader.readuntil(b"\r\n")
        size_field = line.split(b";", 1)[0].strip()
        if not size_field or size_field.strip(b"0123456789abcdefABCDEF"):
            raise ValueError(f"bad chunk size {size_field[:20]!r}")
        size = int(size_field, 16)
        if size == 0:
            # Trailers (dropped: nothing of ours sends them) up to the empty line.
            while True:
                async with asyncio.timeout(timeout):
                    if await reader.readuntil(b"\r\n") == b"\r\n":
                        return
        while size:
            async with asyncio.timeout(timeout):
                data = await reader.read(min(size, _READ_SIZE))
            if not data:
                raise asyncio.IncompleteReadError(b"", size)
            size -= len(data)
            yield data
        async with asyncio.timeout(timeout):
            if await reader.readexactly(2) != b"\r\n":
                raise ValueError("chunk not followed by CRLF")


def _parse_head(head: bytes, head_request: bool) -> tuple[int, Headers, int | None, bool, bool]:
    """(status, headers, body length or None, chunked, keep-alive) of a response head."""
    lines = head.split(b"\r\n")
    version, _, rest = lines[0].partition(b" ")
    if not version.startswith(b"HTTP/1.") or len(rest) < 3 or not rest[:3].isdigit():
        raise ValueError(f"bad status line {lines[0][:100]!r}")
    status = int(rest[:3])
    keep_alive = version != b"HTTP/1.0"
    headers: Headers = []
    length: int | None = None
    chunked = False
    transfer_encoding = False
    for line in lines[1:-2]:
        name, colon, value = line.partition(b":")
        if not colon or not name or line[0] in (32, 9) or name[-1] in (32, 9):
            raise ValueError(f"bad header line {line[:100]!r}")  # incl. obsolete line folding
        name = name.lower()
        value = value.strip(b" \t")
        if name == b"content-length":
            values = {v.strip() for v in value.split(b",")}
            if len(values) != 1 or not (number := values.pop()).isdigit():
                raise ValueError(f"bad Content-Length {value[:100]!r}")
            if length is not None and length != int(number):
                raise ValueError("conflicting Content-Length headers")
            length = int(number)
        elif name == b"transfer-encoding":
            transfer_encoding = True
            chunked = value.lower().rsplit(b",", 1)[-1].strip() == b"chunked"
        elif name == b"connection":
            tokens = {t.strip() for t in value.lower().split(b",")}
            if b"close" in tokens:
                keep_alive = False
            elif b"keep-alive" in tokens:
                keep_alive = True
        headers.append((name, value))
    if head_request or status < 200 or status in _NO_BODY_STATUSES:
        return status, headers, 0, False, keep_alive
    if transfer_encoding:
        # RFC 9112 §6.3: Transfer-Encoding overrides Content-Length; a final coding other than
        # chunked means "read until close".
        if chunked:
            return status, headers, None, True, keep_alive
        return status, headers, None, False, False
    if length is None:
        return status, headers, None, False, False
    return status, headers, length, False, keep_alive


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
                      body: bytes | AsyncIterator[bytes], *, chunked: bool = False,
                      retry_on_stale: bool = False) -> UpstreamResponse:
        """Send a request (Host and framing headers included by the caller) and read the head
        of the answer. `retry_on_stale`: the request may be sent again on a fresh connection if
        a reused one turns out to have been closed by the upstream."""
        await self._take_slot()
        try:
            allow_idle = True
            while True:
                connection, reused = await self._connection(allow_idle)
                try:
                    await self._write(connection, method, self.path_prefix + target, headers, body, chunked)
                    return await self._read_head(connection, method == b"HEAD")
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
                if connection.idle_since > deadline and not connection.reader.at_eof() \
                        and not connection.writer.is_closing():
                    return connection, True
                connection.close()
        try:
            async with asyncio.timeout(self.connect_timeout):
                reader, writer = await asyncio.open_connection(
                    self.host, self.port, ssl=self.ssl or None, limit=_HEAD_LIMIT
                )
        except TimeoutError:
            raise UpstreamUnavailable("connect timeout") from None
        except OSError as error:
            raise UpstreamUnavailable(f"connect failed: {error}") from None
        self.connections_opened += 1
        return _Connection(reader, writer), False

    async def _write(self, connection: _Connection, method: bytes, target: bytes, headers: Headers,
                     body: bytes | AsyncIterator[bytes], chunked: bool) -> None:
        parts = [method, b" ", target, b" HTTP/1.1\r\n"]
        for name, value in headers:
            parts += (name, b": ", value, b"\r\n")
        parts.append(b"\r\n")
        writer = connection.writer
        connection.requests += 1
        try:
            if isinstance(body, bytes):
                parts.append(body)
                writer.write(b"".join(parts))
                return
            writer.write(b"".join(parts))
            async for chunk in body:
                if not chunk:
                    continue
                if chunked:
                    writer.writelines((b"%x\r\n" % len(chunk), chunk, b"\r\n"))
                else:
                    writer.write(chunk)
                async with asyncio.timeout(self.read_timeout):
                    await writer.drain()  # back-pressure: never hold more than the socket buffer
            if chunked:
                writer.write(b"0\r\n\r\n")
        except TimeoutError:
            raise UpstreamTimeout("upstream stopped reading the request body") from None
        except (OSError, RuntimeError) as error:  # RuntimeError: uvloop, transport already closed
            raise UpstreamProtocolError(f"write failed: {error!r}", nothing_received=True) from None

    async def _read_head(self, connection: _Connection, head_request: bool) -> UpstreamResponse:
        reader = connection.reader
        try:
            async with asyncio.timeout(self.read_timeout):
                while True:
                    head = await reader.readuntil(b"\r\n\r\n")
                    status, headers, length, chunked, keep_alive = _parse_head(head, head_request)
                    if status >= 200 or status == 101:
                        break  # 1xx interim answers (100 Continue, 103 Early Hints) are skipped
        except TimeoutError:
            raise UpstreamTimeout("no answer in time") from None
        except asyncio.IncompleteReadError as error:
            raise UpstreamProtocolError("connection closed without an answer",
                                        nothing_received=not error.partial) from None
        except ConnectionError as error:
            raise UpstreamProtocolError(f"connection failed: {error!r}", nothing_received=True) from None
        except (OSError, asyncio.LimitOverrunError, ValueError) as error:
            raise UpstreamProtocolError(f"bad answer: {error!r}") from None
        return UpstreamResponse(self, connection, status, headers, length, chunked, keep_alive)

    def _release(self, connection: _Connection, *, reusable: bool) -> None:
        self._slots.release()
        if reusable and not connection.writer.is_closing():
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.close()

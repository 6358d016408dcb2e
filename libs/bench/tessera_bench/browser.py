"""A lean HTTP/1.1 client for the flow benchmarks: a browser's cookie jar on a keep-alive
connection. The load generator runs on the cores it measures, and httpx spends ~1.4 ms of
CPU per request there (a sign-in flow is ~8 requests: a tenth of the machine); this
spends a fraction of that. It speaks only what the gateway answers: HTTP/1.1 with
`content-length` or chunked bodies, over plain TCP.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from urllib.parse import urljoin, urlsplit


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # lower-case names; the last value of a repeated header
    body: bytes


class Connection:
    """One keep-alive TCP connection to the server, reopened when the server closes it."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        self.host, self.port = parts.hostname or "localhost", parts.port or 80
        self.authority = parts.netloc
        self.origin = f"{parts.scheme or 'http'}://{parts.netloc}"
        self._streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    async def exchange(self, head: bytes, body: bytes, *, timeout: float = 30.0) -> tuple[int, list[tuple[str, str]], bytes]:
        # asyncio.timeout, not wait_for: no task of its own per request (this client's CPU is
        # part of what the benchmark's two cores spend).
        reused = self._streams is not None
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(head, body)
        except (asyncio.IncompleteReadError, ConnectionError):
            await self.close()
            if not reused:
                raise
        # The server had closed the idle connection: send it again on a new one.
        try:
            async with asyncio.timeout(timeout):
                return await self._exchange(head, body)
        except BaseException:
            await self.close()
            raise

    async def _exchange(self, head: bytes, body: bytes) -> tuple[int, list[tuple[str, str]], bytes]:
        if self._streams is None:
            self._streams = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._streams
        writer.write(head + body)
        status, headers, payload, keep_alive = await _read_response(reader)
        if not keep_alive:
            await self.close()
        return status, headers, payload

    async def close(self) -> None:
        if self._streams is not None:
            _, writer = self._streams
            self._streams = None
            writer.close()


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, list[tuple[str, str]], bytes, bool]:
    lines = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers.append((name.strip().lower(), value.strip()))
    named = dict(headers)
    if named.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunk = await reader.readexactly(size + 2)  # the data and its CRLF
            if size == 0:  # the last chunk (our servers send no trailers)
                break
            chunks.append(chunk[:-2])
        payload = b"".join(chunks)
    elif "content-length" in named or status in (204, 304) or 100 <= status < 200:
        payload = await reader.readexactly(int(named.get("content-length", "0")))
    else:  # neither length nor chunks: the body runs until the server closes
        return status, headers, await reader.read(), False
    return status, headers, payload, named.get("connection", "").lower() != "close"


@dataclass
class Browser:
    """A cookie jar over a connection: what a browser sends and keeps, nothing more."""

    connection: Connection
    cookies: dict[str, str] = field(default_factory=dict)

    async def request(self, method: str, target: str, *, body: bytes = b"",
                      content_type: str | None = None) -> Reply:
        """`target` is a path with its query, or a URL (absolute or relative to the root)
        on the same server."""
        if not target.startswith("/") or target.startswith("//"):  # a URL: its path and query
            parts = urlsplit(urljoin("http://server/", target))
            target = parts.path + (f"?{parts.query}" if parts.query else "")
        lines = [f"{method} {target} HTTP/1.1", f"host: {self.connection.authority}",
                 "user-agent: tessera-bench", f"content-length: {len(body)}"]
        if content_type:
            lines.append(f"content-type: {content_type}")
        if method not in ("GET", "HEAD"):
            # As a browser on the sign-in pages: the interaction API refuses cross-site writes.
            lines.append(f"origin: {self.connection.origin}")
        if self.cookies:
            lines.append("cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        status, headers, payload = await self.connection.exchange(head, body)
        for name, value in headers:
            if name == "set-cookie":
                self._keep(value)
        return Reply(status, dict(headers), payload)

    def _keep(self, set_cookie: str) -> None:
        pair, *attributes = set_cookie.split(";")
        name, _, value = pair.strip().partition("=")
        expired = any(a.strip().lower() in ("max-age=0", "max-age=-1") for a in attributes)
        if expired or not value or value == '""':
            self.cookies.pop(name, None)
        else:
            self.cookies[name] = value

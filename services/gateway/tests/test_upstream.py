"""The gateway's upstream client (h11 writes, llhttp reads, on a pool of ours) against raw TCP servers that answer
exactly as scripted."""

from __future__ import annotations

import asyncio
from typing import AsyncIterator, Awaitable, Callable

import pytest

from tessera_kit.serve import IDLE_CONNECTION_SECONDS
from tessera_gateway.upstream import (
    KEEPALIVE_EXPIRY_SECONDS,
    RequestNotSendable,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamTimeout,
    UpstreamUnavailable,
)

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, int], Awaitable[bool]]


class RawServer:
    """Answers each request on a connection with `script(reader, writer, n)`, n counting
    requests on that connection; the script returns False to close the connection."""

    def __init__(self, script: Script):
        self.script = script
        self.connections = 0
        self.requests: list[bytes] = []

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        n = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                chunked = False
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                    if line.lower() == b"transfer-encoding: chunked":
                        chunked = True
                body = await reader.readexactly(length) if length else b""
                if chunked:
                    while True:
                        size = int((await reader.readuntil(b"\r\n")).strip(), 16)
                        body += await reader.readexactly(size + 2)
                        if size == 0:
                            break
                self.requests.append(head + body)
                n += 1
                if not await self.script(reader, writer, n):
                    break
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    async def __aenter__(self) -> "RawServer":
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self.server.close()

    def pool(self, **options) -> UpstreamPool:
        return UpstreamPool("test", f"http://127.0.0.1:{self.port}", **options)


def answer(raw: bytes, keep_open: bool = True) -> Script:
    async def script(reader, writer, n) -> bool:
        writer.write(raw)
        await writer.drain()
        return keep_open

    return script


async def fetch(pool: UpstreamPool, method: bytes = b"GET", body: bytes | AsyncIterator[bytes] = b"",
                headers: list | None = None, **options) -> tuple[int, list, bytes]:
    response = await pool.request(method, b"/x", [(b"host", b"test"), *(headers or [])], body, **options)
    try:
        data = b"".join([chunk async for chunk in response.chunks()])
    finally:
        response.close()
    return response.status, response.headers, data


async def test_content_length_and_keep_alive() -> None:
    async with RawServer(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A: 1\r\nX-A: 2\r\n\r\nhello")) as server:
        pool = server.pool()
        for _ in range(3):
            status, headers, body = await fetch(pool)
            assert (status, body) == (200, b"hello")
            assert [v for k, v in headers if k == b"x-a"] == [b"1", b"2"]
        assert server.connections == 1


async def test_chunked_with_trailers() -> None:
    raw = (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
           b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: t\r\n\r\n")
    async with RawServer(answer(raw)) as server:
        pool = server.pool()
        assert (await fetch(pool))[2] == b"hello world"
        assert (await fetch(pool))[2] == b"hello world"
        assert server.connections == 1


async def test_body_until_close() -> None:
    async with RawServer(answer(b"HTTP/1.1 200 OK\r\n\r\nuntil the end", keep_open=False)) as server:
        pool = server.pool()
        assert (await fetch(pool))[2] == b"until the end"
        assert (await fetch(pool))[2] == b"until the end"
        assert server.connections == 2


async def test_connection_close_is_honoured() -> None:
    async with RawServer(answer(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")) as server:
        pool = server.pool()
        await fetch(pool)
        await fetch(pool)
        assert server.connections == 2


async def test_no_body_answers() -> None:
    async def script(reader, writer, n) -> bool:
        if n == 1:  # HEAD: Content-Length describes the GET body, none follows
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
        elif n == 2:
            writer.write(b"HTTP/1.1 304 Not Modified\r\nETag: \"x\"\r\nContent-Length: 100\r\n\r\n")
        elif n == 3:
            writer.write(b"HTTP/1.1 204 No Content\r\n\r\n")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone")
        return True

    async with RawServer(script) as server:
        pool = server.pool()
        assert await fetch(pool, b"HEAD") == (200, [(b"content-length", b"100")], b"")
        assert (await fetch(pool))[::2] == (304, b"")
        assert (await fetch(pool))[::2] == (204, b"")
        assert (await fetch(pool))[2] == b"done"
        assert server.connections == 1


async def test_interim_answers_are_skipped() -> None:
    raw = b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    async with RawServer(answer(raw)) as server:
        assert (await fetch(server.pool()))[0] == 201


def ok_unless_cut(state: dict) -> Script:
    """Answers `ok`, except that with bytes in state["cut"] it sends those for the next request
    and closes the connection (b"": without answering, the keep-alive race)."""
    async def script(reader, writer, n) -> bool:
        cut, state["cut"] = state["cut"], None
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok" if cut is None else cut)
        await writer.drain()
        return cut is None

    return script


async def test_stale_connection_retry() -> None:
    state = {"cut": None}
    async with RawServer(ok_unless_cut(state)) as server:
        pool = server.pool()
        await fetch(pool)
        state["cut"] = b""
        assert (await fetch(pool, retry_on_stale=True))[2] == b"ok"
        assert server.connections == 2
        # Not for requests that may have had an effect: the client gets a 503 (the service went
        # away with the request: an outage), not a 502 (chaos found a 502 here), and no
        # invitation to retry (`request_sent`: proxy.forward leaves Retry-After out).
        state["cut"] = b""
        with pytest.raises(UpstreamProtocolError) as dropped:
            await fetch(pool, b"POST", b"data")
        assert dropped.value.status == 503 and dropped.value.request_sent


async def test_a_connection_idle_past_the_expiry_is_not_reused() -> None:
    """A service closes a connection idle for IDLE_CONNECTION_SECONDS; the pool reuses one
    only before its own expiry, which is well short of that, so no request is written on a
    connection the service is closing at that moment."""

    assert KEEPALIVE_EXPIRY_SECONDS <= IDLE_CONNECTION_SECONDS - 5
    assert UpstreamPool("t", "http://127.0.0.1:1").keepalive_expiry == KEEPALIVE_EXPIRY_SECONDS
    async with RawServer(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")) as server:
        pool = server.pool(keepalive_expiry=1.0)
        await fetch(pool)
        await fetch(pool)
        assert (server.connections, pool.connections_opened) == (1, 1)  # reused while young
        await asyncio.sleep(1.2)
        await fetch(pool, b"POST", b"{}")
        assert (server.connections, pool.connections_opened) == (2, 2)  # too old: a new one
        await pool.close()


async def test_an_answer_head_that_arrives_in_pieces_is_read_whole() -> None:
    """A head split over several reads (a long one, a slow network): the answer is its status
    and headers once the head is complete, not whatever the first piece held."""
    async def in_pieces(reader, writer, n) -> bool:
        for piece in (b"HTTP/1.1 201 Created\r\nX-Long: ", b"a" * 3000, b"\r\nContent-Le", b"ngth: 2\r\n\r\nok"):
            writer.write(piece)
            await writer.drain()
            await asyncio.sleep(0.05)
        return True

    async with RawServer(in_pieces) as server:
        pool = server.pool()
        status, headers, body = await fetch(pool)
        assert (status, body) == (201, b"ok")
        assert (b"x-long", b"a" * 3000) in headers
        await pool.close()


async def test_a_reused_connection_that_answered_in_part_is_not_tried_again() -> None:
    """Only a reused connection closed before a byte of answer (the keep-alive race) gets the
    request once more: one that began answering, or timed out, was serving it."""
    state = {"cut": None}
    async with RawServer(ok_unless_cut(state)) as server:
        pool = server.pool()
        await fetch(pool)
        state["cut"] = b"HTTP/1.1 200 OK\r\nContent-Le"  # the head cut short
        with pytest.raises(UpstreamProtocolError) as cut:
            await fetch(pool, retry_on_stale=True)
        assert cut.value.status == 502 and not cut.value.nothing_received
        assert (len(server.requests), server.connections) == (2, 1)  # not sent again
        await pool.close()


async def test_streamed_request_body_is_chunked() -> None:
    async def body() -> AsyncIterator[bytes]:
        yield b"abc"
        yield b""
        yield b"defg"

    async with RawServer(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")) as server:
        await fetch(server.pool(), b"POST", body())
        # The server decoded chunks of 3 and 4 bytes and the final 0 (the empty piece was not
        # sent as a chunk: that would have ended the body early); it keeps each chunk's CRLF.
        assert server.requests[0].endswith(b"chunked\r\n\r\nabc\r\ndefg\r\n\r\n")


@pytest.mark.parametrize("raw", [
    b"HTP/1.1 200 OK\r\n\r\n",
    b"HTTP/1.1 2x0 OK\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n folded: x\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nx",
    b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok",
    b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nok",
    b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"HTTP/1.1 200 OK\r\n" + b"X-Long: " + b"a" * 70_000 + b"\r\n\r\n",
])
async def test_malformed_answers(raw: bytes) -> None:
    async with RawServer(answer(raw)) as server:
        with pytest.raises(UpstreamProtocolError):
            await fetch(server.pool())


async def test_bad_chunk_size() -> None:
    raw = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n"
    async with RawServer(answer(raw)) as server:
        with pytest.raises(UpstreamProtocolError):
            await fetch(server.pool())


async def test_truncated_body() -> None:
    async with RawServer(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort", keep_open=False)) as server:
        with pytest.raises(UpstreamProtocolError):
            await fetch(server.pool())


async def test_connection_refused_and_timeouts() -> None:
    from tessera_devstack.ports import free_port

    with pytest.raises(UpstreamUnavailable):
        await fetch(UpstreamPool("down", f"http://127.0.0.1:{free_port()}"))

    async def never(reader, writer, n) -> bool:
        await asyncio.sleep(5)
        return False

    async with RawServer(never) as server:
        with pytest.raises(UpstreamTimeout):
            await fetch(server.pool(read_timeout=0.3))


async def test_busy_pool_gives_up() -> None:
    async def slow(reader, writer, n) -> bool:
        await asyncio.sleep(1.0)
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        return True

    async with RawServer(slow) as server:
        pool = server.pool(max_connections=1, connect_timeout=0.2)
        first = asyncio.create_task(fetch(pool))
        await asyncio.sleep(0.05)
        with pytest.raises(UpstreamUnavailable):
            await fetch(pool)
        assert (await first)[0] == 200


async def test_the_pool_frames_every_request() -> None:
    async with RawServer(answer(b"HTTP/1.1 204 No Content\r\n\r\n")) as server:
        pool = server.pool()
        await fetch(pool, b"POST", b"12345")
        await fetch(pool, b"POST", b"")
        await fetch(pool, b"GET", b"")

        async def stream() -> AsyncIterator[bytes]:
            yield b"abc"
            yield b"de"

        await fetch(pool, b"PUT", stream(), length=5)
        heads = [request.split(b"\r\n\r\n")[0].lower() for request in server.requests]
        assert b"content-length: 5" in heads[0] and b"transfer-encoding" not in heads[0]
        assert b"content-length: 0" in heads[1]
        assert b"content-length" not in heads[2] and b"transfer-encoding" not in heads[2]
        assert b"content-length: 5" in heads[3] and server.requests[3].endswith(b"\r\n\r\nabcde")
        assert server.connections == 1


@pytest.mark.parametrize("pieces", [[b"abc"], [b"abc", b"def"]])
async def test_a_stream_must_match_its_length(pieces: list[bytes]) -> None:
    """Shorter or longer than announced: refused, and the connection (holding half a request)
    is never used again."""
    async def stream() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    async with RawServer(answer(b"HTTP/1.1 204 No Content\r\n\r\n")) as server:
        pool = server.pool()
        with pytest.raises(RequestNotSendable):
            await fetch(pool, b"POST", stream(), length=4)
        assert pool._idle == []


@pytest.mark.parametrize("value", [b"a\r\nx-injected: 1", b"a\nb", b"a\x00b"])
async def test_header_values_cannot_break_the_head(value: bytes) -> None:
    async with RawServer(answer(b"HTTP/1.1 204 No Content\r\n\r\n")) as server:
        with pytest.raises(RequestNotSendable):
            await fetch(server.pool(), headers=[(b"x-a", value)])
        assert server.connections == 0  # refused before anything was sent


async def test_no_reuse_after_an_answer_not_read_to_its_end() -> None:
    async with RawServer(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")) as server:
        pool = server.pool()
        response = await pool.request(b"GET", b"/x", [(b"host", b"test")], b"")
        response.close()  # body never read
        assert (await fetch(pool))[2] == b"0123456789"
        assert server.connections == 2


async def test_no_reuse_after_a_timeout() -> None:
    """The late answer to a timed-out request must not become the next request's answer."""
    answered = []

    async def late(reader, writer, n) -> bool:
        answered.append(n)
        if len(answered) == 1:
            await asyncio.sleep(0.5)
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nlate")
        else:
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfresh")
        return True

    async with RawServer(late) as server:
        pool = server.pool(read_timeout=0.2)
        with pytest.raises(UpstreamTimeout):
            await fetch(pool)
        pool.read_timeout = 5
        assert (await fetch(pool))[2] == b"fresh"
        assert server.connections == 2


async def test_no_reuse_of_a_connection_that_spoke_unasked() -> None:
    """An upstream that sends a second answer nobody asked for (what a smuggled request leaves
    behind): the connection is dropped, the extra answer goes to nobody."""
    first_done = asyncio.Event()

    async def two_answers(reader, writer, n) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfirst")
        await writer.drain()
        if n == 1:
            await first_done.wait()  # the connection is idle in the pool now
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nextra")
            await writer.drain()
        return True

    async with RawServer(two_answers) as server:
        pool = server.pool()
        assert (await fetch(pool))[2] == b"first"
        idle = pool._idle[0]
        first_done.set()
        while not idle.unasked:  # until the extra answer has arrived
            await asyncio.sleep(0.01)
        assert (await fetch(pool))[2] == b"first"
        assert server.connections == 2


async def test_bytes_after_the_answer_are_not_kept() -> None:
    """Extra bytes in the same packet as the answer: llhttp reads them as the start of another."""
    async with RawServer(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokHTTP/1.1 200 OK\r\n")) as server:
        pool = server.pool()
        assert (await fetch(pool))[2] == b"ok"
        assert pool._idle == []


async def test_an_answer_sent_before_the_body_was_read_is_relayed_not_a_502() -> None:
    """An upstream refuses a body over its cap (413) after the head alone and closes the
    connection while the body is still streaming: its answer is what the client gets."""
    async def refuse_early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoo big")
        await writer.drain()
        writer.transport.abort()  # a reset, as a server closing with unread input sends

    async def body() -> AsyncIterator[bytes]:
        for _ in range(400):
            yield b"x" * 16384
            await asyncio.sleep(0)

    server = await asyncio.start_server(refuse_early, "127.0.0.1", 0)
    try:
        pool = UpstreamPool("test", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        status, _, data = await fetch(pool, b"POST", body(), length=400 * 16384)
        assert (status, data) == (413, b"too big")
        assert not pool._idle  # never reused: our side of it never finished
    finally:
        server.close()


async def test_a_large_body_arrives_whole_with_back_pressure() -> None:
    """More than the pool buffers (it stops reading the socket until the proxy takes the body
    held so far): every byte arrives, in order, and the connection is reused."""
    body = bytes(range(256)) * 8192  # 2 MiB

    async def script(reader, writer, n) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body))
        for start in range(0, len(body), 100_000):
            writer.write(body[start:start + 100_000])
            await writer.drain()
        return True

    async with RawServer(script) as server:
        pool = server.pool()
        response = await pool.request(b"GET", b"/x", [(b"host", b"test")], b"")
        received = []
        try:
            async for chunk in response.chunks():
                received.append(chunk)
                await asyncio.sleep(0.01)  # a slow client: the upstream's bytes wait in the socket
        finally:
            response.close()
        assert b"".join(received) == body and response.body_read
        assert (await fetch(pool))[2] == body
        assert server.connections == 1


async def test_a_body_after_a_head_answer_is_not_kept() -> None:
    """A HEAD answer ends with its head: bytes after it (a body the upstream should not have
    sent) must not be read as the next answer."""
    async with RawServer(answer(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nbody")) as server:
        pool = server.pool()
        assert (await fetch(pool, b"HEAD"))[::2] == (200, b"")
        assert pool._idle == []


async def test_a_streamed_body_the_service_read_whole_counts_as_sent() -> None:
    """A service that read every byte of a streamed body and then went away may have acted on
    it: the failure says the request was sent, so proxy.forward leaves Retry-After out. The
    last chunk is far over the socket buffers, so the pool is still waiting for the socket to
    drain while the service reads; the loss ends that wait, it does not fail the write."""
    last = 8 * 1024 * 1024

    async def read_slowly_then_go(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
        while length:
            length -= len(await reader.read(min(length, 65536)))
            await asyncio.sleep(0)
        writer.transport.abort()  # no answer: the service died after reading it all

    async def body() -> AsyncIterator[bytes]:
        yield b"x"
        yield b"y" * last

    server = await asyncio.start_server(read_slowly_then_go, "127.0.0.1", 0)
    try:
        pool = UpstreamPool("test", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
        for _ in range(5):
            with pytest.raises(UpstreamProtocolError) as gone:
                await fetch(pool, b"POST", body(), length=1 + last)
            assert gone.value.request_sent, gone.value
    finally:
        server.close()
        await server.wait_closed()

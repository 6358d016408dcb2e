"""The flow benchmark's HTTP client against a canned HTTP/1.1 server: bodies by length and
chunked, cookies kept and expired, keep-alive, a server that says it closes and one that
closes an idle connection without a word."""

import asyncio

from tessera_bench.browser import Browser, Connection

RESPONSES = [
    b"HTTP/1.1 303 See Other\r\nlocation: /sign-in\r\nset-cookie: _interaction=abc; Path=/; HttpOnly\r\n"
    b"set-cookie: _ui=x; Path=/\r\ncontent-length: 0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nset-cookie: _ui=; Max-Age=0\r\n\r\n"
    b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
    b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok",
    b"HTTP/1.1 204 No Content\r\n\r\n",
]


async def test_bodies_cookies_and_reconnects():
    seen: list[bytes] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        while RESPONSES[len(seen):]:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError:
                break
            length = int(next((l.split(b":")[1] for l in head.split(b"\r\n")
                               if l.lower().startswith(b"content-length")), b"0"))
            seen.append(head + await reader.readexactly(length))
            response = RESPONSES[len(seen) - 1]
            writer.write(response)
            await writer.drain()
            if b"connection: close" in response or len(seen) == 2:
                break  # the second response is followed by a silent close (an idle timeout)
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    browser = Browser(Connection(f"http://127.0.0.1:{port}"))
    try:
        first = await browser.request("GET", "/oidc/auth?x=1")
        assert (first.status, first.headers["location"]) == (303, "/sign-in")
        assert browser.cookies == {"_interaction": "abc", "_ui": "x"}
        second = await browser.request("POST", f"http://127.0.0.1:{port}/api/interaction/submit",
                                       body=b'{"a":1}', content_type="application/json")
        assert (second.status, second.body) == (200, b"hello world")
        assert browser.cookies == {"_interaction": "abc"}  # _ui expired
        third = await browser.request("GET", "/three")  # finds the connection closed: sent again
        assert third.body == b"ok"
        fourth = await browser.request("GET", "/four")  # the server closed: a new connection
        assert (fourth.status, fourth.body) == (204, b"")
    finally:
        await browser.connection.close()
        server.close()
        await server.wait_closed()
    assert connections == 3
    assert seen[1].startswith(b"POST /api/interaction/submit HTTP/1.1\r\n")
    assert b"cookie: _interaction=abc; _ui=x\r\n" in seen[1] and seen[1].endswith(b'{"a":1}')
    assert b"cookie: _interaction=abc\r\n" in seen[2]

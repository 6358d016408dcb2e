"""The proxy called in-process (a real upstream, hand-made ASGI receive/send)."""

from __future__ import annotations

import asyncio
import json

import pytest

from tessera_gateway.proxy import IncomingRequest, Proxy
from tessera_gateway.upstream import UpstreamPool


def _scope(path: str, query: bytes = b"", headers: list | None = None) -> dict:
    return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": headers or [(b"host", b"public.example")], "client": ("10.0.0.7", 5000),
            "server": ("127.0.0.1", 3001), "scheme": "https"}


async def _post_to(server: asyncio.Server, path: str, headers: list, receive, send, *, timeout: float) -> None:
    """POST `path` through the proxy to a raw upstream `server`; the server and the pool are
    closed after."""
    pool = UpstreamPool("identity", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    scope = {**_scope(path, headers=headers), "method": "POST"}
    try:
        await asyncio.wait_for(Proxy().forward(scope, receive, send, pool, IncomingRequest(headers), b"r"), timeout)
    finally:
        server.close()
        await pool.close()


def _client_leaving_after(sent_before_leaving: int, messages: list[dict]):
    """A client's receive and send: its request `messages`, then, once `sent_before_leaving`
    messages of the answer reached it, `http.disconnect`. Returns (receive, send, what was
    sent, the request messages not yet taken)."""
    disconnected = asyncio.Event()
    sent: list[dict] = []

    async def receive() -> dict:
        if messages:
            return messages.pop(0)
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)
        if len(sent) == sent_before_leaving:
            disconnected.set()
        await asyncio.sleep(0)

    return receive, send, sent, messages


async def test_client_leaving_mid_answer_stops_the_download(fake_identity) -> None:
    pool = UpstreamPool("audit-log", fake_identity.url)
    receive, send, sent, _ = _client_leaving_after(3, [{"type": "http.request", "body": b"", "more_body": False}])
    scope = _scope("/api/logs/stream", b"size=200000000")
    await asyncio.wait_for(
        Proxy().forward(scope, receive, send, pool, IncomingRequest(scope["headers"]), b"rid"), 10)
    body = sum(len(m.get("body", b"")) for m in sent[1:])
    assert body < 10_000_000  # far from the 200 MB the upstream would have sent
    assert pool._idle == []  # the cut-short connection is not reused
    await pool.close()


async def test_trusted_forwarded_headers(fake_identity) -> None:
    pool = UpstreamPool("identity", fake_identity.url)
    headers = [(b"host", b"internal:3001"), (b"x-forwarded-for", b"203.0.113.9"),
               (b"x-forwarded-proto", b"https"), (b"x-forwarded-host", b"id.example.com")]
    scope = _scope("/oidc/me", headers=headers)
    upstream = Proxy(trust_forwarded=True)._upstream_headers(scope, IncomingRequest(headers), pool, b"r", [])
    values = dict(upstream)
    assert values[b"x-forwarded-for"] == b"203.0.113.9, 10.0.0.7"
    assert values[b"x-forwarded-proto"] == b"https"
    assert values[b"x-forwarded-host"] == b"id.example.com"
    untrusted = dict(Proxy()._upstream_headers(scope, IncomingRequest(headers), pool, b"r", []))
    assert (untrusted[b"x-forwarded-for"], untrusted[b"x-forwarded-proto"], untrusted[b"x-forwarded-host"]) == (
        b"10.0.0.7", b"https", b"internal:3001")


async def test_the_client_address_services_believe(fake_identity) -> None:
    """Rate limits count per `X-Tessera-Client-IP`: the gateway's peer, or behind a trusted
    proxy the hop that proxy appended (not the proxy itself, which every client shares)."""
    headers = [(b"host", b"internal:3001"), (b"x-forwarded-for", b"6.6.6.6, 203.0.113.9"),
               (b"x-tessera-client-ip", b"6.6.6.6")]
    scope = _scope("/oidc/token", headers=headers)
    assert Proxy(trust_forwarded=True).client_address(scope, IncomingRequest(headers)) == b"203.0.113.9"
    assert Proxy().client_address(scope, IncomingRequest(headers)) == b"10.0.0.7"
    no_proxy_hop = [(b"host", b"internal:3001")]
    assert Proxy(trust_forwarded=True).client_address(
        _scope("/oidc/token", headers=no_proxy_hop), IncomingRequest(no_proxy_hop)) == b"10.0.0.7"
    # The client's own X-Tessera-Client-IP never goes up; the gateway's goes with the assertion.
    pool = UpstreamPool("identity", fake_identity.url)
    upstream = Proxy()._upstream_headers(scope, IncomingRequest(headers), pool, b"r", [])
    assert b"x-tessera-client-ip" not in dict(upstream)
    await pool.close()


async def test_an_early_answer_is_relayed_after_the_rest_of_the_body_is_read() -> None:
    """The upstream answers 413 after the head alone: the gateway reads what the client is
    still sending (bounded) before answering, so the client's stack does not reset the
    connection on unread bytes and lose the answer."""
    async def refuse_early(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 7\r\nConnection: close\r\n\r\ntoo big")
        await writer.drain()
        writer.transport.abort()

    server = await asyncio.start_server(refuse_early, "127.0.0.1", 0)
    chunks = 200  # 3.2 MB: within what the gateway reads (4 MiB)
    read = {"n": 0}

    async def receive() -> dict:
        read["n"] += 1
        if read["n"] % 16 == 0:
            await asyncio.sleep(0.001)  # the client sends while the upstream answers
        return {"type": "http.request", "body": b"x" * 16384, "more_body": read["n"] < chunks}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append({**message, "read_before": read["n"]})

    headers = [(b"host", b"public.example"), (b"content-length", str(chunks * 16384).encode())]
    await _post_to(server, "/api/users", headers, receive, send, timeout=30)
    assert sent[0]["status"] == 413 and sent[-1]["body"] == b"too big"
    assert sent[0]["read_before"] == chunks  # all of it, before the answer went out


async def test_a_request_without_a_body_is_forwarded_without_reading_one(fake_identity) -> None:
    """No Content-Length and no Transfer-Encoding (or a length of 0): the body is empty by
    definition, so granian is not asked for it; a body with a length still is."""
    pool = UpstreamPool("identity", fake_identity.url)
    received: list[str] = []

    async def receive() -> dict:
        received.append("receive")
        return {"type": "http.request", "body": b"", "more_body": False}

    async def forward(headers: list) -> list[dict]:
        sent: list[dict] = []

        async def send(message: dict) -> None:
            sent.append(message)

        scope = _scope("/api/users", headers=headers)
        await Proxy().forward(scope, receive, send, pool, IncomingRequest(headers), b"rid")
        return sent

    try:
        for headers in ([(b"host", b"public.example")], [(b"host", b"public.example"), (b"content-length", b"0")]):
            sent = await forward(headers)
            assert sent[0]["status"] == 200 and b"u1" in sent[-1]["body"]
        assert received == []
        await forward([(b"host", b"public.example"), (b"content-length", b"0"), (b"x", b"y")])
        assert received == []
        await forward([(b"host", b"public.example"), (b"transfer-encoding", b"chunked")])
        assert received == ["receive"]
    finally:
        await pool.close()


async def test_a_whole_body_goes_up_without_waiting_for_granians_final_message() -> None:
    """granian hands a Content-Length body over as `more_body: True`, then an empty final
    message. The first one holds the whole body already: it goes up with the head, framed by
    its exact length, without asking for the final message (which made every POST a stream:
    head, body and end in three writes to the upstream)."""
    received: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                          if line.lower().startswith(b"content-length:")))
        received.append(head + await reader.readexactly(length))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        await writer.drain()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    messages = [{"type": "http.request", "body": b"a=1&b=22", "more_body": True},
                {"type": "http.request", "body": b"", "more_body": False}]
    asked = {"n": 0}

    async def receive() -> dict:
        asked["n"] += 1
        return messages[min(asked["n"], 2) - 1]

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"host", b"public.example"), (b"content-length", b"8"),
               (b"content-type", b"application/x-www-form-urlencoded")]
    await _post_to(server, "/oidc/token", headers, receive, send, timeout=10)
    assert sent[0]["status"] == 200 and sent[-1]["body"] == b"ok"
    assert asked["n"] == 1  # the final empty message was not waited for
    request = received[0].lower()
    assert b"content-length: 8\r\n" in request and b"transfer-encoding" not in request
    assert request.endswith(b"\r\n\r\na=1&b=22")

    # A first message shorter than the Content-Length is a stream: the rest is read and sent.
    messages[:] = [{"type": "http.request", "body": b"a=1&", "more_body": True},
                   {"type": "http.request", "body": b"b=22", "more_body": False}]
    asked["n"], received[:], sent[:] = 0, [], []
    await _post_to(await asyncio.start_server(answer, "127.0.0.1", 0), "/oidc/token", headers, receive, send,
                   timeout=10)
    assert asked["n"] == 2 and received[0].endswith(b"\r\n\r\na=1&b=22") and sent[0]["status"] == 200


async def test_a_client_leaving_a_long_answer_to_its_post_stops_the_download() -> None:
    """A POST whose body came whole in granian's first message leaves its empty final message
    unread: the watch for the client going away meets that message first, and must look again
    until the disconnect (the GET case has no such message)."""
    async def answer_at_length(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        await reader.readexactly(int(next(line.split(b":", 1)[1] for line in head.split(b"\r\n")
                                          if line.lower().startswith(b"content-length:"))))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 200000000\r\n\r\n")
        try:
            for _ in range(200_000_000 // 65536):
                writer.write(b"x" * 65536)
                await writer.drain()
        except (ConnectionError, OSError):
            pass  # the gateway dropped the connection: what this test wants
        finally:
            writer.close()

    receive, send, sent, messages = _client_leaving_after(4, [
        {"type": "http.request", "body": b"a=1", "more_body": True},
        {"type": "http.request", "body": b"", "more_body": False}])
    headers = [(b"host", b"public.example"), (b"content-length", b"3")]
    await _post_to(await asyncio.start_server(answer_at_length, "127.0.0.1", 0), "/api/logs", headers,
                   receive, send, timeout=10)
    assert messages == []  # the final message was taken by the watch
    assert sum(len(m.get("body", b"")) for m in sent[1:]) < 10_000_000  # far from the 200 MB


@pytest.mark.parametrize(("method", "retry_after"), [("POST", None), ("PATCH", None), ("GET", b"2")])
async def test_retry_after_only_when_the_service_cannot_have_acted(method: str, retry_after: bytes | None) -> None:
    """The service reads the whole request and dies before answering: 503, the service's
    outage. Retry-After (an invitation to send it again) only for a method a repeat cannot
    harm: a write may have been committed just before the death, and sent twice it would
    create a second application or spend an authorization code twice."""
    async def read_all_then_die(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), 0)
        await reader.readexactly(length)
        writer.transport.abort()

    server = await asyncio.start_server(read_all_then_die, "127.0.0.1", 0)
    pool = UpstreamPool("identity", f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}")
    body = b'{"name": "app"}' if method != "GET" else b""
    headers = [(b"host", b"public.example"), *([(b"content-length", str(len(body)).encode())] if body else [])]
    receive, send, sent, _ = _client_leaving_after(99, [{"type": "http.request", "body": body, "more_body": False}])
    try:
        await asyncio.wait_for(Proxy().forward({**_scope("/api/applications", headers=headers), "method": method},
                                               receive, send, pool, IncomingRequest(headers), b"r"), 10)
    finally:
        server.close()
        await pool.close()
    assert sent[0]["status"] == 503
    assert json.loads(sent[1]["body"])["code"] == "service.unavailable"
    assert dict(sent[0]["headers"]).get(b"retry-after") == retry_after


async def test_a_refused_write_is_invited_to_retry() -> None:
    """Nothing reached the service (its port refuses): a retry cannot repeat anything."""
    server = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    server.close()
    await server.wait_closed()
    pool = UpstreamPool("identity", f"http://127.0.0.1:{port}")
    headers = [(b"host", b"public.example"), (b"content-length", b"2")]
    receive, send, sent, _ = _client_leaving_after(99, [{"type": "http.request", "body": b"{}", "more_body": False}])
    try:
        await asyncio.wait_for(Proxy().forward({**_scope("/api/applications", headers=headers), "method": "POST"},
                                               receive, send, pool, IncomingRequest(headers), b"r"), 10)
    finally:
        await pool.close()
    assert sent[0]["status"] == 503
    assert dict(sent[0]["headers"]).get(b"retry-after") == b"2"

"""The proxy called in-process (a real upstream, hand-made ASGI receive/send)."""

from __future__ import annotations

import asyncio

from tessera_gateway.proxy import IncomingRequest, Proxy
from tessera_gateway.upstream import UpstreamPool


def _scope(path: str, query: bytes = b"", headers: list | None = None) -> dict:
    return {"type": "http", "method": "GET", "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": headers or [(b"host", b"public.example")], "client": ("10.0.0.7", 5000),
            "server": ("127.0.0.1", 3001), "scheme": "https"}


async def test_client_leaving_mid_answer_stops_the_download(fake_identity) -> None:
    pool = UpstreamPool("audit-log", fake_identity.url)
    calls = {"receive": 0}
    disconnected = asyncio.Event()

    async def receive() -> dict:
        calls["receive"] += 1
        if calls["receive"] == 1:
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)
        if len(sent) == 3:  # start + two body chunks: the client goes
            disconnected.set()
        await asyncio.sleep(0)

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

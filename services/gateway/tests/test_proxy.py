"""Proxying through a running gateway: headers, bodies, streaming, request ids, failures."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import time
from typing import Iterator

import httpx
import pytest


def _echo(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    body = response.json()
    body["headers"] = {k: v for k, v in body["headers"]}
    return body


def test_status(client: httpx.Client) -> None:
    response = client.get("/api/status")
    assert response.status_code == 204
    assert response.content == b""
    assert client.head("/api/status").status_code == 204
    refused = client.post("/api/status")
    assert refused.status_code == 405 and refused.headers["allow"] == "HEAD, GET"


def test_health(client: httpx.Client) -> None:
    assert client.get("/health/live").status_code == 200
    assert client.get("/health/ready").json() == {"status": "ready"}


@pytest.mark.parametrize("path", ["/", "/nope", "/api", "/api/nope", "/api/usersx", "/oidcx", "/api/status/x"])
def test_unknown_route(client: httpx.Client, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 404
    assert response.text == "Not Found"
    assert response.headers["content-type"].startswith("text/plain")


def test_response_headers_pass_through(client: httpx.Client, auth: dict[str, str]) -> None:
    response = client.get("/api/users", headers=auth)
    assert response.status_code == 200
    assert response.json() == [{"id": "u1"}, {"id": "u2"}]
    headers = response.headers
    assert headers["total-number"] == "42"
    assert headers.get_list("link") == ['<http://public.example/api/users?page=1>; rel="first"',
                                        '<http://public.example/api/users?page=3>; rel="last"']
    assert headers.get_list("set-cookie") == ["first=1; Path=/; HttpOnly",
                                              "second=2; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT"]
    assert headers["etag"] == '"abc-123"'
    assert headers["location"] == "/somewhere/else"
    assert headers["cache-control"] == "no-store"
    assert headers["content-type"] == "application/json"
    assert headers["x-custom"] == "kept"
    assert headers["content-length"] == str(len(response.content))


def test_request_passes_through(client: httpx.Client, auth: dict[str, str], fake_identity) -> None:
    body = os.urandom(1000)
    response = client.patch(
        "/api/users/a%2Fb/custom-data",
        params=[("search", "%foo%"), ("search", "b"), ("mode", "like")],
        headers={**auth, "Content-Type": "application/octet-stream", "X-Custom": "yes",
                 "Cookie": "a=1; b=2", "Accept-Encoding": "gzip"},
        content=body,
    )
    echo = _echo(response)
    assert echo["service"] == "identity"
    assert echo["method"] == "PATCH"
    assert echo["rawPath"] == "/api/users/a%2Fb/custom-data"
    assert echo["query"] == "search=%25foo%25&search=b&mode=like"
    assert echo["bodyLength"] == 1000 and echo["bodySha256"] == hashlib.sha256(body).hexdigest()
    headers = echo["headers"]
    assert headers["content-type"] == "application/octet-stream"
    assert headers["x-custom"] == "yes"
    assert headers["cookie"] == "a=1; b=2"
    assert headers["accept-encoding"] == "gzip"
    # The upstream's own Host; the public one in X-Forwarded-*.
    assert headers["host"] == fake_identity.url.removeprefix("http://")
    assert headers["x-forwarded-host"] == client.base_url.netloc.decode()
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"


def test_client_forwarded_headers_are_not_trusted(client: httpx.Client, auth: dict[str, str]) -> None:
    headers = _echo(client.get("/api/users/u1", headers={
        **auth, "X-Forwarded-Host": "evil.example", "X-Forwarded-Proto": "https",
        "X-Forwarded-For": "10.9.9.9", "Forwarded": "host=evil.example"}))["headers"]
    assert headers["x-forwarded-host"] == client.base_url.netloc.decode()
    assert headers["x-forwarded-proto"] == "http"
    assert headers["x-forwarded-for"] == "127.0.0.1"
    assert "forwarded" not in headers


def test_hop_by_hop_headers_are_dropped(gateway, auth: dict[str, str]) -> None:
    """Raw HTTP/1.1, so the client can send what it likes."""
    request = (
        "GET /api/users/u1 HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{gateway.port}\r\n"
        f"Authorization: {auth['Authorization']}\r\n"
        "Connection: keep-alive, X-Private\r\n"
        "X-Private: secret\r\n"
        "Keep-Alive: timeout=5\r\n"
        "TE: trailers\r\n"
        "Proxy-Authorization: Basic eA==\r\n"
        "Upgrade: websocket\r\n"
        "X-Kept: 1\r\n"
        "\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(request)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(65536)
        head, _, rest = data.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?i)content-length: (\d+)", head)[1])
        while len(rest) < length:
            rest += sock.recv(65536)
    assert head.startswith(b"HTTP/1.1 200")
    import json

    headers = {k: v for k, v in json.loads(rest[:length])["headers"]}
    for name in ("connection", "x-private", "keep-alive", "te", "proxy-authorization", "upgrade"):
        assert name not in headers, name
    assert headers["x-kept"] == "1"


def test_request_id_is_generated_returned_and_forwarded(client: httpx.Client, auth: dict[str, str]) -> None:
    response = client.get("/api/users/u1", headers=auth)
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{16}", request_id)
    echo = _echo(response)
    assert echo["headers"]["x-request-id"] == request_id
    # The upstream answered with its own X-Request-Id; the client sees only the gateway's.
    assert response.headers.get_list("x-request-id") == [request_id]
    assert client.get("/api/users/u1", headers=auth).headers["x-request-id"] != request_id


def test_sane_incoming_request_id_is_kept(client: httpx.Client, auth: dict[str, str]) -> None:
    response = client.get("/api/users/u1", headers={**auth, "X-Request-Id": "trace-ABC_123"})
    assert response.headers["x-request-id"] == "trace-ABC_123"
    assert _echo(response)["headers"]["x-request-id"] == "trace-ABC_123"


@pytest.mark.parametrize("bad", ["x" * 65, "has space", "semi;colon", "ünï"])
def test_insane_incoming_request_id_is_replaced(client: httpx.Client, auth: dict[str, str], bad: str) -> None:
    response = client.get("/api/users/u1", headers={**auth, "X-Request-Id": bad.encode("utf-8")})
    assert re.fullmatch(r"[0-9a-f]{16}", response.headers["x-request-id"])
    assert _echo(response)["headers"]["x-request-id"] == response.headers["x-request-id"]


def test_request_id_on_gateway_answers(client: httpx.Client) -> None:
    for response in (client.get("/api/status"), client.get("/nope"), client.get("/api/users"),
                     client.get("/api/interaction")):
        assert re.fullmatch(r"[0-9a-f]{16}", response.headers["x-request-id"])


def test_large_upload_with_content_length(client: httpx.Client, auth: dict[str, str]) -> None:
    body = os.urandom(4 * 1024 * 1024)
    echo = _echo(client.post("/api/users/u1/echo", headers=auth, content=body))
    assert echo["bodyLength"] == len(body)
    assert echo["bodySha256"] == hashlib.sha256(body).hexdigest()
    assert echo["headers"]["content-length"] == str(len(body))
    assert echo["bodyChunks"] > 1  # it arrived in pieces, not as one buffered blob


def test_upload_streams_through(client: httpx.Client, auth: dict[str, str]) -> None:
    """The first part reaches the service while the client is still sending: not buffered."""
    first, second = os.urandom(1024 * 1024), os.urandom(2 * 1024 * 1024)

    def slow_body() -> Iterator[bytes]:
        yield first
        time.sleep(1.0)
        yield second

    echo = _echo(client.post("/api/users/u1/echo", headers=auth, content=slow_body()))
    assert echo["bodyLength"] == len(first) + len(second)
    assert echo["bodySha256"] == hashlib.sha256(first + second).hexdigest()
    assert echo["headers"]["transfer-encoding"] == "chunked"
    assert echo["bodySpreadSeconds"] >= 0.8


def test_download_streams_through(client: httpx.Client, auth: dict[str, str]) -> None:
    """The first bytes reach the client while the service is still producing the rest."""
    size = 5 * 1024 * 1024
    started = time.monotonic()
    with client.stream("GET", "/api/logs/stream", params={"size": size, "pause": 1.5}, headers=auth) as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        first = next(chunks)
        first_byte_after = time.monotonic() - started
        received = len(first) + sum(len(chunk) for chunk in chunks)
    assert first_byte_after < 1.0
    assert time.monotonic() - started >= 1.5
    assert received == size


def test_configured_but_down_service(client: httpx.Client, auth: dict[str, str]) -> None:
    started = time.monotonic()
    response = client.get("/api/connectors", headers=auth)
    assert time.monotonic() - started < 2.5
    assert response.status_code == 503
    assert response.json() == {"code": "service.unavailable",
                               "message": "The connectors service is unavailable. Please try again later."}


@pytest.mark.parametrize(("path", "service"), [("/api/hooks", "webhook-dispatcher"), ("/sign-in", "experience")])
def test_unconfigured_service(client: httpx.Client, auth: dict[str, str], path: str, service: str) -> None:
    response = client.get(path, headers=auth)
    assert response.status_code == 503
    assert response.json() == {"code": "service.unavailable",
                               "message": f"The {service} service is unavailable. Please try again later."}


def test_slow_service_times_out(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/oidc/slow", params={"seconds": 10})
    assert 1.5 < time.monotonic() - started < 5
    assert response.status_code == 504
    assert response.json()["code"] == "service.unavailable"


def test_connections_are_reused_and_parallel_requests_work(client: httpx.Client, auth: dict[str, str]) -> None:
    import concurrent.futures

    def call(i: int) -> str:
        return client.get(f"/api/users/u{i}", headers=auth).json()["path"]

    with concurrent.futures.ThreadPoolExecutor(16) as pool:
        paths = list(pool.map(call, range(200)))
    assert paths == [f"/api/users/u{i}" for i in range(200)]


def test_routes_reach_their_service(client: httpx.Client, auth: dict[str, str]) -> None:
    assert _echo(client.get("/api/users/u1/roles", headers=auth))["service"] == "rbac"
    assert _echo(client.get("/api/users/u1", headers=auth))["service"] == "identity"
    assert _echo(client.get("/api/applications/a1/roles", headers=auth))["service"] == "rbac"
    assert _echo(client.get("/api/resources", headers=auth))["service"] == "rbac"
    assert _echo(client.get("/api/logs/l1", headers=auth))["service"] == "identity"  # audit-log -> fake identity
    assert _echo(client.post("/oidc/token", data={"grant_type": "client_credentials"}))["service"] == "identity"


def test_head_request(client: httpx.Client, auth: dict[str, str]) -> None:
    response = client.head("/api/users/u1", headers=auth)
    assert response.status_code == 200
    assert response.content == b""
    # And the connection is still good for the next request.
    assert client.get("/api/users/u1", headers=auth).status_code == 200

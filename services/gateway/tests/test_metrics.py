"""The gateway's /metrics: requests by route pattern and status, for Prometheus, not the public."""

import socket

import httpx
from prometheus_client.parser import text_string_to_metric_families


def request_counts(client: httpx.Client) -> dict[tuple[str, str, str], float]:
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=")
    return {
        (s.labels["method"], s.labels["route"], s.labels["status"]): s.value
        for family in text_string_to_metric_families(response.text)
        if family.name == "tessera_http_request_duration_seconds"
        for s in family.samples
        if s.name.endswith("_count")
    }


def test_requests_are_counted_by_route_pattern_and_status(client: httpx.Client) -> None:
    before = request_counts(client)
    assert client.get("/api/users/some-user-id").status_code == 401  # no token
    assert client.get("/api/status").status_code == 204
    assert client.get("/no/such/route").status_code == 404
    after = request_counts(client)
    for key in (("GET", "/api/users*", "401"), ("GET", "/api/status", "204"), ("GET", "unmatched", "404")):
        assert after[key] == before.get(key, 0) + 1, key
    assert not any("some-user-id" in route for _, route, _ in after)


def test_a_made_up_method_is_counted_as_other(client: httpx.Client) -> None:
    before = request_counts(client)
    for method in ("BREW", "WHEN-1"):
        assert client.request(method, "/api/status").status_code in (404, 405, 503)
    after = request_counts(client)
    assert not any(method in ("BREW", "WHEN-1") for method, _, _ in after)
    assert sum(n for (method, _, _), n in after.items() if method == "other") == \
        sum(n for (method, _, _), n in before.items() if method == "other") + 2


def test_a_refused_framing_is_counted_as_unmatched(client: httpx.Client) -> None:
    """Refused before any route is looked up: counted, and under `unmatched`, not a route."""
    before = request_counts(client)
    with socket.create_connection((client.base_url.host, client.base_url.port), timeout=10) as raw:
        raw.sendall(b"GET /api/status HTTP/1.1\r\nHost: gateway\r\nHost: identity\r\n\r\n")
        assert raw.recv(64).startswith(b"HTTP/1.1 400 ")
    after = request_counts(client)
    assert after[("GET", "unmatched", "400")] == before.get(("GET", "unmatched", "400"), 0) + 1
    assert not any(route == "None" for _, route, _ in after)


def test_metrics_are_not_served_through_a_proxy(client: httpx.Client) -> None:
    response = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 404
    assert "tessera_http" not in response.text


def _own_metrics(client_address: tuple[str, int] | None) -> int:
    """Status of the gateway's own /metrics handler for a request from `client_address`,
    without X-Forwarded-For (a client that connects to the gateway directly sends none)."""
    import asyncio

    from tessera_gateway.handlers import OwnRoutes

    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {"type": "http", "method": "GET", "path": "/metrics", "headers": [], "client": client_address}
    asyncio.run(OwnRoutes(None).handle("/metrics", scope, send, []))  # type: ignore[arg-type]
    return sent[0]["status"]


def test_metrics_are_not_served_to_a_public_address_that_connected_directly() -> None:
    # The gateway is the public edge by default (no proxy adds X-Forwarded-For): the header's
    # absence alone does not make a request Prometheus's.
    assert _own_metrics(("8.8.8.8", 40000)) == 404
    assert _own_metrics(("2001:4860:4860::8888", 40000)) == 404
    assert _own_metrics(("::ffff:8.8.8.8", 40000)) == 404
    assert _own_metrics(None) == 404


def test_metrics_are_served_to_a_scraper_inside_the_cluster() -> None:
    for address in ("127.0.0.1", "10.1.2.3", "100.64.0.7", "::1", "fd00::1"):
        assert _own_metrics((address, 40000)) == 200, address

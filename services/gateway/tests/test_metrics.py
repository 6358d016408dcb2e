"""The gateway's /metrics: requests by route pattern and status, for Prometheus, not the public."""

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


def test_metrics_are_not_served_through_a_proxy(client: httpx.Client) -> None:
    response = client.get("/metrics", headers={"X-Forwarded-For": "203.0.113.9"})
    assert response.status_code == 404
    assert "tessera_http" not in response.text

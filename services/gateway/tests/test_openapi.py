"""`/api/swagger.json` merges the services' documents; `/api/asyncapi.json` is the catalogue's."""

from __future__ import annotations

import time

import httpx

from tessera_gateway.openapi import merge_documents


def test_swagger_merges_running_services_and_skips_down_ones(client: httpx.Client) -> None:
    started = time.monotonic()
    response = client.get("/api/swagger.json")  # anonymous, like Logto's
    assert time.monotonic() - started < 3  # the down connectors service does not hold it up
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    document = response.json()
    assert document["info"]["title"] == "Tessera"
    assert document["openapi"].startswith("3.")
    # identity (also configured as audit-log: asked once) and rbac are up; connectors is down.
    assert "/api/identity-things" in document["paths"]
    assert "/api/rbac-things" in document["paths"]
    assert "/api/status" in document["paths"]
    assert {"IdentityThing", "RbacThing"} <= set(document["components"]["schemas"])
    assert [t["name"] for t in document["tags"]] == ["identity", "rbac"]


def test_swagger_is_cached(client: httpx.Client) -> None:
    first = client.get("/api/swagger.json").content
    assert client.get("/api/swagger.json").content == first


def test_merge_documents() -> None:
    a = {"paths": {"/api/x": {"get": {"operationId": "GetX"}}},
         "components": {"schemas": {"X": {"type": "object"}, "Shared": {"title": "from a"}}},
         "tags": [{"name": "X"}]}
    b = {"paths": {"/api/x": {"post": {"operationId": "PostX"}}, "/api/y": {"get": {}}},
         "components": {"schemas": {"Shared": {"title": "from b"}},
                        "securitySchemes": {"bearer": {"type": "http"}}},
         "tags": [{"name": "X"}, {"name": "Y"}]}
    merged = merge_documents([a, b])
    assert merged["info"]["title"] == "Tessera"
    assert set(merged["paths"]["/api/x"]) == {"get", "post"}
    assert "/api/y" in merged["paths"]
    assert merged["components"]["schemas"]["Shared"] == {"title": "from a"}
    assert merged["components"]["securitySchemes"] == {"bearer": {"type": "http"}}
    assert [t["name"] for t in merged["tags"]] == ["X", "Y"]
    assert merge_documents([])["paths"].keys() >= {"/api/status", "/api/swagger.json"}


def test_asyncapi(client: httpx.Client) -> None:
    response = client.get("/api/asyncapi.json")
    # 200 with the event catalogue's document, or 503 while the catalogue cannot build one.
    assert response.status_code in (200, 503)
    if response.status_code == 200:
        assert "asyncapi" in response.json()
    else:
        assert response.json()["code"] == "service.unavailable"

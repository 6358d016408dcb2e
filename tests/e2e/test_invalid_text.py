"""Text PostgreSQL cannot store (NUL, invalid UTF-8) answers 400 at every service's edge, never
a 500 (schemathesis found 110 such 500s); a path echoed into a `Link` header is encoded."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "e2e-invalid-text-admin"}


@pytest.fixture
async def api(stack):
    async with httpx.AsyncClient(base_url=stack.url, timeout=15, headers=ADMIN) as client:
        yield client


def assert_invalid_input(response: httpx.Response) -> None:
    assert response.status_code == 400, (response.request.url, response.status_code, response.text)
    assert response.json()["code"] == "guard.invalid_input"


@pytest.mark.parametrize("path", [
    "/api/logs?logKey=%00",
    "/api/users/%00",
    "/api/users?search=%00",
    "/api/users?search=%FF%FE",
    "/api/applications/ab%00cd",
    "/api/roles?search=%00",
    "/api/resources/%00/scopes",
    "/api/users/%01",
])
async def test_nul_or_invalid_utf8_in_path_or_query(api, path):
    assert_invalid_input(await api.get(path))


async def test_nul_in_json_bodies(api):
    assert_invalid_input(await api.post("/api/applications", json={"name": "a\x00b", "type": "SPA"}))
    # split across the JSON escape's characters, the rule still holds
    assert_invalid_input(await api.post("/api/roles", json={"name": "r", "description": "x\x00"}))
    assert_invalid_input(await api.post("/api/users", json={"username": "nul\x00user"}))
    # the same request without the NUL is fine: the rule refuses only what it should
    created = await api.post("/api/applications", json={"name": "a b", "type": "SPA"})
    assert created.status_code == 200, created.text


async def test_non_latin1_path_is_encoded_in_the_link_header(api):
    response = await api.get("/api/resources/%E2%82%AC/scopes")
    assert response.status_code in (200, 404), response.text
    if response.status_code == 200:
        assert "%E2%82%AC" in response.headers["link"]


@pytest.mark.parametrize("method,path", [
    ("GET", "/oidc/auth?client_id=%00&response_type=code&redirect_uri=http://x/cb"),
])
async def test_anonymous_oidc_query_with_nul_is_an_oauth_400(stack, method, path):
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as anonymous:
        response = await anonymous.request(method, path)
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


@pytest.mark.parametrize("path", ["/oidc/token", "/oidc/token/introspection", "/oidc/token/revocation"])
async def test_anonymous_oidc_form_with_nul_is_an_oauth_400(stack, path):
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as anonymous:
        response = await anonymous.post(path, content=b"client_id=%00&grant_type=client_credentials&token=x",
                                        headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 400, response.text
    assert response.json()["error"] == "invalid_request"


async def test_interaction_with_nul_identifier_is_refused_and_audit_log_keeps_up(stack, api):
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as visitor:
        response = await visitor.put("/api/interaction", json={
            "event": "SignIn", "identifier": {"email": "a\x00@example.com", "password": "x"}})
        assert_invalid_input(response)
    # audit-log still applies events after the attempt (nothing was dead-lettered)
    user = await api.post("/api/users", json={"username": "after_nul_attempt"})
    assert user.status_code == 200, user.text
    for _ in range(300):
        logs = await api.get("/api/logs", params={"logKey": "identity.user.created", "page_size": "100"})
        if any(row["payload"].get("user", {}).get("id") == user.json()["id"] or
               user.json()["id"] in str(row["payload"]) for row in logs.json()):
            break
        import asyncio
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("audit-log did not record the user created after the NUL attempt")

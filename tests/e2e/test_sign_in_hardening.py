"""Issue 11 through the gateway, every service its own process: the interaction API and the
sign-in pages refuse cross-site writes (403 in Logto's error format) and JSON that does not
say it is JSON (415), while the same requests from the endpoint's own pages go through."""

from __future__ import annotations

import secrets
from urllib.parse import urlencode

import httpx
import pytest

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "e2e-admin"}
REDIRECT_URI = "https://app.example/callback"
PASSWORD = "e2e-Passw0rd"


@pytest.fixture
async def started(stack):
    """A browser (cookie jar) with a live interaction, and a user who can sign in."""
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as api:
        app = await api.post("/api/applications", headers=ADMIN, json={
            "name": f"hardening-{secrets.token_hex(3)}", "type": "SPA",
            "oidcClientMetadata": {"redirectUris": [REDIRECT_URI], "postLogoutRedirectUris": []}})
        assert app.status_code == 200, app.text
        username = f"csrf_{secrets.token_hex(4)}"
        user = await api.post("/api/users", headers=ADMIN, json={"username": username, "password": PASSWORD})
        assert user.status_code == 200, user.text
    async with httpx.AsyncClient(base_url=stack.url, timeout=15, follow_redirects=False) as browser:
        query = {"client_id": app.json()["id"], "redirect_uri": REDIRECT_URI, "response_type": "code",
                 "scope": "openid", "state": "s", "code_challenge": "x" * 43, "code_challenge_method": "S256"}
        response = await browser.get("/oidc/auth?" + urlencode(query))
        assert response.status_code == 303 and "_interaction" in browser.cookies, response.text
        yield browser, username


def refused(response) -> None:
    assert response.status_code == 403, response.text
    body = response.json()
    assert body["code"] == "auth.forbidden" and isinstance(body["message"], str)


async def test_cross_site_writes_are_refused_and_same_site_ones_go_through(stack, started):
    browser, username = started
    sign_in = {"event": "SignIn", "identifier": {"username": username, "password": PASSWORD}}
    evil = {"origin": "https://evil.example"}
    refused(await browser.put("/api/interaction", json=sign_in, headers=evil))
    refused(await browser.put("/api/interaction", json=sign_in, headers={"origin": "null"}))
    refused(await browser.put("/api/interaction", json=sign_in, headers={"referer": "https://evil.example/x"}))
    # A browser that left Origin out still says where the request came from.
    refused(await browser.put("/api/interaction", json=sign_in, headers={"sec-fetch-site": "cross-site"}))
    refused(await browser.post("/sign-in", data={"identifier": username, "password": PASSWORD}, headers=evil))
    refused(await browser.post("/api/interaction/submit", headers=evil))
    own = {"origin": stack.url}
    assert (await browser.put("/api/interaction", json=sign_in, headers=own)).status_code == 204
    submitted = await browser.post("/api/interaction/submit", headers=own)
    assert submitted.status_code == 200 and "redirectTo" in submitted.json(), submitted.text


async def test_json_sent_as_text_plain_is_refused(stack, started):
    browser, username = started
    body = ('{"event": "SignIn", "identifier": {"username": "%s", "password": "%s"}}' % (username, PASSWORD)).encode()
    own = {"origin": stack.url}
    response = await browser.put("/api/interaction", content=body, headers={**own, "content-type": "text/plain"})
    assert response.status_code == 415, response.text
    assert response.json()["code"] == "guard.mime_type_not_allowed"
    response = await browser.put("/api/interaction", content=body,
                                 headers={**own, "content-type": "application/json"})
    assert response.status_code == 204, response.text


async def test_a_registration_password_is_never_at_rest_in_clear_and_signs_in(stack, started):
    import asyncpg

    browser, _ = started
    own = {"origin": stack.url}
    username, password = f"reg_{secrets.token_hex(4)}", f"Clear-{secrets.token_hex(6)}"
    assert (await browser.put("/api/interaction", json={"event": "Register"}, headers=own)).status_code == 204
    profile = await browser.patch("/api/interaction/profile", json={"username": username, "password": password},
                                  headers=own)
    assert profile.status_code == 204, profile.text
    connection = await asyncpg.connect(stack.env["DATABASE_URL"])
    try:
        rows = await connection.fetch("SELECT profile::text AS profile FROM experience.interactions")
    finally:
        await connection.close()
    assert any(username in (row["profile"] or "") for row in rows)
    assert not any(password in (row["profile"] or "") for row in rows)
    registered = await browser.post("/api/interaction/submit", headers=own)
    assert registered.status_code == 200, registered.text
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as api:
        user = (await api.get("/api/users", params={"search": username}, headers=ADMIN)).json()
        assert [u["username"] for u in user] == [username]
        verified = await api.post(f"/api/users/{user[0]['id']}/password/verify", json={"password": password},
                                  headers=ADMIN)
        assert verified.status_code == 204, verified.text

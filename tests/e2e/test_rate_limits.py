"""Issue 11 item 4 through the gateway, every service its own process, default limits: sign-in
password checks per address and per address and account, token failures per address; 429 with
Retry-After; another address unaffected. Each test's clients connect from their own loopback
address (127.0.0.0/8), which the gateway appends to X-Forwarded-For as the client's."""

from __future__ import annotations

import secrets
from collections import Counter as Tally
from urllib.parse import urlencode

import httpx
import pytest

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "e2e-admin"}
REDIRECT_URI = "https://app.example/callback"
PASSWORD = "e2e-Passw0rd"


def loopback() -> str:
    """An address of this machine no other test connects from."""
    return f"127.{secrets.randbelow(200) + 20}.{secrets.randbelow(250) + 1}.{secrets.randbelow(250) + 2}"


def client_from(stack, address: str, **kwargs) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=stack.url, timeout=30, follow_redirects=False,
                             transport=httpx.AsyncHTTPTransport(local_address=address), **kwargs)


@pytest.fixture
async def spa_and_victim(stack):
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as api:
        app = await api.post("/api/applications", headers=ADMIN, json={
            "name": f"limits-{secrets.token_hex(3)}", "type": "SPA",
            "oidcClientMetadata": {"redirectUris": [REDIRECT_URI], "postLogoutRedirectUris": []}})
        assert app.status_code == 200, app.text
        name = f"victim_{secrets.token_hex(4)}"
        phone = "1" + "".join(secrets.choice("0123456789") for _ in range(10))
        user = await api.post("/api/users", headers=ADMIN, json={
            "username": name, "primaryEmail": f"{name}@example.com", "primaryPhone": phone, "password": PASSWORD})
        assert user.status_code == 200, user.text
    return app.json()["id"], user.json()


async def with_interaction(browser: httpx.AsyncClient, stack, client_id: str) -> None:
    query = {"client_id": client_id, "redirect_uri": REDIRECT_URI, "response_type": "code", "scope": "openid",
             "state": "s", "code_challenge": "x" * 43, "code_challenge_method": "S256"}
    response = await browser.get("/oidc/auth?" + urlencode(query))
    assert response.status_code == 303 and "_interaction" in browser.cookies, response.text
    browser.headers["origin"] = stack.url  # the sign-in pages' own origin


async def test_locking_out_a_victim_costs_more_than_100_requests_from_one_address(stack, spa_and_victim):
    client_id, victim = spa_and_victim
    # The stack's sign-in experience takes usernames only; that the allowance is per account,
    # whichever identifier names it, is tested on identity (services/identity/tests).
    answers = []
    async with client_from(stack, loopback()) as attacker:
        await with_interaction(attacker, stack, client_id)
        for n in range(120):
            guess = {"username": victim["username"], "password": f"wrong-{n}"}
            answers.append(await attacker.put("/api/interaction", json={"event": "SignIn", "identifier": guess}))
        tally = Tally(a.status_code for a in answers)
        # 20 checks per address and account whichever identifier names it (one more only if
        # this took over 3 minutes, the limit's refill): the lockout's 100 stays out of reach.
        assert tally[422] in (20, 21) and tally[429] == 120 - tally[422], tally
        assert all(a.json()["code"] == "session.invalid_credentials" for a in answers if a.status_code == 422)
        refused = answers[-1]
        assert refused.status_code == 429 and refused.json()["code"] == "request.too_many_requests"
        seconds = refused.json()["data"]["retryAfter"]
        assert refused.headers["retry-after"] == str(seconds) and 1 <= seconds <= 600
        assert refused.json()["message"] == f"Too many requests. Please try again in {seconds} seconds."
        # The hosted page says so too, with the same header; the right password does not help.
        page = await attacker.post("/sign-in", data={"identifier": victim["username"], "password": PASSWORD})
        assert page.status_code == 429 and page.headers["retry-after"].isdigit(), page.text
        assert "Too many attempts." in page.text
    # The victim, from their own address, signs in as usual.
    async with client_from(stack, loopback()) as own:
        await with_interaction(own, stack, client_id)
        signed_in = await own.put("/api/interaction", json={
            "event": "SignIn", "identifier": {"username": victim["username"], "password": PASSWORD}})
        assert signed_in.status_code == 204, signed_in.text
        submitted = await own.post("/api/interaction/submit")
        assert submitted.status_code == 200 and "redirectTo" in submitted.json(), submitted.text


async def test_token_failures_are_limited_per_address(stack):
    admin = stack.admin_client
    body = {"grant_type": "client_credentials"}
    async with client_from(stack, loopback()) as attacker:
        answers = [await attacker.post("/oidc/token", data=body, auth=(admin.id, f"wrong-{n}")) for n in range(110)]
        statuses = [a.status_code for a in answers]
        # 100 failures (a few more only if they took over 6 s each, the limit's refill), then 429s.
        assert statuses[:100] == [401] * 100, Tally(statuses)
        first = statuses.index(429)
        assert first <= 105 and set(statuses[first:]) == {429}, Tally(statuses)
        refused = answers[first]
        seconds = refused.headers["retry-after"]
        assert refused.json() == {"error": "invalid_request",
                                  "error_description": f"too many failed token requests; retry after {seconds} seconds"}
        # Refused before any work, even with the right secret.
        right = await attacker.post("/oidc/token", data=body, auth=(admin.id, admin.secret))
        assert right.status_code == 429 and right.headers["retry-after"].isdigit()
    async with client_from(stack, loopback()) as other:
        ok = await other.post("/oidc/token", data=body, auth=(admin.id, admin.secret))
        assert ok.status_code == 200, ok.text

"""The sign-in experience end to end, through the gateway, every service its own process:
an application starts `/oidc/auth`, the interaction API signs a user in (or registers one),
the browser's redirects end at the redirect URI with a code, and the code becomes tokens.
Driven with httpx and a cookie jar, as a custom sign-in UI would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "e2e-admin"}
REDIRECT_URI = "https://app.example/callback"
PASSWORD = "e2e-Passw0rd"


@dataclass
class App:
    id: str
    redirect_uri: str = REDIRECT_URI


@pytest.fixture
async def api(stack):
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as client:
        yield client


@pytest.fixture
async def app(api):
    response = await api.post("/api/applications", headers=ADMIN, json={
        "name": f"experience-e2e-{secrets.token_hex(3)}", "type": "SPA",
        "oidcClientMetadata": {"redirectUris": [REDIRECT_URI], "postLogoutRedirectUris": []},
    })
    assert response.status_code == 200, response.text
    return App(response.json()["id"])


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


async def create_user(api, **body):
    response = await api.post("/api/users", headers=ADMIN, json=body)
    assert response.status_code == 200, response.text
    return response.json()


class Browser:
    """A cookie jar following the redirects by hand, as a browser would."""

    def __init__(self, base_url: str):
        # A browser on the sign-in pages says where its requests come from.
        self.client = httpx.AsyncClient(base_url=base_url, timeout=15, follow_redirects=False,
                                        headers={"origin": base_url})
        self.verifier = secrets.token_urlsafe(48)

    @property
    def challenge(self) -> str:
        digest = hashlib.sha256(self.verifier.encode()).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    async def authorize(self, app: App, **extra: str) -> str:
        query = {"client_id": app.id, "redirect_uri": app.redirect_uri, "response_type": "code",
                 "scope": "openid profile", "state": "st4te", "code_challenge": self.challenge,
                 "code_challenge_method": "S256", **extra}
        response = await self.client.get("/oidc/auth?" + urlencode(query))
        assert response.status_code == 303, response.text
        assert "_interaction" in self.client.cookies
        return response.headers["location"]

    async def follow(self, location: str) -> str:
        """Follow identity's redirects until they leave `/oidc`."""
        response = None
        for _ in range(5):
            path = location.replace(str(self.client.base_url), "") if location.startswith("http") else location
            if not path.startswith("/oidc"):
                return location
            response = await self.client.get(path)
            assert response.status_code in (302, 303), response.text
            location = response.headers["location"]
        raise AssertionError("too many redirects")

    async def aclose(self):
        await self.client.aclose()


@pytest.fixture
async def browser(stack):
    b = Browser(stack.url)
    yield b
    await b.aclose()


async def consent_and_get_code(browser: Browser, after_login: str) -> str:
    """From the sign-in's redirectTo to the client's redirect URI: consent on the way."""
    location = await browser.follow(after_login)
    if location.startswith("/sign-in/consent"):
        response = await browser.client.post("/api/interaction/consent")
        assert response.status_code == 200, response.text
        location = await browser.follow(response.json()["redirectTo"])
    assert location.startswith(REDIRECT_URI), location
    query = parse_qs(urlsplit(location).query)
    assert query["state"] == ["st4te"]
    return query["code"][0]


async def exchange(api, app: App, browser: Browser, code: str) -> dict:
    response = await api.post("/oidc/token", data={
        "grant_type": "authorization_code", "code": code, "redirect_uri": app.redirect_uri,
        "client_id": app.id, "code_verifier": browser.verifier,
    })
    assert response.status_code == 200, response.text
    return response.json()


def claims_of(id_token: str) -> dict:
    import json
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def logs(api, key: str, expected: int, where=lambda entry: True, **params) -> list[dict]:
    """The newest logs under `key` (and `where`), once `expected` of them have arrived."""
    for _ in range(300):
        response = await api.get("/api/logs", params={"logKey": key, "page_size": "100", **params}, headers=ADMIN)
        found = [e for e in response.json() if where(e)] if response.status_code == 200 else []
        if len(found) >= expected:
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"fewer than {expected} logs with key {key}")


async def test_sign_in_with_username_and_password_to_tokens(api, app, browser):
    username = unique("ada")
    user = await create_user(api, username=username, password=PASSWORD)
    location = await browser.authorize(app)
    assert location == "/sign-in"
    put = await browser.client.put("/api/interaction", json={
        "event": "SignIn", "identifier": {"username": username, "password": PASSWORD}})
    assert put.status_code == 204, put.text
    submitted = await browser.client.post("/api/interaction/submit")
    assert submitted.status_code == 200, submitted.text
    code = await consent_and_get_code(browser, submitted.json()["redirectTo"])
    tokens = await exchange(api, app, browser, code)
    assert claims_of(tokens["id_token"])["sub"] == user["id"]
    signed_in = await logs(api, "experience.interaction.signed_in", 1, userId=user["id"])
    assert signed_in[0]["payload"]["data"]["methods"] == ["password"]
    submit_log = await logs(api, "Interaction.SignIn.Submit", 1, userId=user["id"])
    assert submit_log[0]["payload"]["result"] == "Success"
    me = await api.get(f"/api/users/{user['id']}", headers=ADMIN)
    assert me.json()["lastSignInAt"] is not None and me.json()["applicationId"] == app.id


async def test_register_then_tokens(api, app, browser):
    username = unique("grace")
    location = await browser.authorize(app, interaction_mode="signUp")
    assert location == "/register"
    put = await browser.client.put("/api/interaction", json={
        "event": "Register", "profile": {"username": username, "password": PASSWORD}})
    assert put.status_code == 204, put.text
    submitted = await browser.client.post("/api/interaction/submit")
    assert submitted.status_code == 200, submitted.text
    code = await consent_and_get_code(browser, submitted.json()["redirectTo"])
    tokens = await exchange(api, app, browser, code)
    user_id = claims_of(tokens["id_token"])["sub"]
    user = (await api.get(f"/api/users/{user_id}", headers=ADMIN)).json()
    assert user["username"] == username
    registered = await logs(api, "experience.interaction.registered", 1, userId=user_id)
    assert len(registered) == 1
    # The new password works for the next sign-in.
    verify = await api.post(f"/api/users/{user_id}/password/verify", headers=ADMIN, json={"password": PASSWORD})
    assert verify.status_code == 204, verify.text


async def test_wrong_password_is_logged_and_signs_nobody_in(api, app, browser):
    username = unique("bob")
    await create_user(api, username=username, password=PASSWORD)
    await browser.authorize(app)
    put = await browser.client.put("/api/interaction", json={
        "event": "SignIn", "identifier": {"username": username, "password": "wrong-Passw0rd"}})
    assert put.status_code == 422 and put.json()["code"] == "session.invalid_credentials"
    mine = await logs(api, "Interaction.SignIn.Identifier.Password.Submit", 1,
                      where=lambda e: e["payload"].get("username") == username)
    assert mine[0]["payload"]["result"] == "Error"
    assert mine[0]["payload"]["error"]["code"] == "session.invalid_credentials"
    submitted = await browser.client.post("/api/interaction/submit")
    assert submitted.status_code == 404 and submitted.json()["code"] == "session.verification_session_not_found"


async def test_interaction_routes_without_the_cookie(api):
    response = await api.put("/api/interaction", json={"event": "SignIn"})
    assert response.status_code == 400 and response.json()["code"] == "session.not_found"


async def test_abort_sends_the_client_an_error(api, app, browser):
    await browser.authorize(app)
    response = await browser.client.delete("/api/interaction")
    assert response.status_code == 200
    location = await browser.follow(response.json()["redirectTo"])
    query = parse_qs(urlsplit(location).query)
    assert location.startswith(REDIRECT_URI) and query["error"] == ["access_denied"]


async def test_configuration_through_the_gateway(api):
    anonymous = await api.get("/api/sign-in-exp")
    assert anonymous.status_code == 401
    sie = await api.get("/api/sign-in-exp", headers=ADMIN)
    assert sie.status_code == 200 and sie.json()["id"] == "default"
    well_known = await api.get("/api/.well-known/sign-in-exp")
    assert well_known.status_code == 200 and well_known.json()["socialConnectors"] == []
    phrases = await api.get("/api/.well-known/phrases", params={"lng": "fr"})
    assert phrases.headers["content-language"] == "fr"
    flags = await api.get("/api/configs/admin-console", headers=ADMIN)
    assert flags.status_code == 200 and len(flags.json()) == 8
    phrase = await api.put("/api/custom-phrases/de", headers=ADMIN, json={"input": {"username": "Name"}})
    assert phrase.status_code == 201
    assert (await api.delete("/api/custom-phrases/de", headers=ADMIN)).status_code == 204

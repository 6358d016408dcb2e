"""The hosted sign-in pages in a real browser: headless Chromium (Debian's `chromium`) driven
by Playwright, every service its own process behind the gateway.

An app (a tiny HTTP server on the loopback interface) sends the browser to `/oidc/auth`; the
user signs in or registers on the pages; the browser lands on the app's redirect URI with a
code, which the app exchanges for tokens. `make test` installs
Chromium when it is missing (`make browser`); without it these tests skip and say why.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.e2e

ADMIN = {"development-user-id": "e2e-admin"}
PASSWORD = "Br0wser-Pass"

class App:
    """A single-page app as the authorization server sees it (a client id, a redirect URI,
    PKCE), served on the loopback interface: `/login` sends the browser to `/oidc/auth`,
    `/callback` is where it comes back with the code."""

    def __init__(self, stack_url: str, client_id: str, origin: str):
        self.stack_url = stack_url
        self.client_id = client_id
        self.origin = origin
        self.verifier = secrets.token_urlsafe(48)
        self.state = secrets.token_urlsafe(8)
        self.extra: dict[str, str] = {}
        self.callbacks: list[str] = []

    @property
    def redirect_uri(self) -> str:
        return f"{self.origin}/callback"

    def authorization_url(self) -> str:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        query = {"client_id": self.client_id, "redirect_uri": self.redirect_uri, "response_type": "code",
                 "scope": "openid profile", "state": self.state, "code_challenge": challenge,
                 "code_challenge_method": "S256", **self.extra}
        return f"{self.stack_url}/oidc/auth?{urlencode(query)}"

    def code(self) -> str:
        (callback,) = self.callbacks
        query = parse_qs(urlsplit(callback).query)
        assert query["state"] == [self.state], callback
        return query["code"][0]

    async def tokens(self, code: str) -> dict:
        async with httpx.AsyncClient(base_url=self.stack_url, timeout=15) as client:
            response = await client.post("/oidc/token", data={
                "grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
                "client_id": self.client_id, "code_verifier": self.verifier,
            })
        assert response.status_code == 200, response.text
        return response.json()


def subject_of(id_token: str) -> str:
    payload = id_token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"]


@pytest.fixture
async def app(stack, app_server):
    holder, origin = app_server
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as client:
        response = await client.post("/api/applications", headers=ADMIN, json={
            "name": "Browser test app", "type": "SPA",
            "oidcClientMetadata": {"redirectUris": [f"{origin}/callback"], "postLogoutRedirectUris": []},
        })
    assert response.status_code == 200, response.text
    holder.append(App(stack.url, response.json()["id"], origin))
    return holder[0]


async def create_user(stack, username: str) -> dict:
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as client:
        response = await client.post("/api/users", headers=ADMIN, json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


async def test_sign_in_with_username_and_password_lands_on_the_app_with_a_code(stack, app, browser_page):
    context, page = browser_page
    blocked: list[str] = []  # what the pages' Content-Security-Policy refused, if anything
    page.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text
            else None)
    user = await create_user(stack, f"ann_{secrets.token_hex(3)}")
    await page.goto(f"{app.origin}/login")
    await page.wait_for_url(f"{stack.url}/sign-in")
    assert await page.get_by_role("heading", level=1).inner_text() == "Sign in"
    # The sign-in experience's colours come from its own stylesheet, which the policy allows.
    primary = await page.evaluate("getComputedStyle(document.documentElement).getPropertyValue('--primary')")
    assert primary.strip().lower() == "#6139f6"
    await page.get_by_label("Username").fill(user["username"])
    await page.get_by_label("Password").fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    # Through /oidc/auth/:uid, the consent page (which submits itself) and back to the app.
    await page.wait_for_url(f"{app.redirect_uri}?**")
    assert await page.get_by_role("heading", level=1).inner_text() == "Signed in"
    tokens = await app.tokens(app.code())
    assert subject_of(tokens["id_token"]) == user["id"]
    assert tokens["access_token"]
    assert blocked == []


async def test_register_in_the_browser(stack, app, browser_page):
    context, page = browser_page
    username = f"reg_{secrets.token_hex(3)}"
    app.extra["interaction_mode"] = "signUp"
    await page.goto(f"{app.origin}/login")
    await page.wait_for_url(f"{stack.url}/register")
    await page.get_by_label("Username").fill(username)
    await page.get_by_label("Password", exact=True).fill(PASSWORD)
    await page.get_by_label("Confirm password").fill(PASSWORD)
    await page.get_by_role("button", name="Create account").click()
    await page.wait_for_url(f"{app.redirect_uri}?**")
    tokens = await app.tokens(app.code())
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as client:
        user = (await client.get(f"/api/users/{subject_of(tokens['id_token'])}", headers=ADMIN)).json()
    assert user["username"] == username


async def test_a_wrong_password_is_shown_next_to_the_field(stack, app, browser_page):
    context, page = browser_page
    user = await create_user(stack, f"bea_{secrets.token_hex(3)}")
    await page.goto(f"{app.origin}/login")
    await page.wait_for_url(f"{stack.url}/sign-in")
    await page.get_by_label("Username").fill(user["username"])
    await page.get_by_label("Password").fill("Wrong-passw0rd")
    await page.get_by_role("button", name="Sign in").click()
    error = page.locator("#password-error")
    await error.wait_for()
    assert await error.inner_text() == "⚠ The account or the password is wrong." or \
        (await error.inner_text()).endswith("The account or the password is wrong.")
    password = page.get_by_label("Password")
    assert await password.get_attribute("aria-invalid") == "true"
    assert await password.get_attribute("aria-describedby") == "password-error"
    assert await page.get_by_role("alert").is_visible()
    assert await page.evaluate("document.activeElement.id") == "password"  # focus is on the field to fix
    assert page.url == f"{stack.url}/sign-in" and app.callbacks == []
    # The right password on the same page still works.
    await password.fill(PASSWORD)
    await page.get_by_role("button", name="Sign in").click()
    await page.wait_for_url(f"{app.redirect_uri}?**")
    assert subject_of((await app.tokens(app.code()))["id_token"]) == user["id"]

"""The admin tenant end to end: the gateway's second listener (`stack.admin_url`, Logto's admin
endpoint) serves the tenant `admin`, the first (`stack.url`) the tenant `default`. Each has its
own issuer, keys, users, roles, sign-in experience and applications; the tenant of a request is
the listener's, whatever the request says. The console's user signs in through `admin-console`
and reads and writes its own custom data on `/me`; no token, cookie or user of one tenant
works on the other."""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest

pytestmark = pytest.mark.e2e
DEV_ADMIN = {"development-user-id": "e2e-admin"}
ME_API = "https://admin.logto.app/me"
DEFAULT_API = "https://default.logto.app/api"
PASSWORD = "e2e-Passw0rd"


@pytest.fixture
async def default(stack):
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as client:
        yield client


@pytest.fixture
async def admin(stack):
    assert stack.admin_url, "the stack fixture starts the admin tenant's listener"
    async with httpx.AsyncClient(base_url=stack.admin_url, timeout=15) as client:
        yield client


def unique(prefix: str) -> str:
    return f"{prefix}_{secrets.token_hex(4)}"


def claims_of(token: str) -> dict:
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


async def create_user(api: httpx.AsyncClient, username: str) -> dict:
    response = await api.post("/api/users", headers=DEV_ADMIN, json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


async def give_roles(api: httpx.AsyncClient, user_id: str, names: set[str]) -> None:
    roles = (await api.get("/api/roles", headers=DEV_ADMIN)).json()
    chosen = [role for role in roles if role["name"] in names]
    assert {role["name"] for role in chosen} == names, roles
    for role in chosen:
        response = await api.post(f"/api/roles/{role['id']}/users", headers=DEV_ADMIN, json={"userIds": [user_id]})
        assert response.status_code == 201, response.text


class Console:
    """The admin console as a browser runs it: `admin-console` on the admin endpoint, PKCE."""

    def __init__(self, admin_url: str):
        self.base = admin_url
        self.redirect_uri = f"{admin_url}/console/callback"
        self.client = httpx.AsyncClient(base_url=admin_url, timeout=15, follow_redirects=False,
                                        headers={"origin": admin_url})
        self.verifier = secrets.token_urlsafe(48)

    async def sign_in(self, username: str, password: str) -> dict:
        challenge = base64.urlsafe_b64encode(hashlib.sha256(self.verifier.encode()).digest()).rstrip(b"=").decode()
        query = [("client_id", "admin-console"), ("redirect_uri", self.redirect_uri), ("response_type", "code"),
                 ("scope", "openid offline_access all"), ("state", "st4te"), ("prompt", "consent"),
                 ("code_challenge", challenge), ("code_challenge_method", "S256"),
                 ("resource", ME_API), ("resource", DEFAULT_API)]
        response = await self.client.get("/oidc/auth?" + urlencode(query))
        assert response.status_code == 303, response.text
        put = await self.client.put("/api/interaction", json={
            "event": "SignIn", "identifier": {"username": username, "password": password}})
        assert put.status_code == 204, put.text
        submitted = await self.client.post("/api/interaction/submit")
        assert submitted.status_code == 200, submitted.text
        location = await self._follow(submitted.json()["redirectTo"])
        if location.startswith("/sign-in/consent"):
            consent = await self.client.post("/api/interaction/consent")
            assert consent.status_code == 200, consent.text
            location = await self._follow(consent.json()["redirectTo"])
        assert location.startswith(self.redirect_uri), location
        code = parse_qs(urlsplit(location).query)["code"][0]
        tokens = await self.client.post("/oidc/token", data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": self.redirect_uri,
            "client_id": "admin-console", "code_verifier": self.verifier, "resource": ME_API})
        assert tokens.status_code == 200, tokens.text
        return tokens.json()

    async def access_token(self, refresh_token: str, resource: str) -> str:
        response = await self.client.post("/oidc/token", data={
            "grant_type": "refresh_token", "refresh_token": refresh_token, "client_id": "admin-console",
            "resource": resource})
        assert response.status_code == 200, response.text
        return response.json()["access_token"]

    async def _follow(self, location: str) -> str:
        for _ in range(5):
            path = location.removeprefix(self.base)
            if not path.startswith("/oidc"):
                return location
            response = await self.client.get(path)
            assert response.status_code in (302, 303), response.text
            location = response.headers["location"]
        raise AssertionError("too many redirects")

    async def aclose(self) -> None:
        await self.client.aclose()


@pytest.fixture
async def console(stack):
    c = Console(stack.admin_url)
    yield c
    await c.aclose()


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


async def test_each_listener_is_its_own_tenant(stack, default, admin):
    issuers = [(await api.get("/oidc/.well-known/openid-configuration")).json()["issuer"] for api in (default, admin)]
    assert issuers == [f"{stack.url}/oidc", f"{stack.admin_url}/oidc"]
    kids = [{key["kid"] for key in (await api.get("/oidc/jwks")).json()["keys"]} for api in (default, admin)]
    assert kids[0] and kids[1] and not kids[0] & kids[1]

    # Where a tenant's users sign in: the admin tenant answers, any other says the route is not there.
    endpoints = await admin.get("/api/.well-known/endpoints/default")
    assert endpoints.status_code == 200 and endpoints.json() == {"user": f"{stack.url}/"}
    assert (await admin.get("/api/.well-known/endpoints/123")).json() == {"user": f"{stack.url}/"}
    assert (await default.get("/api/.well-known/endpoints/default")).status_code == 404

    # The console's sign-in experience: username and password, dark mode; the default tenant's is untouched.
    console_sie = (await admin.get("/api/.well-known/sign-in-exp")).json()
    assert console_sie["tenantId"] == "admin" and console_sie["color"]["isDarkModeEnabled"] is True
    assert console_sie["signIn"]["methods"][0]["identifier"] == "username"
    assert (await default.get("/api/.well-known/sign-in-exp")).json()["color"]["isDarkModeEnabled"] is False

    # The Me API is the admin tenant's: a token is asked for there, a page is shown elsewhere.
    refused = await admin.get("/me/custom-data")
    assert refused.status_code == 401 and refused.json()["code"] == "auth.authorization_header_missing"
    page = await default.get("/me/custom-data")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")

    # The admin tenant's seeds: its roles and resources, none of the default tenant's.
    admin_roles = {role["name"] for role in (await admin.get("/api/roles", headers=DEV_ADMIN)).json()}
    assert {"user", "default:admin"} <= admin_roles and "#internal:admin" not in admin_roles
    default_roles = {role["name"] for role in (await default.get("/api/roles", headers=DEV_ADMIN)).json()}
    assert not {"user", "default:admin"} & default_roles  # (`#internal:` roles are never listed)
    indicators = {r["indicator"] for r in (await admin.get("/api/resources", headers=DEV_ADMIN)).json()}
    assert {ME_API, DEFAULT_API} <= indicators
    # Applications: the console's client is the admin tenant's alone.
    assert (await admin.get("/api/applications/admin-console", headers=DEV_ADMIN)).status_code == 200
    assert (await default.get("/api/applications/admin-console", headers=DEV_ADMIN)).status_code == 404


async def test_users_of_one_tenant_are_invisible_to_the_other(default, admin):
    username = unique("twin")
    console_user = await create_user(admin, username)
    # Usernames are unique per tenant: the default tenant may have its own user of that name.
    user = await create_user(default, username)
    assert console_user["id"] != user["id"]

    for api, mine, theirs in ((admin, console_user, user), (default, user, console_user)):
        assert (await api.get(f"/api/users/{mine['id']}", headers=DEV_ADMIN)).status_code == 200
        assert (await api.get(f"/api/users/{theirs['id']}", headers=DEV_ADMIN)).status_code == 404
        found = (await api.get("/api/users", params={"search": username}, headers=DEV_ADMIN)).json()
        assert [u["id"] for u in found] == [mine["id"]]
        patched = await api.patch(f"/api/users/{theirs['id']}", headers=DEV_ADMIN, json={"name": "not yours"})
        assert patched.status_code == 404
        deleted = await api.delete(f"/api/users/{theirs['id']}", headers=DEV_ADMIN)
        assert deleted.status_code == 404
    # Nothing the other tenant did reached them.
    assert (await admin.get(f"/api/users/{console_user['id']}", headers=DEV_ADMIN)).json()["name"] is None


async def test_the_console_user_signs_in_and_uses_the_me_api(stack, default, admin, console):
    username = unique("console")
    user = await create_user(admin, username)
    await give_roles(admin, user["id"], {"user", "default:admin"})

    tokens = await console.sign_in(username, PASSWORD)
    me_token = tokens["access_token"]
    claims = claims_of(me_token)
    assert claims["iss"] == f"{stack.admin_url}/oidc" and claims["aud"] == ME_API
    assert claims["sub"] == user["id"] and "all" in claims["scope"].split()

    assert (await admin.get("/me/custom-data", headers=bearer(me_token))).json() == {}
    patched = await admin.patch("/me/custom-data", headers=bearer(me_token), json={"foo": "bar"})
    assert patched.status_code == 200 and patched.json() == {"foo": "bar"}
    merged = await admin.patch("/me/custom-data", headers=bearer(me_token), json={"n": 1})
    assert merged.json() == {"foo": "bar", "n": 1}
    assert (await admin.get("/me", headers=bearer(me_token))).json()["id"] == user["id"]
    stored = await admin.get(f"/api/users/{user['id']}/custom-data", headers=DEV_ADMIN)
    assert stored.json() == {"foo": "bar", "n": 1}

    # A token for another resource is no Me API token (Logto: 401).
    default_api_token = await console.access_token(tokens["refresh_token"], DEFAULT_API)
    assert claims_of(default_api_token)["aud"] == DEFAULT_API
    assert (await admin.get("/me/custom-data", headers=bearer(default_api_token))).status_code == 401
    # The Me API token is not a Management API token of either tenant.
    assert (await admin.get("/api/users", headers=bearer(me_token))).status_code == 401
    assert (await default.get("/api/users", headers=bearer(me_token))).status_code == 401
    # The admin tenant's token for the default tenant's API indicator is not believed by the default
    # tenant's listener (another issuer, other keys).
    assert (await default.get("/api/users", headers=bearer(default_api_token))).status_code == 401
    # The admin tenant's refresh token means nothing to the default tenant's provider.
    refreshed = await default.post("/oidc/token", data={
        "grant_type": "refresh_token", "refresh_token": tokens["refresh_token"], "client_id": "admin-console"})
    assert refreshed.status_code in (400, 401) and refreshed.json()["error"] in ("invalid_client", "invalid_grant")


async def test_no_credential_of_the_default_tenant_works_on_the_admin_tenant(stack, default, admin):
    client = stack.admin_client
    token = None
    for _ in range(200):
        response = await default.post("/oidc/token", data={
            "grant_type": "client_credentials", "resource": DEFAULT_API, "scope": "all"}, auth=(client.id, client.secret))
        assert response.status_code == 200, response.text
        if "all" in response.json().get("scope", "").split():
            token = response.json()["access_token"]
            break
    assert token is not None, "the admin client never got `all`"
    assert (await default.get("/api/users", headers=bearer(token))).status_code == 200
    assert (await admin.get("/api/users", headers=bearer(token))).status_code == 401
    assert (await admin.get("/me/custom-data", headers=bearer(token))).status_code == 401
    # The default tenant's machine client is no client of the admin tenant.
    elsewhere = await admin.post("/oidc/token", data={
        "grant_type": "client_credentials", "resource": DEFAULT_API, "scope": "all"}, auth=(client.id, client.secret))
    assert elsewhere.status_code == 401 and elsewhere.json()["error"] == "invalid_client"

    # A default-tenant user cannot sign in to the console, and an interaction started on one
    # listener is unknown to the other.
    username = unique("outsider")
    await create_user(default, username)
    browser = Console(stack.admin_url)
    try:
        query = {"client_id": "admin-console", "redirect_uri": browser.redirect_uri, "response_type": "code",
                 "scope": "openid", "code_challenge": "x" * 43, "code_challenge_method": "S256"}
        assert (await browser.client.get("/oidc/auth?" + urlencode(query))).status_code == 303
        put = await browser.client.put("/api/interaction", json={
            "event": "SignIn", "identifier": {"username": username, "password": PASSWORD}})
        assert put.status_code in (400, 422) and put.json()["code"] in ("user.user_not_exist", "session.invalid_credentials")
        cookies = "; ".join(f"{name}={value}" for name, value in browser.client.cookies.items())
        other = await default.put("/api/interaction", headers={"cookie": cookies, "origin": stack.url}, json={
            "event": "SignIn", "identifier": {"username": username, "password": PASSWORD}})
        assert other.status_code == 400 and other.json()["code"] == "session.not_found"
    finally:
        await browser.aclose()

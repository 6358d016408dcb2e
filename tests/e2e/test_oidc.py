"""The OpenID Provider end to end: every service its own process, the gateway in front.

A relying party (Authlib's OAuth 2.0 client) goes through the gateway's public port:
discovery, authorization code + PKCE through a real interaction, tokens verified against the
gateway's `/oidc/jwks`, userinfo, refresh rotation, revocation, logout. Until the experience
service serves the sign-in pages, the test finishes the interaction over the rpc experience
will use (`complete_interaction`). Client credentials tokens are used on the Management API.
"""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import warnings

import httpx
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from tessera_identity.oidc.testing import complete_interaction, query_of
from tessera_kit.bus import Bus

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import AsyncOAuth2Client
    from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError

pytestmark = [pytest.mark.e2e, pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")]

MANAGEMENT_API = "https://default.logto.app/api"
REDIRECT = "https://rp-e2e.example/callback"
LOGOUT = "https://rp-e2e.example/"
needs_rbac = pytest.mark.skipif(importlib.util.find_spec("tessera_rbac.main") is None,
                                reason="rbac (tessera_rbac.main) is not installed: tokens for resources need it")


@pytest.fixture
async def api(stack):
    async with httpx.AsyncClient(base_url=stack.url, timeout=15) as client:
        yield client


@pytest.fixture
async def bus(stack):
    connected = await Bus.connect(stack.env["NATS_URL"], namespace=stack.env["TESSERA_NAMESPACE"])
    yield connected
    await connected.close()


async def admin_token(api, stack, scope: str = "all") -> str:
    """The seeded admin client's Management API token; rbac links it in the background, so
    wait for the link (bounded)."""
    admin = stack.admin_client
    for _ in range(200):
        response = await api.post("/oidc/token", data={"grant_type": "client_credentials", "resource": MANAGEMENT_API,
                                                       "scope": scope}, auth=(admin.id, admin.secret))
        assert response.status_code == 200, response.text
        if scope in response.json()["scope"].split():
            return response.json()["access_token"]
        await asyncio.sleep(0.05)
    raise AssertionError("the admin client never got the `all` scope (rbac link missing)")


async def keyset(api) -> KeySet:
    return KeySet.import_key_set((await api.get("/oidc/jwks")).json())


async def test_discovery_and_jwks_through_the_gateway(api, stack):
    meta = (await api.get("/oidc/.well-known/openid-configuration")).json()
    assert meta["issuer"] == stack.url + "/oidc"
    assert meta["token_endpoint"] == stack.url + "/oidc/token"
    keys = (await api.get("/oidc/jwks")).json()["keys"]
    assert keys and all("d" not in key for key in keys)


@needs_rbac
async def test_management_api_token_works_at_the_gateway_and_without_all_is_forbidden(api, stack):
    token = await admin_token(api, stack)
    claims = jwt.decode(token, await keyset(api), algorithms=["ES384"]).claims
    JWTClaimsRegistry(iss={"essential": True, "value": stack.url + "/oidc"},
                      aud={"essential": True, "value": MANAGEMENT_API}).validate(claims)
    assert claims["sub"] == stack.admin_client.id == claims["client_id"]
    bearer = {"authorization": f"Bearer {token}"}
    response = await api.get("/api/resources", headers=bearer)
    assert response.status_code == 200, response.text

    # A machine-to-machine app without the admin role gets a token without `all`: 403.
    created = await api.post("/api/applications", json={"name": "no-admin", "type": "MachineToMachine"},
                             headers=bearer)
    assert created.status_code == 200, created.text
    app = created.json()
    response = await api.post("/oidc/token", data={"grant_type": "client_credentials", "resource": MANAGEMENT_API,
                                                   "scope": "all"}, auth=(app["id"], app["secret"]))
    assert response.status_code == 200 and "scope" not in response.json()  # none granted: left out
    forbidden = await api.get("/api/resources", headers={"authorization": f"Bearer {response.json()['access_token']}"})
    assert forbidden.status_code == 403 and forbidden.json()["code"] == "auth.forbidden"

    # Made admin through the Management API, it gets `all` on its next token.
    response = await api.patch(f"/api/applications/{app['id']}", json={"isAdmin": True}, headers=bearer)
    assert response.status_code == 200, response.text
    response = await api.post("/oidc/token", data={"grant_type": "client_credentials", "resource": MANAGEMENT_API,
                                                   "scope": "all"}, auth=(app["id"], app["secret"]))
    assert response.json()["scope"] == "all"
    allowed = await api.get("/api/resources", headers={"authorization": f"Bearer {response.json()['access_token']}"})
    assert allowed.status_code == 200


@needs_rbac
async def test_user_flow_through_the_gateway_with_role_scopes(api, stack, bus):
    bearer = {"authorization": f"Bearer {await admin_token(api, stack)}"}
    suffix = secrets.token_hex(4)
    # An API with two scopes, a role holding one of them, and a user with that role.
    indicator = f"https://orders-{suffix}.example"

    async def created(path: str, body: dict) -> dict:
        response = await api.post(path, json=body, headers=bearer)
        assert response.status_code in (200, 201), response.text
        return response.json()

    resource = await created("/api/resources", {"name": "Orders", "indicator": indicator, "accessTokenTtl": 1800})
    read = await created(f"/api/resources/{resource['id']}/scopes", {"name": "orders:read", "description": "read"})
    await created(f"/api/resources/{resource['id']}/scopes", {"name": "orders:write", "description": "write"})
    role = await created("/api/roles", {"name": f"reader-{suffix}", "description": "reads", "scopeIds": [read["id"]]})
    user = await api.post("/api/users", json={"username": f"e2e_{suffix}", "name": "E2E", "password": "Passw0rd!x"},
                          headers=bearer)
    assert user.status_code == 200, user.text
    user_id = user.json()["id"]
    for _ in range(100):  # rbac learns users from identity's events
        assigned = await api.post(f"/api/users/{user_id}/roles", json={"roleIds": [role["id"]]}, headers=bearer)
        if assigned.status_code == 201:
            break
        await asyncio.sleep(0.05)
    assert assigned.status_code == 201, assigned.text
    spa = (await api.post("/api/applications", json={
        "name": "e2e spa", "type": "SPA",
        "oidcClientMetadata": {"redirectUris": [REDIRECT], "postLogoutRedirectUris": [LOGOUT]}}, headers=bearer)).json()

    meta = (await api.get("/oidc/.well-known/openid-configuration")).json()
    async with AsyncOAuth2Client(client_id=spa["id"], token_endpoint_auth_method="none",
                                 revocation_endpoint_auth_method="none", code_challenge_method="S256",
                                 timeout=15) as rp, httpx.AsyncClient(base_url=stack.url, timeout=15) as browser:
        verifier, nonce = secrets.token_urlsafe(48), secrets.token_urlsafe(8)
        url, state = rp.create_authorization_url(
            meta["authorization_endpoint"], code_verifier=verifier, redirect_uri=REDIRECT, nonce=nonce,
            scope="openid offline_access profile orders:read orders:write", resource=indicator, prompt="consent")
        final = await complete_interaction(browser, bus, url, user_id, tenant_id="default")
        assert final.status_code == 303, final.text
        callback = query_of(final.headers["location"])
        assert callback["state"] == state and callback["iss"] == meta["issuer"]
        token = await rp.fetch_token(meta["token_endpoint"], code=callback["code"], code_verifier=verifier,
                                     redirect_uri=REDIRECT, resource=indicator)

        keys = await keyset(api)
        access = jwt.decode(token["access_token"], keys, algorithms=["ES384"])
        assert access.header["typ"] == "at+jwt"
        JWTClaimsRegistry(iss={"essential": True, "value": meta["issuer"]}, aud={"essential": True, "value": indicator},
                          sub={"essential": True, "value": user_id}).validate(access.claims)
        assert access.claims["scope"] == "orders:read"  # orders:write: no role holds it
        assert access.claims["exp"] - access.claims["iat"] == 1800
        id_token = jwt.decode(token["id_token"], keys, algorithms=["ES384"]).claims
        assert id_token["sub"] == user_id and id_token["aud"] == spa["id"] and id_token["nonce"] == nonce
        assert id_token["username"] == f"e2e_{suffix}"

        # userinfo takes the opaque token of a refresh without resource.
        plain = await rp.refresh_token(meta["token_endpoint"], refresh_token=token["refresh_token"])
        info = (await rp.get(meta["userinfo_endpoint"])).json()
        assert info["sub"] == user_id and info["name"] == "E2E"

        # Rotation, concurrency within the reuse interval, then revocation.
        a, b = await asyncio.gather(
            rp.refresh_token(meta["token_endpoint"], refresh_token=plain["refresh_token"]),
            rp.refresh_token(meta["token_endpoint"], refresh_token=plain["refresh_token"]))
        # A reuse within the interval gets the same successor: the family stays one chain.
        assert a["refresh_token"] == b["refresh_token"] != plain["refresh_token"]
        await rp.revoke_token(meta["revocation_endpoint"], token=a["refresh_token"], token_type_hint="refresh_token")
        with pytest.raises(AuthlibOAuthError):
            await rp.refresh_token(meta["token_endpoint"], refresh_token=a["refresh_token"])

        # Logout.
        page = await browser.get("/oidc/session/end", params={"id_token_hint": token["id_token"],
                                                              "post_logout_redirect_uri": LOGOUT, "state": "x"})
        xsrf = page.text.split('name="xsrf" value="')[1].split('"')[0]
        done = await browser.post("/oidc/session/end/confirm", data={"xsrf": xsrf, "logout": "yes"})
        assert done.status_code == 303 and done.headers["location"] == LOGOUT + "?state=x"

        # Suspension through the Management API revokes the user's refresh tokens at once.
        suspended = await api.patch(f"/api/users/{user_id}/is-suspended", json={"isSuspended": True}, headers=bearer)
        assert suspended.status_code == 200, suspended.text
        with pytest.raises(AuthlibOAuthError) as error:
            await rp.refresh_token(meta["token_endpoint"], refresh_token=b["refresh_token"])
        assert error.value.error == "invalid_grant"

"""The OpenID Provider in process, on real PostgreSQL and NATS, driven by Authlib's OAuth 2.0
client as a relying party. rbac is the in-memory FakeRbac answering rbac's fixed contracts;
the sign-in experience is stood in for by its rpc (`complete_interaction`)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import itertools
import os
import re
import secrets
import warnings
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import msgspec
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from tessera_identity.oidc import clients as clients_module
from tessera_identity.oidc.testing import (
    ADMIN_ID,
    ADMIN_SECRET,
    ENDPOINT,
    ISSUER,
    Deployment,
    complete_interaction,
    query_of,
    start_deployment,
)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from authlib.integrations.httpx_client import OAuthError as AuthlibOAuthError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

_count = itertools.count()


@pytest.fixture(scope="module")
async def deployment(database_url, nats_url, namespace):
    async with start_deployment(database_url, nats_url, namespace) as dep:
        yield dep


async def keyset(dep: Deployment) -> KeySet:
    async with dep.browser() as http:
        return KeySet.import_key_set((await http.get("/oidc/jwks")).json())


async def verify(dep: Deployment, token: str, **claims) -> tuple[dict, dict]:
    """Signature against /oidc/jwks, then the registered claims (joserfc)."""
    decoded = jwt.decode(token, await keyset(dep), algorithms=["ES384"])
    JWTClaimsRegistry(iss={"essential": True, "value": ISSUER},
                      **{k: {"essential": True, "value": v} for k, v in claims.items()}).validate(decoded.claims)
    return decoded.header, decoded.claims


def at_hash(access_token: str) -> str:
    digest = hashlib.sha384(access_token.encode()).digest()
    return base64.urlsafe_b64encode(digest[:24]).rstrip(b"=").decode()


async def discover(dep: Deployment) -> dict:
    async with dep.browser() as http:
        return (await http.get("/oidc/.well-known/openid-configuration")).json()


async def sign_in(dep: Deployment, rp: AsyncOAuth2Client, user_id: str, *, redirect_uri: str,
                  scope: str = "openid offline_access profile email phone custom_data identities",
                  prompt: str = "consent", browser: httpx.AsyncClient | None = None, **extra) -> tuple[dict, str]:
    """Discovery -> authorization (PKCE S256) -> interaction -> code -> tokens, as an RP does."""
    meta = await discover(dep)
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(12)
    url, state = rp.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, redirect_uri=redirect_uri, scope=scope,
        nonce=nonce, prompt=prompt, **extra)
    own_browser = browser is None
    browser = browser or dep.browser()
    try:
        final = await complete_interaction(browser, dep.ctx.bus, url, user_id, tenant_id="default")
    finally:
        if own_browser:
            await browser.aclose()
    assert final.status_code == 303, final.text
    location = final.headers["location"]
    assert location.startswith(redirect_uri)
    params = query_of(location)
    assert params["state"] == state and params["iss"] == ISSUER
    token = await rp.fetch_token(meta["token_endpoint"], code=params["code"], code_verifier=verifier,
                                 redirect_uri=redirect_uri, **({"resource": extra["resource"]} if "resource" in extra else {}))
    return token, nonce


# ------------------------------------------------------------------ discovery and keys


async def test_discovery_is_complete_and_advertises_only_what_works(deployment):
    meta = await discover(deployment)
    assert meta["issuer"] == ISSUER
    for name, path in [("authorization_endpoint", "/auth"), ("token_endpoint", "/token"),
                       ("userinfo_endpoint", "/me"), ("jwks_uri", "/jwks"), ("end_session_endpoint", "/session/end"),
                       ("revocation_endpoint", "/token/revocation"), ("introspection_endpoint", "/token/introspection")]:
        assert meta[name] == ISSUER + path
    assert meta["response_types_supported"] == ["code"]
    assert meta["code_challenge_methods_supported"] == ["S256"]
    assert meta["id_token_signing_alg_values_supported"] == ["ES384"]
    assert set(meta["grant_types_supported"]) == {"authorization_code", "refresh_token", "client_credentials"}
    assert set(meta["scopes_supported"]) >= {"openid", "offline_access", "profile", "email", "phone",
                                             "custom_data", "identities"}
    assert meta["request_parameter_supported"] is False and meta["claims_parameter_supported"] is False
    async with deployment.browser() as http:
        response = await http.get("/oidc/.well-known/openid-configuration", headers={"origin": "https://any.example"})
        assert response.headers["access-control-allow-origin"] == "*"
        # Every advertised endpoint answers (not 404).
        for name in ("authorization_endpoint", "userinfo_endpoint", "jwks_uri", "end_session_endpoint"):
            assert (await http.get(meta[name].removeprefix(ENDPOINT))).status_code != 404


async def test_jwks_publishes_a_p384_public_key_encrypted_at_rest(deployment):
    async with deployment.browser() as http:
        keys = (await http.get("/oidc/jwks")).json()["keys"]
    assert len(keys) == 1
    key = keys[0]
    assert key["kty"] == "EC" and key["crv"] == "P-384" and key["alg"] == "ES384" and key["use"] == "sig"
    assert "d" not in key
    row = await deployment.ctx.pool.fetchrow("SELECT private_key_encrypted, kek_id FROM oidc_signing_keys WHERE kid = $1", key["kid"])
    assert b"PRIVATE KEY" not in row["private_key_encrypted"]
    assert row["kek_id"] == deployment.provider.keys.encryption.kek_id


# ------------------------------------------------------------------ the user flow, end to end


SPA_REDIRECT = "https://spa.example/callback"
SPA_LOGOUT = "https://spa.example/"


async def spa_and_user(dep: Deployment):
    app = await dep.application("SPA", redirect_uris=[SPA_REDIRECT], post_logout_redirect_uris=[SPA_LOGOUT])
    user_id = await dep.user(username=f"alice{next(_count)}", name="Alice", primary_email=f"alice{next(_count)}@example.com",
                             avatar="https://img.example/a.png", custom_data={"plan": "pro"},
                             identities={"github": {"userId": "gh-1"}})
    return app, user_id


@contextlib.contextmanager
def no_refresh_reuse_interval(dep: Deployment):
    """Every reuse of a rotated refresh token is a replay (the interval is 3 s otherwise)."""
    saved = dep.provider.settings
    dep.provider.settings = msgspec.structs.replace(saved, oidc_refresh_reuse_seconds=0)
    try:
        yield
    finally:
        dep.provider.settings = saved


async def _family_of(dep: Deployment, user_id: str) -> str:
    return await dep.ctx.pool.fetchval("SELECT family_id FROM oidc_refresh_tokens WHERE account_id = $1 LIMIT 1",
                                       user_id)


async def test_authorization_code_flow_with_pkce_id_token_userinfo_and_logout(deployment):
    dep = deployment
    app, user_id = await spa_and_user(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp, dep.browser() as browser:
        token, nonce = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT, browser=browser)
        assert token["token_type"].lower() == "bearer" and token["expires_in"] == 3600
        assert set(token["scope"].split()) == {"openid", "offline_access", "profile", "email", "phone",
                                               "custom_data", "identities"}
        assert token["refresh_token"] and token["access_token"].count(".") == 0  # opaque: no resource

        # ID token (OIDC Core §3.1.3.7), verified against /oidc/jwks.
        header, claims = await verify(dep, token["id_token"], aud=app["id"], sub=user_id, nonce=nonce)
        assert header["alg"] == "ES384" and header["kid"]
        assert claims["at_hash"] == at_hash(token["access_token"])
        assert claims["name"] == "Alice" and claims["username"].startswith("alice")
        assert claims["picture"] == "https://img.example/a.png"
        assert claims["email"].endswith("@example.com") and claims["email_verified"] is True
        assert claims["phone_number"] is None and claims["phone_number_verified"] is False
        assert "custom_data" not in claims and "identities" not in claims  # userinfo only
        assert claims["exp"] - claims["iat"] == 3600

        # Userinfo (OIDC Core §5.3) with custom_data and identities.
        response = await rp.get(ISSUER + "/me")
        assert response.status_code == 200
        info = response.json()
        assert info["sub"] == user_id and info["custom_data"] == {"plan": "pro"}
        assert info["identities"] == {"github": {"userId": "gh-1"}} and info["email"] == claims["email"]

        # SSO: the browser's session and grant cover a second request without a prompt.
        url, state = rp.create_authorization_url(ISSUER + "/auth", code_verifier=secrets.token_urlsafe(48),
                                                 redirect_uri=SPA_REDIRECT, scope="openid profile", prompt="none")
        response = await browser.get(url)
        assert response.status_code == 303 and "code" in query_of(response.headers["location"])

        # Logout (RP-Initiated Logout 1.0): confirmation page, then the redirect with state.
        response = await browser.get("/oidc/session/end", params={
            "id_token_hint": token["id_token"], "post_logout_redirect_uri": SPA_LOGOUT, "state": "bye"})
        assert response.status_code == 200 and "session/end/confirm" in response.text
        xsrf = response.text.split('name="xsrf" value="')[1].split('"')[0]
        response = await browser.post("/oidc/session/end/confirm", data={"xsrf": xsrf, "logout": "yes"})
        assert response.status_code == 303 and response.headers["location"] == SPA_LOGOUT + "?state=bye"
        ended = await dep.event_data("identity.session.ended")
        assert any(e["user_id"] == user_id and e["reason"] == "logout" for e in ended)
        # The session is gone: prompt=none now needs a login.
        response = await browser.get(url)
        assert query_of(response.headers["location"])["error"] == "login_required"
        # The offline grant outlives the session (oidc-provider's logout rule): refresh still works.
        refreshed = await rp.refresh_token(ISSUER + "/token", refresh_token=token["refresh_token"])
        assert refreshed["access_token"]

    started = await dep.event_data("identity.session.started")
    assert any(e["user_id"] == user_id and e["application_id"] == app["id"] for e in started)
    issued = [e for e in await dep.event_data("identity.token.issued") if e["user_id"] == user_id]
    assert issued[0]["grant_type"] == "authorization_code"
    assert set(issued[0]["token_types"]) == {"AccessToken", "IdToken", "RefreshToken"}


async def test_refresh_rotation_concurrent_refreshes_and_replay(deployment):
    dep = deployment
    app, user_id = await spa_and_user(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT)
        first = token["refresh_token"]

        # Public clients always rotate.
        rotated = await rp.refresh_token(ISSUER + "/token", refresh_token=first)
        assert rotated["refresh_token"] != first
        _, claims = await verify(dep, rotated["id_token"], aud=app["id"], sub=user_id)
        assert "nonce" not in claims  # OIDC Core §12.2

        # Two concurrent refreshes of one token within the reuse interval both succeed, with
        # the same successor (RFC 9700 §4.14.2: one chain, never a fork).
        second = rotated["refresh_token"]
        a, b = await asyncio.gather(
            rp.refresh_token(ISSUER + "/token", refresh_token=second),
            rp.refresh_token(ISSUER + "/token", refresh_token=second),
        )
        assert a["refresh_token"] == b["refresh_token"] != second
        assert a["access_token"] != b["access_token"]
        family = await _family_of(dep, user_id)
        live = await dep.ctx.pool.fetchval("SELECT count(*) FROM oidc_refresh_tokens WHERE family_id = $1"
                                           " AND consumed_at IS NULL", family)
        assert live == 1

        # Past the interval (0 s here, 3 s by default), the same token is a replay: the family goes.
        with no_refresh_reuse_interval(dep), pytest.raises(AuthlibOAuthError) as error:
            await rp.refresh_token(ISSUER + "/token", refresh_token=second)
        assert error.value.error == "invalid_grant"
        for survivor in (a["refresh_token"], b["refresh_token"]):
            with pytest.raises(AuthlibOAuthError) as error:
                await rp.refresh_token(ISSUER + "/token", refresh_token=survivor)
            assert error.value.error == "invalid_grant"
        # The family's opaque access tokens are revoked too.
        async with dep.browser() as http:
            response = await http.get("/oidc/me", headers={"authorization": f"Bearer {a['access_token']}"})
        assert response.status_code == 401
        assert any(e["reason"] == "refresh_token_replayed" for e in await dep.event_data("identity.token.revoked"))


async def test_revocation_of_a_refresh_token_revokes_its_access_tokens(deployment):
    dep = deployment
    app, user_id = await spa_and_user(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT)
        response = await rp.revoke_token(ISSUER + "/token/revocation", token=token["refresh_token"],
                                         token_type_hint="refresh_token")
        assert response.status_code == 200
        assert response.content == b""  # oidc-provider's empty body, not JSON `null`
        with pytest.raises(AuthlibOAuthError) as error:
            await rp.refresh_token(ISSUER + "/token", refresh_token=token["refresh_token"])
        assert error.value.error == "invalid_grant"
        response = await rp.get(ISSUER + "/me")
        assert response.status_code == 401
        assert response.headers["www-authenticate"].startswith("Bearer")
        # Unknown tokens are no error (RFC 7009 §2.2).
        response = await rp.revoke_token(ISSUER + "/token/revocation", token="not-a-token")
        assert response.status_code == 200 and response.content == b""


# ------------------------------------------------------------------ resources and roles


WEB_REDIRECT = "https://web.example/cb"


async def test_code_flow_with_a_resource_gives_an_at_jwt_with_role_filtered_scopes(deployment):
    dep = deployment
    api = f"https://api{next(_count)}.example"
    dep.rbac.add_resource(api, ttl=900)
    app = await dep.application("Traditional", redirect_uris=[WEB_REDIRECT])
    user_id = await dep.user()
    dep.rbac.user_scopes[(user_id, api)] = ["read", "write"]
    async with dep.rp(app["id"], app["secret"], method="client_secret_basic", code_challenge_method="S256") as rp:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=WEB_REDIRECT,
                                 scope="openid offline_access read write delete", resource=api)
        header, claims = await verify(dep, token["access_token"], aud=api, sub=user_id)
        assert header["typ"] == "at+jwt"  # RFC 9068 §2.1
        assert claims["client_id"] == app["id"] and claims["scope"] == "read write"  # delete: no role
        assert claims["exp"] - claims["iat"] == 900 and token["expires_in"] == 900 and claims["jti"]
        assert token["scope"] == "read write"

        # Refresh for the resource; the role lost meanwhile drops the scope.
        dep.rbac.user_scopes[(user_id, api)] = ["read"]
        refreshed = await rp.refresh_token(ISSUER + "/token", refresh_token=token["refresh_token"], resource=api)
        _, claims = await verify(dep, refreshed["access_token"], aud=api, sub=user_id)
        assert claims["scope"] == "read"
        # Confidential clients do not rotate before 70 % of the lifetime: the same token comes back.
        assert refreshed["refresh_token"] == token["refresh_token"]
        # Without resource: an opaque token for userinfo.
        plain = await rp.refresh_token(ISSUER + "/token", refresh_token=token["refresh_token"])
        assert plain["access_token"].count(".") == 0 and "openid" in plain["scope"]
        # A JWT access token is for its API, not for userinfo.
        async with dep.browser() as http:
            response = await http.get("/oidc/me", headers={"authorization": f"Bearer {refreshed['access_token']}"})
        assert response.status_code == 401 and response.json()["error"] == "invalid_token"


async def test_default_resource_applies_without_a_resource_parameter(deployment):
    dep = deployment
    api = f"https://default{next(_count)}.example"
    dep.rbac.add_resource(api, ttl=1200)
    await dep.rbac.set_default_announced(dep.ctx.bus, dep.provider, api)
    try:
        m2m = await dep.application("MachineToMachine")
        dep.rbac.application_scopes[(m2m["id"], api)] = ["jobs:run"]
        async with dep.rp(m2m["id"], m2m["secret"], method="client_secret_basic") as rp:
            token = await rp.fetch_token(ISSUER + "/token", grant_type="client_credentials", scope="jobs:run other")
        _, claims = await verify(dep, token["access_token"], aud=api, sub=m2m["id"])
        assert claims["scope"] == "jobs:run" and token["expires_in"] == 1200
    finally:
        await dep.rbac.set_default_announced(dep.ctx.bus, dep.provider, None)


async def test_the_default_resource_is_reused_until_rbac_announces_a_change(deployment):
    """One rbac call for the default resource across tokens; a change rbac announces is seen
    at the next token."""
    dep = deployment
    api = f"https://reused{next(_count)}.example"
    dep.rbac.add_resource(api, ttl=900)
    m2m = await dep.application("MachineToMachine")
    dep.rbac.application_scopes[(m2m["id"], api)] = ["x"]

    async def token() -> dict:
        async with dep.browser() as http:
            response = await http.post("/oidc/token", data={"grant_type": "client_credentials", "scope": "x"},
                                       auth=(m2m["id"], m2m["secret"]))
        assert response.status_code == 200, response.text
        return response.json()

    await dep.rbac.set_default_announced(dep.ctx.bus, dep.provider, api)
    try:
        calls = len(dep.rbac.calls)
        assert (await token())["expires_in"] == 900 and (await token())["expires_in"] == 900
        assert dep.rbac.calls[calls:].count("default_resource") == 1  # the second token reused it
        dep.rbac.set_default(None)  # not announced (yet): the answer is still reused
        assert (await token())["expires_in"] == 900
        await dep.rbac.set_default_announced(dep.ctx.bus, dep.provider, None)
        assert (await token())["expires_in"] != 900  # no default resource any more: not a token for it
    finally:
        await dep.rbac.set_default_announced(dep.ctx.bus, dep.provider, None)


async def test_client_credentials_with_and_without_a_resource(deployment):
    dep = deployment
    api = f"https://m2m{next(_count)}.example"
    dep.rbac.add_resource(api, ttl=600)
    m2m = await dep.application("MachineToMachine")
    dep.rbac.application_scopes[(m2m["id"], api)] = ["a", "b"]
    async with dep.rp(m2m["id"], m2m["secret"], method="client_secret_post") as rp:
        calls = len(dep.rbac.calls)
        token = await rp.fetch_token(ISSUER + "/token", grant_type="client_credentials", scope="a c", resource=api)
        assert dep.rbac.calls[calls:] == ["application_scopes"]  # one rbac call per token
        header, claims = await verify(dep, token["access_token"], aud=api, sub=m2m["id"])
        assert header["typ"] == "at+jwt" and claims["client_id"] == m2m["id"] and claims["scope"] == "a"
        assert "refresh_token" not in token and "id_token" not in token

        # No resource and no default: an opaque token, introspectable and revocable.
        opaque = await rp.fetch_token(ISSUER + "/token", grant_type="client_credentials", scope="a")
        assert opaque["access_token"].count(".") == 0 and opaque["expires_in"] == 600
        response = await rp.post(ISSUER + "/token/introspection", data={"token": opaque["access_token"]},
                                 auth=(m2m["id"], m2m["secret"]))
        body = response.json()
        assert body["active"] is True and body["sub"] == m2m["id"] and body["client_id"] == m2m["id"]
        await rp.revoke_token(ISSUER + "/token/revocation", token=opaque["access_token"])
        response = await rp.post(ISSUER + "/token/introspection", data={"token": opaque["access_token"]},
                                 auth=(m2m["id"], m2m["secret"]))
        assert response.json() == {"active": False}
        # A JWT access token introspects by its signature.
        response = await rp.post(ISSUER + "/token/introspection", data={"token": token["access_token"]},
                                 auth=(m2m["id"], m2m["secret"]))
        assert response.json()["active"] is True and response.json()["aud"] == api

    # JSON bodies are accepted as Logto does (Content-Type exactly application/json).
    async with dep.browser() as http:
        response = await http.post("/oidc/token", json={"grant_type": "client_credentials", "resource": api,
                                                        "scope": "b"}, auth=(m2m["id"], m2m["secret"]))
        assert response.status_code == 200 and response.headers["cache-control"] == "no-store"
        assert response.json()["scope"] == "b"
        # Nothing granted: oidc-provider leaves `scope` out rather than sending "".
        response = await http.post("/oidc/token", data={"grant_type": "client_credentials", "resource": api},
                                   auth=(m2m["id"], m2m["secret"]))
        assert response.status_code == 200 and "scope" not in response.json(), response.text
        # Any other body type is oidc-provider's invalid_request, in its words.
        response = await http.post("/oidc/token", content=b'{"grant_type": "client_credentials"}',
                                   headers={"content-type": "application/json1"}, auth=(m2m["id"], m2m["secret"]))
        assert response.status_code == 400 and response.json() == {
            "error": "invalid_request",
            "error_description": "only application/x-www-form-urlencoded content-type bodies are supported on POST /token",
        }
    issued = [e for e in await dep.event_data("identity.token.issued") if e["application_id"] == m2m["id"]]
    assert len(issued) == 4 and {e["grant_type"] for e in issued} == {"client_credentials"}
    assert sorted((e["resource"] or "", e["scope"]) for e in issued) == [("", "a"), (api, ""), (api, "a"), (api, "b")]


async def test_admin_application_is_seeded_and_linked_to_the_admin_role(deployment):
    dep = deployment
    for _ in range(100):
        if ADMIN_ID in dep.rbac.admins:
            break
        await asyncio.sleep(0.05)
    assert ADMIN_ID in dep.rbac.admins  # SET_APPLICATION_ADMIN was called
    row = await dep.ctx.pool.fetchrow("SELECT type, secret FROM applications WHERE id = $1", ADMIN_ID)
    assert row["type"] == "MachineToMachine" and row["secret"] == ADMIN_SECRET
    async with dep.browser() as http:
        response = await http.post("/oidc/token", data={
            "grant_type": "client_credentials", "resource": "https://default.logto.app/api", "scope": "all"},
            auth=(ADMIN_ID, ADMIN_SECRET))
    assert response.status_code == 200, response.text
    _, claims = await verify(dep, response.json()["access_token"], aud="https://default.logto.app/api", sub=ADMIN_ID)
    assert claims["scope"] == "all"


# ------------------------------------------------------------------ suspension


async def test_a_suspended_users_refresh_token_stops_working(deployment):
    dep = deployment
    app, user_id = await spa_and_user(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT)
        # Even before any revocation runs, a suspended user's refresh is refused.
        await dep.ctx.pool.execute("UPDATE users SET is_suspended = true WHERE id = $1", user_id)
        with pytest.raises(AuthlibOAuthError) as error:
            await rp.refresh_token(ISSUER + "/token", refresh_token=token["refresh_token"])
        assert error.value.error == "invalid_grant"
        assert (await rp.get(ISSUER + "/me")).status_code == 401


async def test_revoke_everything_for_user_ends_sessions_and_tokens_in_the_callers_transaction(deployment):
    from tessera_identity.oidc.revocation import revoke_everything_for_user

    dep = deployment
    app, user_id = await spa_and_user(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT)
        async with dep.ctx.pool.acquire() as conn:
            async with conn.transaction():
                await revoke_everything_for_user(conn, dep.ctx.outbox, "default", user_id)
        for table in ("oidc_sessions", "oidc_grants", "oidc_refresh_tokens", "oidc_access_tokens"):
            column = "account_id"
            assert await dep.ctx.pool.fetchval(f"SELECT count(*) FROM {table} WHERE {column} = $1", user_id) == 0
        with pytest.raises(AuthlibOAuthError):
            await rp.refresh_token(ISSUER + "/token", refresh_token=token["refresh_token"])
    assert any(e["user_id"] == user_id and e["reason"] == "revoked" for e in await dep.event_data("identity.session.ended"))
    assert any(e["user_id"] == user_id and e["reason"] == "user_revoked" for e in await dep.event_data("identity.token.revoked"))


# ------------------------------------------------------------------ keys


async def test_key_rotation_publishes_before_signing_and_keeps_the_old_key(deployment):
    dep = deployment
    ring = dep.provider.keys
    m2m = await dep.application("MachineToMachine")

    async def cc_token() -> str:
        async with dep.browser() as http:
            response = await http.post("/oidc/token", data={"grant_type": "client_credentials",
                                                             "resource": "https://default.logto.app/api"},
                                       auth=(m2m["id"], m2m["secret"]))
        return response.json()["access_token"]

    old_kid = ring.signing.kid
    old_token = await cc_token()
    async with dep.ctx.pool.acquire() as conn:
        new_kid = await ring.stage(conn)
        await ring.promote_due(conn)  # not yet: the propagation time has not passed
        await ring.reload(conn)
    async with dep.browser() as http:
        kids = [k["kid"] for k in (await http.get("/oidc/jwks")).json()["keys"]]
    assert set(kids) == {old_kid, new_kid}  # published before it signs
    assert jwt.decode(await cc_token(), await keyset(dep), algorithms=["ES384"]).header["kid"] == old_kid

    # Once propagated, the new key signs; the old one stays published for its tokens.
    async with dep.ctx.pool.acquire() as conn:
        assert await ring.promote_due(conn, now_offset=ring.propagation_seconds + 1)
        await ring.reload(conn)
    assert jwt.decode(await cc_token(), await keyset(dep), algorithms=["ES384"]).header["kid"] == new_kid
    decoded = jwt.decode(old_token, await keyset(dep), algorithms=["ES384"])
    assert decoded.header["kid"] == old_kid
    status = dict(await dep.ctx.pool.fetch("SELECT kid, status FROM oidc_signing_keys WHERE kid = ANY($1)",
                                           [old_kid, new_kid]))
    assert status == {old_kid: "retired", new_kid: "current"}


async def test_keys_encrypted_with_another_key_encryption_key_are_refused(deployment):
    from tessera_kit.crypto import AtRestEncryption
    from tessera_identity.oidc.keys import KeyDecryptionError, KeyRing

    ring = KeyRing("default", AtRestEncryption("another-key-encryption-key-of-32-chars!!", "tessera oidc signing keys at rest"), alg="ES384",
                   propagation_seconds=600, retired_seconds=60)
    with pytest.raises(KeyDecryptionError, match="another TESSERA_KEY_ENCRYPTION_KEY"):
        async with deployment.ctx.pool.acquire() as conn:
            await ring.reload(conn)


# ------------------------------------------------------------------ browser details


async def test_sign_in_pages_cookie_and_register_mode(deployment):
    dep = deployment
    app, _ = await spa_and_user(dep)
    params = {"client_id": app["id"], "redirect_uri": SPA_REDIRECT, "response_type": "code", "scope": "openid",
              "code_challenge": "a" * 43, "code_challenge_method": "S256", "state": "s"}
    async with dep.browser() as browser:
        response = await browser.get("/oidc/auth", params=params)
        assert response.status_code == 303 and response.headers["location"] == "/sign-in"
        # koa's signed cookie, as Logto's clients read it: the uid itself, and its signature
        # in `_interaction.sig` (base64url HMAC-SHA1 of `_interaction=<uid>`, no padding).
        set_cookies = {h.split("=", 1)[0]: h.lower() for h in response.headers.get_list("set-cookie")}
        for name in ("_interaction", "_interaction.sig"):
            assert "path=/" in set_cookies[name] and "httponly" in set_cookies[name]
            assert "samesite=lax" in set_cookies[name] and "max-age=3600" in set_cookies[name]
        uid, signature = browser.cookies.get("_interaction"), browser.cookies.get("_interaction.sig")
        assert "." not in uid and re.fullmatch(r"[A-Za-z0-9_-]{27}", signature)
        assert dep.provider.cookies.signature("_interaction", uid) == signature
        response = await browser.get("/oidc/auth", params={**params, "interaction_mode": "signUp"})
        assert response.headers["location"] == "/register"
        # Later Logto SDKs say `first_screen` instead.
        response = await browser.get("/oidc/auth", params={**params, "first_screen": "register"})
        assert response.headers["location"] == "/register"
        response = await browser.get("/oidc/auth", params={**params, "first_screen": "sign_in"})
        assert response.headers["location"] == "/sign-in"
        # POST works as GET (OIDC Core §3.1.2.1).
        response = await browser.post("/oidc/auth", data=params)
        assert response.status_code == 303 and response.headers["location"] == "/sign-in"
        # A forged or foreign interaction cookie cannot resume anything.
        browser.cookies.set("_interaction", "forged.value", domain="id.test")
        response = await browser.get("/oidc/auth/forged")
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        # Nor can the real uid under another uid's signature.
        response = await browser.get("/oidc/auth", params=params)
        first_uid = browser.cookies.get("_interaction")
        response = await browser.get("/oidc/auth", params=params)
        second_signature = browser.cookies.get("_interaction.sig")
        browser.cookies.set("_interaction", first_uid, domain="id.test")
        browser.cookies.set("_interaction.sig", second_signature, domain="id.test")
        response = await browser.get(f"/oidc/auth/{first_uid}")
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"


async def test_the_session_cookie_is_a_koa_signed_pair(deployment):
    """`_session=<id>` and `_session.sig=<signature>` after sign-in (Logto's test client looks
    for `_session.sig`); without the right signature there is no session."""
    dep = deployment
    app, user_id = await spa_and_user(dep)
    params = {"client_id": app["id"], "redirect_uri": SPA_REDIRECT, "response_type": "code", "scope": "openid",
              "code_challenge": "a" * 43, "code_challenge_method": "S256", "state": "s"}
    async with dep.browser() as browser:
        final = await complete_interaction(browser, dep.ctx.bus, "/oidc/auth?" + urlencode(params), user_id, tenant_id="default")
        assert final.status_code == 303 and "code=" in final.headers["location"]
        session_id, signature = browser.cookies.get("_session"), browser.cookies.get("_session.sig")
        assert session_id and "." not in session_id
        assert dep.provider.cookies.signature("_session", session_id) == signature
        # The signed-in browser gets a code straight away ...
        response = await browser.get("/oidc/auth", params=params)
        assert response.status_code == 303 and "code=" in response.headers["location"]
        # ... but not with the `_interaction` signature of the same value, nor with none.
        browser.cookies.set("_session.sig", dep.provider.cookies.signature("_interaction", session_id), domain="id.test")
        response = await browser.get("/oidc/auth", params=params)
        assert response.headers["location"] == "/sign-in"
        browser.cookies.delete("_session.sig")
        response = await browser.get("/oidc/auth", params=params)
        assert response.headers["location"] == "/sign-in"


async def test_form_post_response_mode(deployment):
    dep = deployment
    app, user_id = await spa_and_user(dep)
    verifier = secrets.token_urlsafe(48)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp, dep.browser() as browser:
        url, state = rp.create_authorization_url(ISSUER + "/auth", code_verifier=verifier, redirect_uri=SPA_REDIRECT,
                                                 scope="openid", response_mode="form_post")
        response = await complete_interaction(browser, dep.ctx.bus, url, user_id, tenant_id="default")
        assert response.status_code == 200 and f'action="{SPA_REDIRECT}"' in response.text
        code = response.text.split('name="code" value="')[1].split('"')[0]
        assert f'name="state" value="{state}"' in response.text
        token = await rp.fetch_token(ISSUER + "/token", code=code, code_verifier=verifier, redirect_uri=SPA_REDIRECT)
        assert "refresh_token" not in token  # no offline_access


async def test_cors_follows_the_clients_origins(deployment):
    dep = deployment
    app = await dep.application("SPA", redirect_uris=["https://spa-cors.example/cb"],
                                custom={"corsAllowedOrigins": ["https://extra.example"]})
    async with dep.browser() as http:
        preflight = await http.options("/oidc/token", headers={
            "origin": "https://spa-cors.example", "access-control-request-method": "POST",
            "access-control-request-headers": "content-type"})
        assert preflight.status_code == 204
        assert preflight.headers["access-control-allow-origin"] == "https://spa-cors.example"
        for origin, allowed in [("https://spa-cors.example", True), ("https://extra.example", True),
                                ("https://evil.example", False)]:
            response = await http.post("/oidc/token", data={"grant_type": "refresh_token", "refresh_token": "x",
                                                             "client_id": app["id"]}, headers={"origin": origin})
            if allowed:
                assert response.headers["access-control-allow-origin"] == origin
                assert response.json()["error"] == "invalid_grant"
            else:
                assert "access-control-allow-origin" not in response.headers
                assert response.json()["error"] == "invalid_request"


async def test_application_scopes_are_reused_but_never_late_to_grant(deployment):
    dep = deployment
    api = f"https://cache{next(_count)}.example"
    dep.rbac.add_resource(api)
    m2m = await dep.application("MachineToMachine")
    dep.rbac.application_scopes[(m2m["id"], api)] = ["a"]

    async def token(scope: str) -> str:
        async with dep.browser() as http:
            response = await http.post("/oidc/token", data={"grant_type": "client_credentials", "resource": api,
                                                             "scope": scope}, auth=(m2m["id"], m2m["secret"]))
        return response.json()["scope"]

    calls = len(dep.rbac.calls)
    assert await token("a") == "a" and await token("a") == "a"
    assert dep.rbac.calls[calls:] == ["application_scopes"]  # the second token reused the answer
    # A scope just granted is seen at once: a cached answer lacking it is not trusted.
    dep.rbac.application_scopes[(m2m["id"], api)] = ["a", "b"]
    assert await token("a b") == "a b"
    # A scope taken away is seen as soon as rbac announces a change.
    dep.rbac.application_scopes[(m2m["id"], api)] = ["b"]
    await dep.ctx.bus.nc.publish(dep.ctx.bus.subject("rbac.role.scopes_unassigned"), b"{}")
    await dep.ctx.bus.nc.flush()
    for _ in range(100):
        if not dep.provider._application_scopes:
            break
        await asyncio.sleep(0.01)
    assert await token("a b") == "b"


async def test_concurrent_misses_share_one_question_to_rbac_and_one_client_read(deployment):
    """An answer expiring under load is one rbac call (and one read of the client), not one
    per request in flight."""
    dep = deployment
    api = f"https://herd{next(_count)}.example"
    dep.rbac.add_resource(api)
    m2m = await dep.application("MachineToMachine")
    dep.rbac.application_scopes[(m2m["id"], api)] = ["a"]
    dep.provider.forget_application_scopes()
    dep.provider.clients.evict()
    reads = []
    original = clients_module.store.find_application

    async def counted(executor, tenant_id, client_id, **kwargs):
        reads.append(client_id)
        return await original(executor, tenant_id, client_id, **kwargs)

    calls = len(dep.rbac.calls)
    clients_module.store.find_application = counted
    try:
        async with dep.browser() as http:
            answers = await asyncio.gather(*(
                http.post("/oidc/token", data={"grant_type": "client_credentials", "resource": api, "scope": "a"},
                          auth=(m2m["id"], m2m["secret"])) for _ in range(20)))
    finally:
        clients_module.store.find_application = original
    assert [a.json()["scope"] for a in answers] == ["a"] * 20
    assert dep.rbac.calls[calls:] == ["application_scopes"]
    assert reads == [m2m["id"]]


async def test_an_answer_asked_before_an_eviction_is_not_kept(deployment):
    """A read of a client (or a question to rbac) under way when its event arrives answers its
    callers, but is not cached: it may predate the change the event announces."""
    dep = deployment
    api = f"https://race{next(_count)}.example"
    dep.rbac.add_resource(api)
    m2m = await dep.application("MachineToMachine")
    dep.rbac.application_scopes[(m2m["id"], api)] = ["a"]
    dep.provider.clients.evict()
    reading = asyncio.ensure_future(dep.provider.clients.get(m2m["id"]))
    await asyncio.sleep(0)  # the read is under way
    dep.provider.clients.evict(m2m["id"])  # identity.application.updated arrives meanwhile
    assert (await reading).id == m2m["id"]
    assert m2m["id"] not in dep.provider.clients._cache

    dep.provider.forget_application_scopes()
    asking = asyncio.ensure_future(dep.provider.application_scopes(m2m["id"], api))
    await asyncio.sleep(0)
    dep.provider.forget_application_scopes()  # an rbac event arrives meanwhile
    assert (await asking).scopes == ["a"]
    assert (m2m["id"], api) not in dep.provider._application_scopes


async def test_a_caller_inside_a_transaction_reads_a_missed_client_on_its_own_connection(deployment):
    """A caller holding a pooled connection in a transaction (resume) passes it: a cache miss
    is read there, never on a second connection from the pool (the pool could run dry with
    every holder waiting for one more)."""
    dep = deployment
    m2m = await dep.application("MachineToMachine")
    dep.provider.clients.evict()
    used: list[object] = []
    original = clients_module.store.find_application

    async def recording(executor, *args):
        used.append(executor)
        return await original(executor, *args)

    clients_module.store.find_application = recording
    try:
        async with dep.provider.pool.acquire() as conn, conn.transaction():
            assert (await dep.provider.clients.get(m2m["id"], conn=conn)).id == m2m["id"]
    finally:
        clients_module.store.find_application = original
    assert used == [conn]


# ------------------------------------------------------------------ a new password ends old sessions


@pytest.fixture(scope="module")
async def whole_identity(database_url, nats_url, namespace):
    async with start_deployment(database_url, nats_url, namespace + "w", whole_service=True) as dep:
        yield dep


async def _signed_in_with_everything(dep: Deployment, app: dict, user_id: str, browser: httpx.AsyncClient):
    async with dep.rp(app["id"], code_challenge_method="S256") as rp:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT, browser=browser)
    assert token["refresh_token"] and token["access_token"].count(".") == 0  # opaque
    return token


async def _old_credentials_are_dead(dep: Deployment, app: dict, token: dict, browser: httpx.AsyncClient) -> None:
    async with dep.rp(app["id"], code_challenge_method="S256") as rp:
        with pytest.raises(AuthlibOAuthError) as error:
            await rp.refresh_token(ISSUER + "/token", refresh_token=token["refresh_token"])
        assert error.value.error == "invalid_grant"
        url, _ = rp.create_authorization_url(ISSUER + "/auth", code_verifier=secrets.token_urlsafe(48),
                                             redirect_uri=SPA_REDIRECT, scope="openid profile", prompt="none")
    response = await browser.get("/oidc/me", headers={"authorization": f"Bearer {token['access_token']}"})
    assert response.status_code == 401
    response = await browser.get(url)
    assert response.status_code == 303
    assert query_of(response.headers["location"])["error"] == "login_required"


async def test_a_password_change_revokes_sessions_grants_and_tokens(whole_identity):
    from tessera_events.contracts.identity import HASH_PASSWORD, UPDATE_USER, HashPasswordRequest, UpdateUserRequest
    from tessera_kit import rpc

    dep = whole_identity
    app = await dep.application("SPA", redirect_uris=[SPA_REDIRECT], post_logout_redirect_uris=[SPA_LOGOUT])
    for change in ("management API", "forgot-password rpc", "hashed by HASH_PASSWORD"):
        async with dep.browser() as browser:
            created = await browser.post("/api/users", json={
                "username": f"pw{secrets.token_hex(4)}", "password": "old-pass-123"})
            assert created.status_code == 200, created.text
            user_id = created.json()["id"]
            token = await _signed_in_with_everything(dep, app, user_id, browser)
            # Before the change, all three still work.
            assert (await browser.get("/oidc/me", headers={"authorization": f"Bearer {token['access_token']}"})
                    ).status_code == 200
            session_ids = [r["id"] for r in await dep.ctx.pool.fetch(
                "SELECT id FROM oidc_sessions WHERE account_id = $1", user_id)]
            assert len(session_ids) == 1

            if change == "management API":
                response = await browser.patch(f"/api/users/{user_id}/password", json={"password": "new-pass-456"})
                assert response.status_code == 200, response.text
            elif change == "forgot-password rpc":
                await rpc.call(dep.ctx.bus, UPDATE_USER, UpdateUserRequest(
                    user_id=user_id, password="new-pass-456", tenant_id="default"))
            else:  # what experience does: the interaction keeps identity's hash, then sets it
                hashed = await rpc.call(dep.ctx.bus, HASH_PASSWORD, HashPasswordRequest(
                    password="new-pass-456", compare_with_user_id=user_id, tenant_id="default"), timeout=10)
                await rpc.call(dep.ctx.bus, UPDATE_USER, UpdateUserRequest(
                    user_id=user_id, password_digest=hashed.digest, password_algorithm=hashed.algorithm, tenant_id="default"))

            await _old_credentials_are_dead(dep, app, token, browser)
        revoked = [e for e in await dep.event_data("identity.user.sessions_revoked") if e["user_id"] == user_id]
        assert revoked == [{"user_id": user_id, "reason": "password_changed", "session_ids": session_ids,
                            "grant_ids": revoked[0]["grant_ids"]}] and len(revoked[0]["grant_ids"]) == 1
        ended = [e for e in await dep.event_data("identity.session.ended") if e["user_id"] == user_id]
        assert [e["reason"] for e in ended] == ["password_changed"]
        # The password did change, in the same transaction.
        async with dep.browser() as browser:
            response = await browser.post(f"/api/users/{user_id}/password/verify",
                                          json={"password": "new-pass-456"})
        assert response.status_code == 204


# ------------------------------------------------------------------ refresh families: one chain, no fork


async def test_a_refresh_token_reused_within_the_interval_gets_the_same_successor(deployment):
    dep = deployment
    app, user_id = await spa_and_user(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT)
        rt1 = token["refresh_token"]
        first = await rp.refresh_token(ISSUER + "/token", refresh_token=rt1)
        again = await rp.refresh_token(ISSUER + "/token", refresh_token=rt1)  # within the 3 s interval
        rt2 = first["refresh_token"]
        assert again["refresh_token"] == rt2 != rt1
        family = await _family_of(dep, user_id)
        rows = await dep.ctx.pool.fetch("SELECT token_hash, consumed_at FROM oidc_refresh_tokens"
                                        " WHERE family_id = $1", family)
        assert len(rows) == 2 and sum(r["consumed_at"] is None for r in rows) == 1  # one chain: rt1 -> rt2
        # Digests only: neither token (nor the successor the reuse was answered with) is stored.
        stored = await dep.ctx.pool.fetchval("SELECT string_agg(t::text, ' ') FROM oidc_refresh_tokens t"
                                             " WHERE family_id = $1", family)
        assert rt1 not in stored and rt2 not in stored
        assert {bytes(r["token_hash"]) for r in rows} == {hashlib.sha256(t.encode()).digest() for t in (rt1, rt2)}
        # The chain goes on from rt2; past the interval a reuse of rt1 revokes the whole family.
        rt3 = (await rp.refresh_token(ISSUER + "/token", refresh_token=rt2))["refresh_token"]
        with no_refresh_reuse_interval(dep), pytest.raises(AuthlibOAuthError) as error:
            await rp.refresh_token(ISSUER + "/token", refresh_token=rt1)
        assert error.value.error == "invalid_grant"
        with pytest.raises(AuthlibOAuthError):
            await rp.refresh_token(ISSUER + "/token", refresh_token=rt3)
        assert await dep.ctx.pool.fetchval("SELECT count(*) FROM oidc_refresh_tokens WHERE family_id = $1",
                                           family) == 0


async def _waiting_queries(dep: Deployment) -> list[str]:
    return [r["query"] for r in await dep.ctx.pool.fetch(
        "SELECT query FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'")]


async def test_a_refresh_racing_a_revocation_leaves_no_live_token(deployment):
    """The rotation is held inside its transaction (after it wrote its successor) until the
    revocation is waiting too; then both finish. Whatever the order, no token of the family
    may survive: not the successor the refresh answered, not the one it consumed."""
    dep = deployment
    app, user_id = await spa_and_user(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT)
        rt1 = token["refresh_token"]
        family = await _family_of(dep, user_id)
        async with dep.ctx.pool.acquire() as gate:
            gate_tx = gate.transaction()
            await gate_tx.start()
            # The rotation's last write is its event: hold the outbox so it waits there, locks taken.
            await gate.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")
            rotation = asyncio.ensure_future(rp.refresh_token(ISSUER + "/token", refresh_token=rt1))
            while not any("INSERT INTO outbox" in q for q in await _waiting_queries(dep)):
                await asyncio.sleep(0.01)
            revocation = asyncio.ensure_future(rp.revoke_token(ISSUER + "/token/revocation", token=rt1,
                                                               token_type_hint="refresh_token"))
            while not any("oidc_token_families" in q or "DELETE FROM oidc_refresh_tokens" in q
                          for q in await _waiting_queries(dep)):
                await asyncio.sleep(0.01)
            await gate_tx.rollback()
        rotated = await rotation
        assert (await revocation).status_code == 200
        assert await dep.ctx.pool.fetchval("SELECT count(*) FROM oidc_refresh_tokens WHERE family_id = $1",
                                           family) == 0
        assert await dep.ctx.pool.fetchval("SELECT count(*) FROM oidc_access_tokens WHERE family_id = $1",
                                           family) == 0
        with pytest.raises(AuthlibOAuthError) as error:
            await rp.refresh_token(ISSUER + "/token", refresh_token=rotated["refresh_token"])
        assert error.value.error == "invalid_grant"
        async with dep.browser() as http:
            response = await http.get("/oidc/me", headers={"authorization": f"Bearer {rotated['access_token']}"})
        assert response.status_code == 401


async def test_a_code_exchange_racing_a_revocation_of_the_user_leaves_no_live_token(deployment):
    """What a password change or suspension runs (store.revoke_account) while a code of the
    user is being exchanged: the exchange is held inside its transaction (tokens written, code
    locked) until the revocation waits on it; the tokens it committed must not outlive it."""
    from tessera_identity.oidc import store

    dep = deployment
    app, user_id = await spa_and_user(dep)
    meta = await discover(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp, dep.browser() as browser:
        verifier = secrets.token_urlsafe(48)
        url, _ = rp.create_authorization_url(meta["authorization_endpoint"], code_verifier=verifier,
                                             redirect_uri=SPA_REDIRECT, scope="openid offline_access",
                                             prompt="consent")
        final = await complete_interaction(browser, dep.ctx.bus, url, user_id, tenant_id="default")
        code = query_of(final.headers["location"])["code"]
        async with dep.ctx.pool.acquire() as gate, dep.ctx.pool.acquire() as revoker:
            gate_tx = gate.transaction()
            await gate_tx.start()
            await gate.execute("LOCK TABLE outbox IN EXCLUSIVE MODE")  # the exchange's last write waits
            exchange = asyncio.ensure_future(rp.fetch_token(meta["token_endpoint"], code=code, code_verifier=verifier,
                                                            redirect_uri=SPA_REDIRECT))
            while not any("INSERT INTO outbox" in q for q in await _waiting_queries(dep)):
                await asyncio.sleep(0.01)

            async def revoke() -> None:
                async with revoker.transaction():
                    await store.revoke_account(revoker, dep.provider.tenant_id, user_id)

            revocation = asyncio.ensure_future(revoke())
            while not any("oidc_authorization_codes" in q for q in await _waiting_queries(dep)):
                await asyncio.sleep(0.01)
            await gate_tx.rollback()
            issued = await exchange
            await revocation
    for table in ("oidc_refresh_tokens", "oidc_access_tokens", "oidc_authorization_codes"):
        assert await dep.ctx.pool.fetchval(f"SELECT count(*) FROM {table} WHERE account_id = $1", user_id) == 0, table
    with pytest.raises(AuthlibOAuthError) as error:
        async with dep.rp(app["id"], code_challenge_method="S256") as rp:
            await rp.refresh_token(ISSUER + "/token", refresh_token=issued["refresh_token"])
    assert error.value.error == "invalid_grant"
    async with dep.browser() as http:
        response = await http.get("/oidc/me", headers={"authorization": f"Bearer {issued['access_token']}"})
    assert response.status_code == 401


# ------------------------------------------------------------------ logout asks the user (issue 11 item 6)


def logout_form(page: str) -> tuple[str, str]:
    return page.split('name="xsrf" value="')[1].split('"')[0], page


async def test_logout_without_a_hint_of_this_session_asks_and_a_bare_link_logs_nobody_out(deployment):
    dep = deployment
    app, user_id = await spa_and_user(dep)
    other_app, other_user = await spa_and_user(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp, dep.browser() as browser:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT, browser=browser)
        sessions = "SELECT count(*) FROM oidc_sessions WHERE account_id = $1"
        async with dep.rp(other_app["id"], code_challenge_method="S256") as other_rp, dep.browser() as elsewhere:
            foreign, _ = await sign_in(dep, other_rp, other_user, redirect_uri=SPA_REDIRECT, browser=elsewhere)
        # A bare link (or one with another user's ID token): a question, nothing that submits itself.
        for params in ({}, {"client_id": app["id"], "post_logout_redirect_uri": SPA_LOGOUT},
                       {"id_token_hint": foreign["id_token"]}):
            page = await browser.get("/oidc/session/end", params=params)
            assert page.status_code == 200, page.text
            assert "onload" not in page.text and "<script" not in page.text and "submit()" not in page.text
            assert '<button type="submit" name="logout" value="yes"' in page.text
            assert "frame-ancestors 'none'" in page.headers["content-security-policy"]
            assert await dep.ctx.pool.fetchval(sessions, user_id) == 1
        # "Stay signed in" keeps the session; only "Sign out" ends it.
        xsrf, _ = logout_form((await browser.get("/oidc/session/end")).text)
        stay = await browser.post("/oidc/session/end/confirm", data={"xsrf": xsrf})
        assert stay.status_code == 303 and await dep.ctx.pool.fetchval(sessions, user_id) == 1
        xsrf, _ = logout_form((await browser.get("/oidc/session/end")).text)
        out = await browser.post("/oidc/session/end/confirm", data={"xsrf": xsrf, "logout": "yes"})
        assert out.status_code == 303 and await dep.ctx.pool.fetchval(sessions, user_id) == 0
        assert await dep.ctx.pool.fetchval(sessions, other_user) == 1


async def test_logout_with_the_sessions_own_id_token_confirms_itself(deployment):
    dep = deployment
    app, user_id = await spa_and_user(dep)
    async with dep.rp(app["id"], code_challenge_method="S256") as rp, dep.browser() as browser:
        token, _ = await sign_in(dep, rp, user_id, redirect_uri=SPA_REDIRECT, browser=browser)
        page = await browser.get("/oidc/session/end", params={"id_token_hint": token["id_token"]})
        assert page.status_code == 200 and 'onload="document.forms[0].submit()"' in page.text
        assert '<input type="hidden" name="logout" value="yes"/>' in page.text


async def test_interactions_announce_their_start_and_end(deployment):
    """oidc-provider's interaction.started / interaction.ended (Logto's Interaction.Create and
    Interaction.End logs): one of each per interaction, named by the `_interaction` cookie."""
    dep = deployment
    app, user_id = await spa_and_user(dep)
    params = {"client_id": app["id"], "redirect_uri": SPA_REDIRECT, "response_type": "code", "scope": "openid",
              "code_challenge": "a" * 43, "code_challenge_method": "S256", "state": "s", "prompt": "consent"}
    async with dep.browser() as browser:
        # A client that also sends its secret (or anything else) to the authorization endpoint:
        # only the authorization request's own parameters are kept and announced.
        response = await browser.get("/oidc/auth", params={**params, "client_secret": "s3cret-of-the-client",
                                                           "junk": "x" * 1000, "ui_locales": "fr"})
        login_uid = browser.cookies.get("_interaction")
        started = [e for e in await dep.event_data("identity.interaction.started") if e["interaction_id"] == login_uid]
        assert len(started) == 1 and started[0]["application_id"] == app["id"]
        assert started[0]["params"] == {**params, "ui_locales": "fr"}
        stored = await dep.ctx.pool.fetchval("SELECT params::text FROM oidc_interactions WHERE uid = $1", login_uid)
        assert "s3cret-of-the-client" not in stored and "junk" not in stored
        assert started[0]["params"]["state"] == "s" and started[0]["prompt"]["name"] == "login"
        assert started[0]["prompt"]["reasons"] == ["no_session"]
        assert not [e for e in await dep.event_data("identity.interaction.ended") if e["interaction_id"] == login_uid]
        final = await complete_interaction(browser, dep.ctx.bus, "/oidc/auth?" + urlencode(params), user_id, tenant_id="default")
        assert final.status_code == 303 and "code=" in final.headers["location"]
    mine = {e["interaction_id"]: e for e in await dep.event_data("identity.interaction.started")
            if e["application_id"] == app["id"]}
    ended = [e for e in await dep.event_data("identity.interaction.ended") if e["interaction_id"] in mine]
    # The flow: an abandoned login interaction, then login and consent for the second request.
    assert sorted(mine[e["interaction_id"]]["prompt"]["name"] for e in ended) == ["consent", "login"]
    assert all(e["user_id"] == user_id for e in ended)


def test_cookie_signatures_are_keygrips():
    """The vector is Node's: crypto.createHmac('sha1', key).update('_session=Zx81d0Cb3k'),
    base64 made url-safe without padding, as keygrip (koa's cookies) signs."""
    from tessera_identity.oidc.crypto import CookieSigner

    signer = CookieSigner(b"tessera-cookie-key")
    assert signer.signature("_session", "Zx81d0Cb3k") == "9JtJzvu3R5m6YrxFppcEcVigjKs"
    assert signer.verify("_session", "Zx81d0Cb3k", "9JtJzvu3R5m6YrxFppcEcVigjKs") == "Zx81d0Cb3k"
    assert signer.verify("_interaction", "Zx81d0Cb3k", "9JtJzvu3R5m6YrxFppcEcVigjKs") is None
    assert signer.verify("_session", "Zx81d0Cb3l", "9JtJzvu3R5m6YrxFppcEcVigjKs") is None
    assert signer.verify("_session", "Zx81d0Cb3k", "é") is None  # not ASCII: no match, no error
    assert signer.verify("_session", "Zx81d0Cb3k", None) is None

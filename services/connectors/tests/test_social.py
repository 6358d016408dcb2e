"""Social connectors over the rpc the sign-in experience uses: the generic OIDC connector
against a small real OpenID Provider (discovery, PKCE, ID token signed with a JWKS key),
the generic OAuth 2.0 connector's profile mapping, GitHub, and Logto's mock social."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from urllib.parse import parse_qsl, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import ECKey, KeySet

from tessera_events.contracts.connectors import (
    AUTHORIZATION_URI,
    INTERACTION_USER_INFO,
    AuthorizationUriRequest,
    InteractionUserInfoRequest,
)
from tessera_connectors.factories.base import PROVIDER_ANSWER_CAP
from tessera_kit.errors import RequestError

REDIRECT = "https://tessera.test/callback/x"


async def add(connectors, factory: str, config: dict, **body) -> dict:
    response = await connectors.client.post("/api/connectors", json={"connectorId": factory, "config": config, **body})
    assert response.status_code == 200, response.text
    return response.json()


async def authorize(connectors, connector_id: str):
    return await connectors.ctx.call(AUTHORIZATION_URI, AuthorizationUriRequest(
        connector_id=connector_id, state="st-1", redirect_uri=REDIRECT, interaction_id="jti-1", tenant_id="default"), timeout=10)


async def user_info(connectors, connector_id: str, data: dict, session: dict | None, interaction_id: str = "jti-1"):
    return await connectors.ctx.call(INTERACTION_USER_INFO, InteractionUserInfoRequest(
        connector_id=connector_id, connector_data=data, connector_session=session,
        interaction_id=interaction_id, tenant_id="default"), timeout=10)


class Op:
    """An OpenID Provider on the test's HTTP server: discovery, JWKS, and a token endpoint
    that checks the PKCE verifier and signs an ID token with the nonce it was given."""

    def __init__(self, providers, **claims) -> None:
        self.issuer = providers.url + "/op"
        self.key = ECKey.generate_key("P-256", parameters={"kid": "k1", "alg": "ES256", "use": "sig"})
        self.claims = claims
        self.nonce = ""
        self.challenge = ""
        providers.answer("/op/.well-known/openid-configuration", 200, {
            "issuer": self.issuer, "authorization_endpoint": self.issuer + "/auth",
            "token_endpoint": self.issuer + "/token", "jwks_uri": self.issuer + "/jwks"})
        providers.answer("/op/jwks", 200, KeySet([self.key]).as_dict(private=False))
        providers.answers["/op/token"] = self.token

    def authorized(self, url: str) -> dict[str, str]:
        query = dict(parse_qsl(urlsplit(url).query))
        self.nonce, self.challenge = query["nonce"], query["code_challenge"]
        return query

    def token(self, seen):
        form = seen.form()
        digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
        if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != self.challenge or form["code"] != "the-code":
            return 400, "application/json", b'{"error":"invalid_grant"}'
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": "rp", "sub": "op-user-1", "iat": now, "exp": now + 300,
                  "nonce": self.nonce, "email": "ann@example.com", "email_verified": True, "name": "Ann",
                  **self.claims}
        id_token = jwt.encode({"alg": "ES256", "kid": "k1"}, claims, self.key)
        return 200, "application/json", json.dumps({"id_token": id_token, "access_token": "at",
                                                    "token_type": "Bearer"}).encode()


async def test_oidc_discovery_pkce_and_a_verified_id_token(connectors):
    op = Op(connectors.providers)
    connector = await add(connectors, "oidc", {"clientId": "rp", "clientSecret": "rp-SECRET", "scope": "profile email",
                                               "issuer": op.issuer}, metadata={"target": "acme"})
    answer = await authorize(connectors, connector["id"])
    query = op.authorized(answer.redirect_to)
    assert answer.redirect_to.startswith(op.issuer + "/auth?")
    assert query["scope"] == "profile email openid" and query["client_id"] == "rp" and query["state"] == "st-1"
    assert query["code_challenge_method"] == "S256" and query["redirect_uri"] == REDIRECT
    session = answer.connector_session
    assert session["connectorId"] == connector["id"] and "codeVerifier" in session
    info = await user_info(connectors, connector["id"], {"code": "the-code", "state": "st-1"}, session)
    assert info.target == "acme"
    assert info.user_info == {"id": "op-user-1", "name": "Ann", "email": "ann@example.com"}
    token_request = connectors.providers.requests("/op/token")[0].form()
    assert token_request["client_secret"] == "rp-SECRET" and token_request["redirect_uri"] == REDIRECT


@pytest.mark.parametrize("claims", [{"aud": "someone-else"}, {"iss": "https://evil.test"},
                                    {"exp": 1000}, {"nonce": "replayed"}])
async def test_oidc_refuses_an_id_token_not_for_this_login(connectors, claims):
    op = Op(connectors.providers, **claims)
    connector = await add(connectors, "oidc", {"clientId": "rp", "clientSecret": "s", "scope": "openid",
                                               "issuer": op.issuer}, metadata={"target": "acme"})
    answer = await authorize(connectors, connector["id"])
    op.authorized(answer.redirect_to)
    with pytest.raises(RequestError) as refused:
        await user_info(connectors, connector["id"], {"code": "the-code"}, answer.connector_session)
    assert (refused.value.code, refused.value.status) == ("connector.social_invalid_id_token", 401)


async def test_oidc_needs_its_session(connectors):
    op = Op(connectors.providers)
    connector = await add(connectors, "oidc", {"clientId": "rp", "clientSecret": "s", "scope": "openid",
                                               "issuer": op.issuer}, metadata={"target": "acme"})
    with pytest.raises(RequestError) as missing:
        await user_info(connectors, connector["id"], {"code": "the-code"}, None)
    assert (missing.value.code, missing.value.status) == ("session.connector_validation_session_not_found", 400)
    with pytest.raises(RequestError) as tampered:  # a PKCE verifier that is not the one sent
        answer = await authorize(connectors, connector["id"])
        op.authorized(answer.redirect_to)
        await user_info(connectors, connector["id"], {"code": "the-code"},
                        {**answer.connector_session, "codeVerifier": "x" * 43})
    assert tampered.value.code == "connector.general"


async def test_oauth2_maps_the_profile(connectors):
    p = connectors.providers
    p.answer("/oauth/token", 200, b"access_token=tok&token_type=Bearer", "application/x-www-form-urlencoded")
    p.answer("/oauth/me", 200, {"user_id": 42, "mail": "bo@example.com", "full_name": "Bo", "avatar_url": ""})
    connector = await add(connectors, "oauth2", {
        "authorizationEndpoint": p.url + "/oauth/authorize", "tokenEndpoint": p.url + "/oauth/token",
        "userInfoEndpoint": p.url + "/oauth/me", "clientId": "cid", "clientSecret": "cs", "scope": "read",
        "profileMap": {"id": "user_id", "email": "mail", "name": "full_name", "avatar": "avatar_url"}},
        metadata={"target": "corp"})
    answer = await authorize(connectors, connector["id"])
    query = dict(parse_qsl(urlsplit(answer.redirect_to).query))
    assert query == {"response_type": "code", "client_id": "cid", "scope": "read", "state": "st-1",
                     "redirect_uri": REDIRECT}
    info = await user_info(connectors, connector["id"], {"code": "c1"}, answer.connector_session)
    assert info.user_info == {"id": "42", "email": "bo@example.com", "name": "Bo"}
    assert p.requests("/oauth/me")[0].headers["authorization"] == "Bearer tok"


async def test_github(connectors):
    p = connectors.providers
    p.answer("/github/token", 200, b"access_token=gho&scope=read%3Auser&token_type=bearer", "text/plain")
    p.answer("/github/user", 200, {"id": 7, "name": "Octo", "email": None, "avatar_url": "https://a.test/7"})
    connector = await add(connectors, "github-universal", {"clientId": "gh", "clientSecret": "gh-SECRET"})
    answer = await authorize(connectors, connector["id"])
    assert answer.redirect_to.startswith(p.url + "/github/authorize?client_id=gh&")
    info = await user_info(connectors, connector["id"], {"code": "c"}, None)
    assert info.target == "github" and info.user_info == {"id": "7", "avatar": "https://a.test/7", "name": "Octo"}
    assert p.requests("/github/token")[0].json() == {"client_id": "gh", "client_secret": "gh-SECRET", "code": "c"}
    p.answer("/github/user", 401, {"message": "Bad credentials"})
    with pytest.raises(RequestError) as refused:
        await user_info(connectors, connector["id"], {"code": "c"}, None)
    assert (refused.value.code, refused.value.status) == ("connector.social_invalid_access_token", 401)
    with pytest.raises(RequestError) as denied:
        await user_info(connectors, connector["id"], {"error": "access_denied", "error_description": "no"}, None)
    assert (denied.value.code, denied.value.status) == ("connector.authorization_failed", 401)


async def test_mock_social_and_wrong_connectors(connectors):
    social = await add(connectors, "mock-social-connector", {"clientId": "a", "clientSecret": "b"})
    mail = await add(connectors, "mock-email-service", {"apiKey": "k", "fromEmail": "a@b.c", "templates": []})
    info = await user_info(connectors, social["id"], {"code": "x", "userId": "u1", "email": "u@x.test"}, {})
    assert (info.target, info.user_info) == ("mock-social", {"id": "u1", "email": "u@x.test"})
    generated = await user_info(connectors, social["id"], {"code": "x"}, None, interaction_id="")
    assert generated.user_info["id"].startswith("mock-social-sub-")
    with pytest.raises(RequestError) as bad:
        await user_info(connectors, social["id"], {"userId": "u1"}, {})
    assert (bad.value.code, bad.value.status) == ("connector.invalid_response", 400)
    with pytest.raises(RequestError) as not_social:
        await user_info(connectors, mail["id"], {"code": "x"}, {})
    assert (not_social.value.code, not_social.value.status) == ("session.invalid_connector_id", 422)
    with pytest.raises(RequestError) as unknown:
        await authorize(connectors, "nope")
    assert (unknown.value.code, unknown.value.status) == ("entity.not_found", 404)
    with pytest.raises(RequestError) as wrong:
        await authorize(connectors, mail["id"])
    assert (wrong.value.code, wrong.value.status) == ("connector.unexpected_type", 400)


async def test_a_provider_answer_is_read_up_to_a_cap(connectors):
    """An endpoint an admin configured may answer anything: the answer is read up to a cap
    (bounded memory, bounded JSON parse), then refused as `connector.invalid_response`."""
    p = connectors.providers
    p.answer("/oauth/token", 200, {"access_token": "tok"})
    p.answer("/oauth/me", 200, {"id": 42, "padding": "x" * (PROVIDER_ANSWER_CAP + 1)})
    connector = await add(connectors, "oauth2", {
        "authorizationEndpoint": p.url + "/oauth/authorize", "tokenEndpoint": p.url + "/oauth/token",
        "userInfoEndpoint": p.url + "/oauth/me", "clientId": "cid", "clientSecret": "cs"},
        metadata={"target": "big"})
    answer = await authorize(connectors, connector["id"])
    with pytest.raises(RequestError) as refused:
        await user_info(connectors, connector["id"], {"code": "c1"}, answer.connector_session)
    assert (refused.value.code, refused.value.status) == ("connector.invalid_response", 400)
    p.answer("/oauth/me", 200, {"id": 42, "padding": "x" * (PROVIDER_ANSWER_CAP - 100)})
    info = await user_info(connectors, connector["id"], {"code": "c1"}, answer.connector_session)
    assert info.user_info == {"id": "42"}


async def test_google(connectors):
    p = connectors.providers
    p.answer("/google/token", 200, {"access_token": "ya29", "token_type": "Bearer"})
    p.answer("/google/userinfo", 200, {"sub": "g-1", "name": "Gee", "picture": "https://a.test/g",
                                       "email": "gee@example.com", "email_verified": False})
    connector = await add(connectors, "google-universal", {"clientId": "gid", "clientSecret": "g-SECRET"})
    answer = await authorize(connectors, connector["id"])
    query = dict(parse_qsl(urlsplit(answer.redirect_to).query))
    assert query == {"client_id": "gid", "redirect_uri": REDIRECT, "response_type": "code", "state": "st-1",
                     "scope": "openid profile email"}
    info = await user_info(connectors, connector["id"], {"code": "c%2F1", "redirectUri": REDIRECT}, None)
    # An email Google has not verified is not taken.
    assert info.target == "google" and info.user_info == {"id": "g-1", "avatar": "https://a.test/g", "name": "Gee"}
    assert p.requests("/google/token")[0].form() == {
        "code": "c/1", "client_id": "gid", "client_secret": "g-SECRET", "redirect_uri": REDIRECT,
        "grant_type": "authorization_code"}
    assert p.requests("/google/userinfo")[0].headers["authorization"] == "Bearer ya29"
    p.answer("/google/userinfo", 401, {"error": "invalid_token"})
    with pytest.raises(RequestError) as expired:
        await user_info(connectors, connector["id"], {"code": "c", "redirectUri": REDIRECT}, None)
    assert (expired.value.code, expired.value.status) == ("connector.social_invalid_access_token", 401)
    p.answer("/google/token", 400, {"error": "invalid_grant"})
    with pytest.raises(RequestError) as refused:
        await user_info(connectors, connector["id"], {"code": "c", "redirectUri": REDIRECT}, None)
    assert (refused.value.code, refused.value.status) == ("connector.general", 400)
    assert "invalid_grant" in refused.value.data["message"]
    with pytest.raises(RequestError) as incomplete:
        await user_info(connectors, connector["id"], {"code": "c"}, None)
    assert incomplete.value.code == "connector.general"

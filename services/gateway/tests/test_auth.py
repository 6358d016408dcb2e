"""Management API authentication through a running gateway (Logto §1.8)."""

from __future__ import annotations

import base64
import json
import time

import httpx
import pytest

from joserfc import jwk


def _error(response: httpx.Response) -> dict:
    assert response.headers["content-type"].startswith("application/json")
    return response.json()


def _echoed_headers(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 200, response.text
    return {k: v for k, v in response.json()["headers"]}


def _caller(response: httpx.Response) -> tuple[str, str | None]:
    """The caller the upstream read from the gateway's assertion (verified as the kit does)."""
    assert response.status_code == 200, response.text
    caller = response.json()["caller"]
    assert "refused" not in caller, caller
    return caller["type"], caller["id"]


def test_missing_header(client: httpx.Client) -> None:
    response = client.get("/api/users/u1")
    assert response.status_code == 401
    assert _error(response) == {"code": "auth.authorization_header_missing",
                                "message": "Authorization header is missing."}


@pytest.mark.parametrize("value", ["Basic dXNlcjpwYXNz", "bearer abc", "Token abc"])
def test_wrong_type(client: httpx.Client, value: str) -> None:
    response = client.get("/api/users/u1", headers={"Authorization": value})
    assert response.status_code == 401
    body = _error(response)
    assert body["code"] == "auth.authorization_token_type_not_supported"
    assert body["data"] == {"supportedTypes": ["Bearer"]}
    assert body["message"] == "Authorization type is not supported."


def _unauthorized(client: httpx.Client, token: str) -> dict:
    response = client.get("/api/users/u1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401, response.text
    body = _error(response)
    assert body["code"] == "auth.unauthorized", body
    assert body["message"] == "Unauthorized. Please check credentials and its scope."
    assert isinstance(body["data"], str) and body["data"]
    return body


def test_bad_signature(client: httpx.Client, tokens) -> None:
    body = _unauthorized(client, tokens.make(tokens.keys.impostor))  # same kid, unpublished key
    assert "signature" in body["data"]


def test_tampered_claims(client: httpx.Client, token: str) -> None:
    header, payload, signature = token.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    claims["sub"] = "someone-else"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    _unauthorized(client, f"{header}.{forged}.{signature}")


def test_wrong_audience(client: httpx.Client, tokens) -> None:
    body = _unauthorized(client, tokens.make(tokens.keys.ec384, aud="https://other.example/api"))
    assert "aud" in body["data"]


def test_audience_list_containing_the_management_api(client: httpx.Client, tokens) -> None:
    token = tokens.make(tokens.keys.ec384, aud=["https://other.example/api", tokens.audience])
    assert client.get("/api/users/u1", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_wrong_issuer(client: httpx.Client, tokens) -> None:
    body = _unauthorized(client, tokens.make(tokens.keys.ec384, iss="http://evil.example/oidc"))
    assert "iss" in body["data"]


def test_missing_audience_or_issuer(client: httpx.Client, tokens) -> None:
    _unauthorized(client, tokens.make(tokens.keys.ec384, aud=None))
    _unauthorized(client, tokens.make(tokens.keys.ec384, iss=None))


def test_expired(client: httpx.Client, tokens) -> None:
    now = int(time.time())
    body = _unauthorized(client, tokens.make(tokens.keys.ec384, iat=now - 7200, exp=now - 60))
    assert "expired" in body["data"]


def test_not_yet_valid(client: httpx.Client, tokens) -> None:
    _unauthorized(client, tokens.make(tokens.keys.ec384, nbf=int(time.time()) + 600))


def test_garbage_and_unsigned_tokens(client: httpx.Client, tokens) -> None:
    _unauthorized(client, "not-a-jwt")

    def b64(value: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    claims = {"iss": tokens.issuer, "aud": tokens.audience, "sub": "x", "scope": "all", "exp": int(time.time()) + 60}
    _unauthorized(client, f"{b64({'alg': 'none', 'kid': 'ec384'})}.{b64(claims)}.")
    # HS256 "signed" with the public key's bytes: the classic algorithm-confusion attack.
    _unauthorized(client, f"{b64({'alg': 'HS256', 'kid': 'ec384'})}.{b64(claims)}.c2ln")


def test_unknown_kid(client: httpx.Client, tokens) -> None:
    stranger = jwk.ECKey.generate_key("P-384", {"kid": "stranger"})
    _unauthorized(client, tokens.make(stranger))


def test_missing_sub(client: httpx.Client, tokens) -> None:
    response = client.get("/api/users/u1", headers={"Authorization": f"Bearer {tokens.make(tokens.keys.ec384, sub=None)}"})
    assert response.status_code == 401
    assert _error(response) == {"code": "auth.jwt_sub_missing", "message": "Missing `sub` in JWT."}


@pytest.mark.parametrize("scope", [None, "", "read write", "allx", "openid profile"])
def test_missing_all_scope(client: httpx.Client, tokens, scope: str | None) -> None:
    token = tokens.make(tokens.keys.ec384, scope=scope)
    response = client.get("/api/users/u1", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert _error(response) == {"code": "auth.forbidden",
                                "message": "Forbidden. Please check your user roles and permissions."}


def test_valid_user_token(client: httpx.Client, tokens) -> None:
    token = tokens.make(tokens.keys.ec384, sub="user-42", scope="openid all offline_access")
    response = client.get("/api/users/user-42", headers={"Authorization": f"Bearer {token}"})
    assert _caller(response) == ("user", "user-42")
    assert _echoed_headers(response)["authorization"] == f"Bearer {token}"


def test_valid_application_token(client: httpx.Client, tokens) -> None:
    """Client credentials: `sub` is the client id, so the caller is an application."""
    token = tokens.make(tokens.keys.ec384, sub="m2m-app", client_id="m2m-app")
    assert _caller(client.get("/api/roles", headers={"Authorization": f"Bearer {token}"})) == ("application", "m2m-app")


@pytest.mark.parametrize("key_name", ["ec384", "ec256", "rsa"])
def test_supported_algorithms(client: httpx.Client, tokens, key_name: str) -> None:
    token = tokens.make(getattr(tokens.keys, key_name))
    assert client.get("/api/users/u1", headers={"Authorization": f"Bearer {token}"}).status_code == 200


def test_key_algorithm_mismatch(client: httpx.Client, tokens) -> None:
    """An RS256 header naming an EC key's kid is refused before any crypto."""
    token = tokens.make(tokens.keys.rsa, kid="ec384")
    _unauthorized(client, token)


def test_spoofed_caller_headers_are_stripped(client: httpx.Client, auth: dict[str, str]) -> None:
    spoof = {"X-Tessera-Caller-Type": "application", "X-Tessera-Caller-Id": "root",
             "X-Tessera-Anything": "x", "X-Tessera-Assertion": "1.0.user.cm9vdA.ZGVmYXVsdA.forged",
             "X-Tessera-Client-IP": "6.6.6.6"}
    response = client.get("/api/users/u1", headers={**auth, **spoof})
    assert _caller(response) == ("user", "user-1")
    headers = _echoed_headers(response)
    assert sorted(k for k in headers if k.startswith("x-tessera-")) == ["x-tessera-assertion", "x-tessera-client-ip"]
    assert headers["x-tessera-assertion"] != spoof["X-Tessera-Assertion"]
    assert headers["x-tessera-client-ip"] == "127.0.0.1"  # the gateway's own word, not the client's
    # Anonymous routes too: the service sees the system as the caller, whatever the client says.
    anonymous = client.get("/oidc/me", headers=spoof)
    assert _caller(anonymous) == ("system", None)
    echoed = _echoed_headers(anonymous)
    assert sorted(k for k in echoed if k.startswith("x-tessera-")) == ["x-tessera-assertion", "x-tessera-client-ip"]
    assert echoed["x-tessera-client-ip"] == "127.0.0.1"


def test_every_forwarded_request_is_signed_for_its_own_method_and_target(client: httpx.Client, auth) -> None:
    """What the gateway signs is what the upstream receives: odd paths and queries included."""
    for method, target in [("GET", "/api/users/u1?page=2&page_size=5"), ("POST", "/api/users/a%2Fb"),
                           ("DELETE", "/api/roles/r1?x=%20y&x=z"), ("PATCH", "/oidc/session/end?a=1")]:
        response = client.request(method, target, headers=auth, content=b"{}")
        assert _caller(response)[0] in ("user", "system"), (method, target)
        body = response.json()
        assert (body["method"], body["rawPath"] + ("?" + body["query"] if body["query"] else "")) == (method, target)


def test_anonymous_routes_need_no_token(client: httpx.Client) -> None:
    assert client.get("/oidc/.well-known/openid-configuration").status_code == 200
    assert client.get("/api/status").status_code == 204
    assert client.get("/api/swagger.json").status_code == 200
    # Interaction routes are anonymous; experience is not configured here, hence 503 (not 401).
    assert client.get("/api/interaction").status_code == 503
    assert client.get("/api/.well-known/sign-in-exp").status_code == 503


def test_cors_preflight_skips_authentication(client: httpx.Client) -> None:
    response = client.options("/api/users", headers={"Origin": "http://console.example",
                                                     "Access-Control-Request-Method": "GET"})
    assert response.status_code == 200 and response.json()["method"] == "OPTIONS"
    assert client.options("/api/users").status_code == 401


def test_development_user_id_is_ignored_by_default(client: httpx.Client) -> None:
    response = client.get("/api/users/u1", headers={"development-user-id": "dev-user"})
    assert response.status_code == 401
    assert response.json()["code"] == "auth.authorization_header_missing"
    # And never reaches a service.
    assert "development-user-id" not in _echoed_headers(client.get("/oidc/me", headers={"development-user-id": "x"}))


def test_development_user_id_when_enabled(dev_gateway) -> None:
    response = httpx.get(f"{dev_gateway.url}/api/users/u1", headers={"development-user-id": "dev-user"})
    assert _caller(response) == ("user", "dev-user")
    assert "development-user-id" not in _echoed_headers(response)
    # Without the header the token is still required.
    assert httpx.get(f"{dev_gateway.url}/api/users/u1").status_code == 401


def test_unreachable_jwks_is_503(dev_gateway, tokens) -> None:
    """dev_gateway's JWKS URL has nothing behind it: a token cannot be checked, try later."""
    started = time.monotonic()
    response = httpx.get(f"{dev_gateway.url}/api/users/u1",
                         headers={"Authorization": f"Bearer {tokens.make(tokens.keys.ec384)}"}, timeout=10)
    assert time.monotonic() - started < 3
    assert response.status_code == 503
    assert response.json() == {"code": "service.unavailable",
                               "message": "The identity service is unavailable. Please try again later."}


def test_unknown_kid_refreshes_the_jwks(client: httpx.Client, tokens) -> None:
    """Identity rotates its key: the first token with the new kid makes the gateway refetch."""
    assert client.get("/api/users/u1", headers={"Authorization": f"Bearer {tokens.make(tokens.keys.ec384)}"}).status_code == 200
    rotated = jwk.ECKey.generate_key("P-384", {"kid": "rotated"})
    try:
        tokens.publish([*tokens.keys.published, rotated])
        time.sleep(tokens.refresh_interval + 0.1)
        before = tokens.jwks_fetches()
        token = tokens.make(rotated, sub="after-rotation")
        response = client.get("/api/users/u1", headers={"Authorization": f"Bearer {token}"})
        assert _caller(response) == ("user", "after-rotation")
        assert tokens.jwks_fetches() == before + 1

        # Tokens with made-up kids refetch at most once per refresh interval.
        strangers = [jwk.ECKey.generate_key("P-384", {"kid": f"stranger-{i}"}) for i in range(5)]
        before = tokens.jwks_fetches()
        for stranger in strangers:
            _unauthorized(client, tokens.make(stranger))
        assert tokens.jwks_fetches() - before <= 1
    finally:
        tokens.publish(tokens.keys.published)

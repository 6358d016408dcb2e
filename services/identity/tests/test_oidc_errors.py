"""Every error branch of `/oidc/auth` and `/oidc/token` answers its RFC error code: shown to
the browser when the client or redirect URI cannot be trusted (RFC 6749 §4.1.2.1), redirected
to the client otherwise, and `{error, error_description}` at the token endpoint (§5.2)."""

from __future__ import annotations

import base64
import hashlib
import itertools
import secrets

import msgspec
import pytest

from tessera_identity.oidc.testing import ISSUER, complete_interaction, interaction_cookies, query_of, start_deployment

_count = itertools.count()
REDIRECT = "https://rp.example/cb"
API = "https://errors-api.example"


@pytest.fixture(scope="module")
async def dep(database_url, nats_url, namespace):
    async with start_deployment(database_url, nats_url, namespace) as deployment:
        deployment.rbac.add_resource(API)
        yield deployment


@pytest.fixture(scope="module")
async def apps(dep):
    return {
        "spa": await dep.application("SPA", redirect_uris=[REDIRECT]),
        "web": await dep.application("Traditional", redirect_uris=[REDIRECT]),
        # An M2M app with a redirect URI (stored directly) reaches the response_type check.
        "m2m": await dep.application("MachineToMachine", redirect_uris=[REDIRECT]),
        "other": await dep.application("SPA", redirect_uris=["https://other.example/cb"]),
    }


def challenge_of(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


VERIFIER = secrets.token_urlsafe(48)


def auth_params(client_id: str, **overrides) -> dict:
    params = {"client_id": client_id, "redirect_uri": REDIRECT, "response_type": "code", "scope": "openid",
              "state": "st4te", "code_challenge": challenge_of(VERIFIER), "code_challenge_method": "S256"}
    params.update(overrides)
    return {k: v for k, v in params.items() if v is not None}


# ------------------------------------------------------------------ /auth, not redirected


@pytest.mark.parametrize("case, error", [
    ("no client_id", "invalid_request"),
    ("unknown client", "invalid_client"),
    ("no redirect_uri", "invalid_request"),
    ("unregistered redirect_uri", "invalid_request"),
    ("duplicated client_id", "invalid_request"),
])
async def test_auth_errors_that_must_not_be_redirected(dep, apps, case, error):
    spa = apps["spa"]["id"]
    params = {
        "no client_id": auth_params(None),
        "unknown client": auth_params("nope"),
        "no redirect_uri": auth_params(spa, redirect_uri=None),
        "unregistered redirect_uri": auth_params(spa, redirect_uri="https://evil.example/cb"),
        "duplicated client_id": list(auth_params(spa).items()) + [("client_id", spa)],
    }[case]
    async with dep.browser() as browser:
        response = await browser.get("/oidc/auth", params=params)
    assert response.status_code == 400 and "location" not in response.headers
    assert response.json()["error"] == error


# ------------------------------------------------------------------ /auth, redirected


@pytest.mark.parametrize("overrides, error", [
    ({"response_mode": "fragment"}, "unsupported_response_mode"),
    ({"request": "eyJ..."}, "request_not_supported"),
    ({"request_uri": "https://rp.example/req"}, "request_uri_not_supported"),
    ({"registration": "{}"}, "registration_not_supported"),
    ({"response_type": None}, "invalid_request"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"response_type": "code id_token"}, "unsupported_response_type"),
    ({"scope": "profile"}, "invalid_scope"),
    ({"scope": "openid bad\\scope"}, "invalid_scope"),
    ({"prompt": "select_account"}, "invalid_request"),
    ({"prompt": "none login"}, "invalid_request"),
    ({"max_age": "soon"}, "invalid_request"),
    ({"code_challenge": None, "code_challenge_method": None}, "invalid_request"),  # PKCE required
    ({"code_challenge_method": None}, "invalid_request"),  # no plain fallback
    ({"code_challenge_method": "plain"}, "invalid_request"),
    ({"code_challenge": "short"}, "invalid_request"),
    ({"code_challenge": None}, "invalid_request"),  # method without challenge
    ({"resource": "not-absolute"}, "invalid_target"),
    ({"resource": "https://api.example/#frag"}, "invalid_target"),
    ({"resource": "https://unknown-api.example"}, "invalid_target"),
    ({"prompt": "none"}, "login_required"),
])
async def test_auth_errors_go_back_to_the_redirect_uri(dep, apps, overrides, error):
    async with dep.browser() as browser:
        response = await browser.get("/oidc/auth", params=auth_params(apps["spa"]["id"], **overrides))
    assert response.status_code == 303, response.text
    location = response.headers["location"]
    assert location.startswith(REDIRECT + "?")
    params = query_of(location)
    assert params["error"] == error and params["state"] == "st4te" and params["iss"] == ISSUER
    assert params.get("error_description")


async def test_auth_unauthorized_client_for_a_machine_to_machine_app(dep, apps):
    async with dep.browser() as browser:
        response = await browser.get("/oidc/auth", params=auth_params(apps["m2m"]["id"]))
    assert query_of(response.headers["location"])["error"] == "unauthorized_client"


async def test_auth_duplicated_parameter_after_the_redirect_uri_is_known(dep, apps):
    params = list(auth_params(apps["spa"]["id"]).items()) + [("scope", "openid")]
    async with dep.browser() as browser:
        response = await browser.get("/oidc/auth", params=params)
    assert query_of(response.headers["location"])["error"] == "invalid_request"


async def test_auth_consent_required_with_prompt_none(dep, apps):
    user = await dep.user()
    async with dep.browser() as browser:
        # A session, but no grant for this client yet.
        final = await complete_interaction(browser, dep.ctx.bus, "/oidc/auth?" + _qs(auth_params(apps["spa"]["id"])), user, tenant_id="default")
        assert "code" in query_of(final.headers["location"])
        response = await browser.get("/oidc/auth", params=auth_params(apps["other"]["id"], redirect_uri="https://other.example/cb", prompt="none"))
    assert query_of(response.headers["location"])["error"] == "consent_required"


async def test_auth_rbac_down_is_temporarily_unavailable(dep, apps):
    from tessera_events.contracts.rbac import RESOURCE_BY_INDICATOR  # noqa: F401  (the call that fails)

    # A namespace nobody serves: the provider's rpc finds no responder.
    original = dep.ctx.bus.namespace
    dep.ctx.bus.namespace = original + "-nobody"
    try:
        async with dep.browser() as browser:
            response = await browser.get("/oidc/auth", params=auth_params(apps["spa"]["id"], resource=API))
    finally:
        dep.ctx.bus.namespace = original
    assert query_of(response.headers["location"])["error"] == "temporarily_unavailable"


async def test_auth_aborted_interaction_is_access_denied(dep, apps):
    from tessera_events.contracts.oidc import ABORT_INTERACTION, AbortInteraction
    from tessera_kit import rpc

    async with dep.browser() as browser:
        response = await browser.get("/oidc/auth", params=auth_params(apps["spa"]["id"]))
        assert response.headers["location"] == "/sign-in"
        reply = await rpc.call(dep.ctx.bus, ABORT_INTERACTION,
                               AbortInteraction(**interaction_cookies(browser, tenant_id="default")))
        uid = browser.cookies.get("_interaction")
        response = await browser.get(reply.redirect_to)
    params = query_of(response.headers["location"])
    assert params["error"] == "access_denied" and params["state"] == "st4te"
    # The interaction ended all the same (its event is written where no code or interaction
    # statement carried it).
    assert len([e for e in await dep.event_data("identity.interaction.ended") if e["interaction_id"] == uid]) == 1


async def test_interaction_rpc_errors(dep, apps):
    from tessera_events.contracts.oidc import (
        FINISH_LOGIN, GRANT_CONSENT, INTERACTION_DETAILS, FinishLogin, GrantConsent, InteractionRef)
    from tessera_kit import rpc
    from tessera_kit.errors import RequestError

    with pytest.raises(RequestError) as error:
        await rpc.call(dep.ctx.bus, INTERACTION_DETAILS, InteractionRef(interaction_cookie="forged.sig", tenant_id="default"))
    assert (error.value.status, error.value.code) == (400, "session.not_found")
    async with dep.browser() as browser:
        await browser.get("/oidc/auth", params=auth_params(apps["spa"]["id"], resource=API, scope="openid read"))
        cookie = interaction_cookies(browser, tenant_id="default")
    # The value without its `_interaction.sig` is not enough.
    with pytest.raises(RequestError) as error:
        await rpc.call(dep.ctx.bus, INTERACTION_DETAILS, InteractionRef(interaction_cookie=cookie["interaction_cookie"], tenant_id="default"))
    assert error.value.code == "session.not_found"
    details = await rpc.call(dep.ctx.bus, INTERACTION_DETAILS, InteractionRef(**cookie))
    assert details.client_id == apps["spa"]["id"] and details.prompt.name == "login"
    assert details.prompt.reasons == ["no_session"] and details.params["resource"] == API
    with pytest.raises(RequestError) as error:  # consent before anyone signed in
        await rpc.call(dep.ctx.bus, GRANT_CONSENT, GrantConsent(**cookie))
    assert error.value.code == "session.not_found"
    for last_sign_in_at in (None, 1_000):  # a registration's login (no time), a sign-in's
        with pytest.raises(RequestError) as error:
            await rpc.call(dep.ctx.bus, FINISH_LOGIN, FinishLogin(**cookie, account_id="nobody",
                                                                  last_sign_in_at=last_sign_in_at))
        assert error.value.status == 404
        suspended = await dep.user(is_suspended=True)
        with pytest.raises(RequestError) as error:
            await rpc.call(dep.ctx.bus, FINISH_LOGIN, FinishLogin(**cookie, account_id=suspended,
                                                                  last_sign_in_at=last_sign_in_at))
        assert (error.value.status, error.value.code) == (401, "user.suspended")
        forged = {**cookie, "interaction_signature": "x" + cookie["interaction_signature"][1:]}
        for request in (FinishLogin(**forged, account_id=suspended, last_sign_in_at=last_sign_in_at),
                        GrantConsent(**forged)):
            with pytest.raises(RequestError) as error:
                await rpc.call(dep.ctx.bus, FINISH_LOGIN if isinstance(request, FinishLogin) else GRANT_CONSENT,
                               request)
            assert error.value.code == "session.not_found"
    details = await rpc.call(dep.ctx.bus, INTERACTION_DETAILS, InteractionRef(**cookie))
    assert details.login_account_id is None and not details.consent_granted  # nothing of it stayed
    await dep.ctx.pool.execute("UPDATE oidc_interactions SET expires_at = now() - interval '1 second'")
    user_id = await dep.user()
    for request in (FinishLogin(**cookie, account_id=user_id, last_sign_in_at=1_000), GrantConsent(**cookie)):
        with pytest.raises(RequestError) as error:  # an expired interaction is not found
            await rpc.call(dep.ctx.bus, FINISH_LOGIN if isinstance(request, FinishLogin) else GRANT_CONSENT, request)
        assert error.value.code == "session.not_found"
    assert await dep.ctx.pool.fetchval("SELECT last_sign_in_at FROM users WHERE id = $1", user_id) is None


def _qs(params: dict) -> str:
    from urllib.parse import urlencode

    return urlencode(params)


# ------------------------------------------------------------------ /token


async def code_for(dep, client_id: str, **overrides) -> str:
    user = await dep.user()
    async with dep.browser() as browser:
        final = await complete_interaction(browser, dep.ctx.bus, "/oidc/auth?" + _qs(auth_params(client_id, **overrides)), user, tenant_id="default")
    return query_of(final.headers["location"])["code"]


async def token_request(dep, data, auth=None, headers=None):
    """POST /oidc/token with a form body (a list of pairs may repeat a parameter)."""
    from urllib.parse import urlencode

    items = list(data.items()) if isinstance(data, dict) else data
    async with dep.browser() as http:
        return await http.post("/oidc/token", content=urlencode(items), auth=auth,
                               headers={"content-type": "application/x-www-form-urlencoded", **(headers or {})})


def expect(response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"] == error
    assert response.headers["cache-control"] == "no-store"


async def test_token_client_authentication_errors(dep, apps):
    web = apps["web"]
    base = {"grant_type": "client_credentials"}
    expect(await token_request(dep, base), 401, "invalid_client")  # no client at all
    expect(await token_request(dep, {**base, "client_id": "nope"}), 401, "invalid_client")
    response = await token_request(dep, base, auth=(web["id"], "wrong"))
    expect(response, 401, "invalid_client")
    assert response.headers["www-authenticate"].startswith("Basic")  # RFC 6749 §5.2
    expect(await token_request(dep, {**base, "client_id": web["id"], "client_secret": "wrong"}), 401, "invalid_client")
    # A confidential client without its secret.
    expect(await token_request(dep, {**base, "client_id": web["id"]}), 401, "invalid_client")
    # Two methods at once (RFC 6749 §2.3).
    expect(await token_request(dep, {**base, "client_secret": web["secret"]}, auth=(web["id"], web["secret"])),
           400, "invalid_request")
    expect(await token_request(dep, {**base, "client_id": apps["spa"]["id"]}, auth=(web["id"], web["secret"])),
           400, "invalid_request")
    response = await token_request(dep, base, headers={"authorization": "Basic !!!"})
    expect(response, 401, "invalid_client")


async def test_token_grant_type_errors(dep, apps):
    web, spa, m2m = apps["web"], apps["spa"], apps["m2m"]
    expect(await token_request(dep, {}, auth=(web["id"], web["secret"])), 400, "invalid_request")
    expect(await token_request(dep, {"grant_type": "password"}, auth=(web["id"], web["secret"])),
           400, "unsupported_grant_type")
    expect(await token_request(dep, {"grant_type": "client_credentials"}, auth=(web["id"], web["secret"])),
           400, "unauthorized_client")
    expect(await token_request(dep, {"grant_type": "client_credentials", "client_id": spa["id"]}),
           400, "unauthorized_client")
    expect(await token_request(dep, {"grant_type": "refresh_token", "refresh_token": "x"},
                               auth=(m2m["id"], m2m["secret"])), 400, "unauthorized_client")
    # Duplicated parameters (RFC 6749 §3.2).
    response = await token_request(dep, [("grant_type", "client_credentials"), ("grant_type", "client_credentials")],
                                   auth=(m2m["id"], m2m["secret"]))
    expect(response, 400, "invalid_request")


async def test_token_authorization_code_errors(dep, apps):
    spa = apps["spa"]
    base = {"grant_type": "authorization_code", "client_id": spa["id"], "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER}
    expect(await token_request(dep, {k: v for k, v in base.items()}), 400, "invalid_request")  # no code
    expect(await token_request(dep, {**base, "code": "not-a-code"}), 400, "invalid_grant")

    code = await code_for(dep, spa["id"])
    expect(await token_request(dep, {**base, "code": code, "redirect_uri": "https://rp.example/other"}),
           400, "invalid_grant")
    expect(await token_request(dep, {k: v for k, v in {**base, "code": code}.items() if k != "code_verifier"}),
           400, "invalid_grant")  # PKCE: no verifier
    expect(await token_request(dep, {**base, "code": code, "code_verifier": secrets.token_urlsafe(48)}),
           400, "invalid_grant")  # PKCE: wrong verifier
    expect(await token_request(dep, {**base, "code": code, "code_verifier": "short"}), 400, "invalid_grant")
    expect(await token_request(dep, {**base, "code": code, "client_id": apps["other"]["id"]}),
           400, "invalid_grant")  # another client's code
    expect(await token_request(dep, {**base, "code": code, "resource": API}), 400, "invalid_target")
    expect(await token_request(dep, [*{**base, "code": code}.items(), ("resource", API), ("resource", API + "2")]),
           400, "invalid_target")
    # The failed attempts did not consume the code; now it works, once.
    first = await token_request(dep, {**base, "code": code})
    assert first.status_code == 200, first.text
    replay = await token_request(dep, {**base, "code": code})
    expect(replay, 400, "invalid_grant")
    # RFC 6749 §4.1.2: the replay revoked what the code issued.
    refresh = await token_request(dep, {"grant_type": "refresh_token", "client_id": spa["id"],
                                        "refresh_token": first.json().get("refresh_token", "none")})
    expect(refresh, 400, "invalid_grant")
    async with dep.browser() as http:
        me = await http.get("/oidc/me", headers={"authorization": f"Bearer {first.json()['access_token']}"})
    assert me.status_code == 401
    assert any(e["reason"] == "authorization_code_replayed" for e in await dep.event_data("identity.token.revoked"))

    expired = await code_for(dep, spa["id"])
    await dep.ctx.pool.execute("UPDATE oidc_authorization_codes SET expires_at = now() - interval '1 second'"
                               " WHERE consumed_at IS NULL")
    expect(await token_request(dep, {**base, "code": expired}), 400, "invalid_grant")

    failed = await dep.event_data("identity.token.exchange_failed")
    assert any(e["grant_type"] == "authorization_code" and e["error"] == "invalid_grant" for e in failed)


async def test_a_code_whose_grant_is_gone_or_whose_user_is_suspended_is_refused(dep, apps):
    """The grant and the user are read with the code (one statement): a grant revoked or
    expired, a user suspended or deleted since the code was issued, and the code is refused;
    with both there, the ID token carries the user."""
    spa = apps["spa"]
    base = {"grant_type": "authorization_code", "client_id": spa["id"], "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER}
    for spoil in ("DELETE FROM oidc_grants WHERE id = $1",
                  "UPDATE oidc_grants SET expires_at = now() - interval '1 second' WHERE id = $1",
                  "UPDATE users SET is_suspended = true WHERE id = (SELECT account_id FROM oidc_grants WHERE id = $1)",
                  "DELETE FROM users WHERE id = (SELECT account_id FROM oidc_grants WHERE id = $1)"):
        code = await code_for(dep, spa["id"])
        grant_id = await dep.ctx.pool.fetchval(
            "SELECT grant_id FROM oidc_authorization_codes WHERE consumed_at IS NULL ORDER BY expires_at DESC LIMIT 1")
        await dep.ctx.pool.execute(spoil, grant_id)
        expect(await token_request(dep, {**base, "code": code}), 400, "invalid_grant")
    code = await code_for(dep, spa["id"])
    account_id = await dep.ctx.pool.fetchval(
        "SELECT account_id FROM oidc_authorization_codes WHERE consumed_at IS NULL ORDER BY expires_at DESC LIMIT 1")
    answer = await token_request(dep, {**base, "code": code})
    assert answer.status_code == 200, answer.text
    import base64
    import json

    payload = answer.json()["id_token"].split(".")[1]
    assert json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["sub"] == account_id


async def test_token_pkce_verifier_without_challenge(dep, apps):
    web = apps["web"]
    code = await code_for(dep, web["id"], code_challenge=None, code_challenge_method=None)
    response = await token_request(dep, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                         "code_verifier": VERIFIER}, auth=(web["id"], web["secret"]))
    expect(response, 400, "invalid_grant")
    response = await token_request(dep, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
                                   auth=(web["id"], web["secret"]))
    assert response.status_code == 200  # PKCE is optional for client_secret_basic clients


async def test_token_refresh_errors(dep, apps):
    spa = apps["spa"]
    code = await code_for(dep, spa["id"], scope="openid offline_access profile", prompt="consent")
    tokens = (await token_request(dep, {"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
                                        "code_verifier": VERIFIER, "client_id": spa["id"]})).json()
    base = {"grant_type": "refresh_token", "client_id": spa["id"]}
    expect(await token_request(dep, base), 400, "invalid_request")
    expect(await token_request(dep, {**base, "refresh_token": "unknown"}), 400, "invalid_grant")
    expect(await token_request(dep, {**base, "refresh_token": tokens["refresh_token"], "client_id": apps["other"]["id"]}),
           400, "invalid_grant")
    expect(await token_request(dep, {**base, "refresh_token": tokens["refresh_token"], "scope": "openid email"}),
           400, "invalid_scope")
    expect(await token_request(dep, {**base, "refresh_token": tokens["refresh_token"], "resource": API}),
           400, "invalid_target")  # not part of the authorization
    narrowed = await token_request(dep, {**base, "refresh_token": tokens["refresh_token"], "scope": "openid"})
    assert narrowed.status_code == 200 and narrowed.json()["scope"] == "openid"


async def test_token_client_credentials_errors(dep, apps):
    m2m = apps["m2m"]
    auth = (m2m["id"], m2m["secret"])
    expect(await token_request(dep, {"grant_type": "client_credentials", "resource": "https://nope.example"}, auth=auth),
           400, "invalid_target")
    expect(await token_request(dep, {"grant_type": "client_credentials", "resource": "relative"}, auth=auth),
           400, "invalid_target")
    expect(await token_request(dep, {"grant_type": "client_credentials", "scope": "a\"b"}, auth=auth),
           400, "invalid_scope")


async def test_userinfo_introspection_and_revocation_errors(dep, apps):
    async with dep.browser() as http:
        response = await http.get("/oidc/me")
        assert response.status_code == 401 and response.json()["error"] == "invalid_token"
        response = await http.get("/oidc/me", headers={"authorization": "Bearer nope"})
        assert response.status_code == 401 and 'error="invalid_token"' in response.headers["www-authenticate"]
        # Introspection is for confidential clients only (RFC 7662 §2.1).
        response = await http.post("/oidc/token/introspection", data={"token": "x", "client_id": apps["spa"]["id"]})
        assert response.status_code == 401 and response.json()["error"] == "invalid_client"
        response = await http.post("/oidc/token/introspection", data={"token": "x"},
                                   auth=(apps["web"]["id"], apps["web"]["secret"]))
        assert response.json() == {"active": False}
        response = await http.post("/oidc/token/revocation", data={"client_id": apps["spa"]["id"]})
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        response = await http.post("/oidc/token/revocation", data={"token": "x", "token_type_hint": "id_token",
                                                                    "client_id": apps["spa"]["id"]})
        assert response.json()["error"] == "unsupported_token_type"


async def test_end_session_errors(dep, apps):
    async with dep.browser() as http:
        response = await http.get("/oidc/session/end", params={"post_logout_redirect_uri": "https://rp.example/"})
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        response = await http.get("/oidc/session/end", params={"client_id": apps["spa"]["id"],
                                                               "post_logout_redirect_uri": "https://evil.example/"})
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        response = await http.get("/oidc/session/end", params={"id_token_hint": "a.b.c"})
        assert response.status_code == 400 and response.json()["error"] == "invalid_request"
        response = await http.post("/oidc/session/end/confirm", data={"xsrf": "forged.sig", "logout": "yes"})
        assert response.status_code == 400
        # Without a redirect URI the logout ends on the provider's own page.
        page = await http.get("/oidc/session/end")
        xsrf = page.text.split('name="xsrf" value="')[1].split('"')[0]
        response = await http.post("/oidc/session/end/confirm", data={"xsrf": xsrf, "logout": "yes"})
        assert response.headers["location"] == ISSUER + "/session/end/success"


def test_key_encryption_key_is_required_in_production():
    from tessera_identity.oidc.settings import DEVELOPMENT_KEY_ENCRYPTION_KEY, OidcSettings
    from tessera_kit.config import ConfigError, load_settings

    with pytest.raises(ConfigError, match="TESSERA_KEY_ENCRYPTION_KEY is not set"):
        load_settings(OidcSettings, {"TESSERA_ENV": "production"}).effective_key_encryption_key()
    with pytest.raises(ConfigError, match="shorter than 32"):
        load_settings(OidcSettings, {"TESSERA_ENV": "production",
                                     "TESSERA_KEY_ENCRYPTION_KEY": "short"}).effective_key_encryption_key()
    # Development: a known key, and a warning (not asserted: it is a log line).
    assert load_settings(OidcSettings, {}).effective_key_encryption_key() == DEVELOPMENT_KEY_ENCRYPTION_KEY
    real = "r" * 40
    assert load_settings(OidcSettings, {"TESSERA_ENV": "production",
                                        "TESSERA_KEY_ENCRYPTION_KEY": real}).effective_key_encryption_key() == real


def test_admin_client_must_be_real_in_production():
    from tessera_identity.oidc.settings import OidcSettings
    from tessera_kit.config import ConfigError, load_settings

    production = {"TESSERA_ENV": "production", "TESSERA_KEY_ENCRYPTION_KEY": "k" * 40}
    good_id, good_secret = "a1b2c3d4e5f6g7h8i9j0k", "s" * 32
    for env, complaint in [
        ({}, "TESSERA_ADMIN_CLIENT_ID is not set; TESSERA_ADMIN_CLIENT_SECRET is not set"),
        ({"TESSERA_ADMIN_CLIENT_ID": "REPLACE_ME", "TESSERA_ADMIN_CLIENT_SECRET": "REPLACE_ME"},
         "TESSERA_ADMIN_CLIENT_ID is a placeholder; TESSERA_ADMIN_CLIENT_SECRET is a placeholder"),
        ({"TESSERA_ADMIN_CLIENT_ID": good_id, "TESSERA_ADMIN_CLIENT_SECRET": "short-secret"},
         "TESSERA_ADMIN_CLIENT_SECRET is shorter than 32"),
        ({"TESSERA_ADMIN_CLIENT_ID": "admin", "TESSERA_ADMIN_CLIENT_SECRET": good_secret},
         "TESSERA_ADMIN_CLIENT_ID is shorter than 16"),
        ({"TESSERA_ADMIN_CLIENT_ID": good_id, "TESSERA_ADMIN_CLIENT_SECRET": "replace-me-with-32-random-characters"},
         "TESSERA_ADMIN_CLIENT_SECRET is a placeholder"),
    ]:
        with pytest.raises(ConfigError, match=complaint):
            load_settings(OidcSettings, {**production, **env}).check_admin_client()
    load_settings(OidcSettings, {**production, "TESSERA_ADMIN_CLIENT_ID": good_id,
                                 "TESSERA_ADMIN_CLIENT_SECRET": good_secret}).check_admin_client()
    # Development generates an admin client when none is given.
    load_settings(OidcSettings, {}).check_admin_client()
    # A placeholder key-encryption key is refused too, however long.
    with pytest.raises(ConfigError, match="TESSERA_KEY_ENCRYPTION_KEY is a placeholder"):
        load_settings(OidcSettings, {"TESSERA_ENV": "production", "TESSERA_KEY_ENCRYPTION_KEY":
                                     "REPLACE_ME_with_at_least_32_random_characters"}).effective_key_encryption_key()


async def test_identity_refuses_to_start_in_production_with_a_placeholder_admin_client(database_url, nats_url,
                                                                                        namespace):
    from tessera_kit.config import ConfigError

    env = {"TESSERA_ENV": "production", "TESSERA_ADMIN_CLIENT_ID": "REPLACE_ME",
           "TESSERA_ADMIN_CLIENT_SECRET": "REPLACE_ME"}
    with pytest.raises(ConfigError, match="placeholder"):
        async with start_deployment(database_url, nats_url, namespace, env=env):
            pass


def test_compose_never_falls_back_to_development_secrets():
    """`${VAR:-}` would start on identity's public development key; `${VAR:?message}` makes
    compose refuse to start until the secret is given."""
    from pathlib import Path

    import yaml

    root = Path(__file__).resolve().parents[3]
    compose = yaml.safe_load((root / "docker-compose.yml").read_text())
    identity_env = compose["services"]["identity"]["environment"]
    for name in ("TESSERA_ADMIN_CLIENT_ID", "TESSERA_ADMIN_CLIENT_SECRET", "TESSERA_KEY_ENCRYPTION_KEY"):
        assert identity_env[name].startswith("${" + name + ":?"), (name, identity_env[name])


def test_the_providers_secrets_stay_out_of_the_settings_repr():
    """Named like secrets, hidden without being listed (tessera_kit.config.is_secret_field)."""
    from tessera_identity.oidc.settings import OidcSettings

    secret = "s3cret-value-that-must-not-be-printed-anywhere"
    text = repr(OidcSettings(key_encryption_key=secret, cookie_secret=secret, admin_client_secret=secret,
                             admin_client_id="visible-admin-client-id"))
    assert secret not in text and "key_encryption_key=<redacted>" in text
    assert "admin_client_id='visible-admin-client-id'" in text
    assert "oidc_key_propagation_seconds=600" in text  # not every name with "key" in it


async def test_finish_login_records_the_sign_in_and_answers_the_user_and_client(dep, apps):
    """What experience's submit and consent needed three calls for: the sign-in time recorded
    with the login (not when the user may not sign in), the user and client answered with it,
    and GRANT_CONSENT saying whose consent it was and whether they have an application yet."""
    from tessera_events.contracts.oidc import FINISH_LOGIN, GRANT_CONSENT, FinishLogin, GrantConsent
    from tessera_kit import rpc
    from tessera_kit.errors import RequestError

    spa = apps["spa"]["id"]
    async with dep.browser() as browser:
        await browser.get("/oidc/auth", params=auth_params(spa, resource=API, scope="openid read"))
        cookie = interaction_cookies(browser, tenant_id="default")
    suspended = await dep.user(is_suspended=True)
    with pytest.raises(RequestError) as error:
        await rpc.call(dep.ctx.bus, FINISH_LOGIN, FinishLogin(**cookie, account_id=suspended, last_sign_in_at=1_000))
    assert error.value.code == "user.suspended"
    assert await dep.ctx.pool.fetchval("SELECT last_sign_in_at FROM users WHERE id = $1", suspended) is None
    user_id = await dep.user()
    await dep.ctx.pool.execute("""UPDATE oidc_interactions SET result = '{"error": "access_denied"}' WHERE uid = $1""",
                               cookie["interaction_cookie"])  # aborted before: the login replaces that
    finished = await rpc.call(dep.ctx.bus, FINISH_LOGIN, FinishLogin(**cookie, account_id=user_id, amr=["pwd"],
                                                                      last_sign_in_at=1_700_000_000_123))
    assert finished.redirect_to.endswith("/auth/" + cookie["interaction_cookie"])
    assert finished.user is not None and finished.user.id == user_id
    assert finished.user.last_sign_in_at == 1_700_000_000_123
    assert finished.application is not None and (finished.application.id, finished.application.type) == (spa, "SPA")
    assert finished.user.custom_data == {} and finished.user.is_suspended is False
    result = await dep.ctx.pool.fetchval("SELECT result FROM oidc_interactions WHERE uid = $1",
                                         cookie["interaction_cookie"])
    assert result["login"]["account_id"] == user_id and result["login"]["amr"] == ["pwd"] and "error" not in result
    granted = await rpc.call(dep.ctx.bus, GRANT_CONSENT, GrantConsent(**cookie))
    assert (granted.account_id, granted.client_id, granted.first_application) == (user_id, spa, True)
    result = await dep.ctx.pool.fetchval("SELECT result FROM oidc_interactions WHERE uid = $1",
                                         cookie["interaction_cookie"])
    assert result["consent"] is True and result["login"]["account_id"] == user_id  # both kept
    await dep.ctx.pool.execute("UPDATE users SET application_id = $2 WHERE id = $1", user_id, spa)
    granted = await rpc.call(dep.ctx.bus, GRANT_CONSENT, GrantConsent(**cookie))
    assert granted.first_application is False


async def _rendered(response) -> tuple[dict, bytes]:
    """The ASGI messages an answer sends: (start message, body)."""
    from tessera_kit.app import DirectResponse

    messages: list[dict] = []

    async def send(message: dict) -> None:
        messages.append(message)

    if isinstance(response, DirectResponse):
        await response.send(send)
    else:
        scope = {"type": "http", "method": "POST", "path": "/oidc/token", "headers": [], "query_string": b""}
        await response.to_asgi_response(app=None, request=None)(scope, None, send)
    return messages[0], b"".join(m.get("body", b"") for m in messages[1:])


@pytest.mark.parametrize("cors", [{}, {"access-control-allow-origin": "https://spa.example", "vary": "Origin",
                                       "access-control-expose-headers": "WWW-Authenticate"}])
async def test_the_token_answer_sent_as_it_is_equals_the_json_answer(cors) -> None:
    """The token endpoint's success answer skips Litestar's response pipeline: the same
    status, headers in the same order and the same JSON as `_json` gives."""
    from tessera_identity.oidc import routes

    body = {"access_token": "a.b.c", "expires_in": 3600, "token_type": "Bearer", "scope": "all"}
    direct_start, direct_body = await _rendered(routes._token_answer(body, cors))
    json_start, json_body = await _rendered(routes._json(body, cors))
    assert direct_body == json_body and msgspec.json.decode(direct_body) == body
    assert direct_start["status"] == json_start["status"] == 200
    assert direct_start["headers"] == json_start["headers"]
    # and as the routed handler answers it (the route the OpenAPI documents)
    routed_start, routed_body = await _rendered(routes._token_answer(body, cors).as_litestar())
    assert (routed_start["headers"], routed_body) == (json_start["headers"], json_body)


async def test_a_user_suspended_before_the_resumption_gets_no_session(dep, apps):
    """The login was finished, then the user was suspended: resuming answers access_denied to
    the client, and neither a session nor its SessionStarted event is written (the check, the
    session and the event are one statement); a user who may sign in gets both."""
    from tessera_events.contracts.oidc import FINISH_LOGIN, FinishLogin
    from tessera_kit import rpc

    spa = apps["spa"]["id"]
    for suspend in (True, False):
        user_id = await dep.user()
        async with dep.browser() as browser:
            await browser.get("/oidc/auth", params=auth_params(spa, scope="openid"))
            finished = await rpc.call(dep.ctx.bus, FINISH_LOGIN, FinishLogin(
                **interaction_cookies(browser, tenant_id="default"), account_id=user_id, amr=["pwd"], last_sign_in_at=1_000))
            if suspend:
                await dep.ctx.pool.execute("UPDATE users SET is_suspended = true WHERE id = $1", user_id)
            response = await browser.get(finished.redirect_to)
        sessions = await dep.ctx.pool.fetchval("SELECT count(*) FROM oidc_sessions WHERE account_id = $1", user_id)
        started = [e for e in await dep.event_data("identity.session.started") if e["user_id"] == user_id]
        if suspend:
            assert query_of(response.headers["location"])["error"] == "access_denied"
            assert (sessions, started) == (0, [])
        else:
            assert response.status_code == 303 and "error" not in query_of(response.headers["location"])
            assert sessions == 1 and len(started) == 1 and started[0]["amr"] == ["pwd"]

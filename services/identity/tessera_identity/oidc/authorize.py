"""The authorization endpoint (RFC 6749 §3.1, §4.1.1, §4.1.2; OIDC Core §3.1.2) and its
resumption after the sign-in experience (logto-behaviour.md §4.1).

`GET|POST /oidc/auth` validates the request in RFC order: first the client and its redirect
URI — errors there are shown, never redirected (RFC 6749 §4.1.2.1) — then everything else,
whose errors go back to the redirect URI. A request that needs the user (no session,
`prompt=login`, `max_age` exceeded) or their consent becomes an interaction (TTL 1 h) and a 303
to the sign-in pages with the signed `_interaction` cookie. `GET /oidc/auth/:uid` applies what
the experience submitted (rpc), creates the session and the grant, and answers the client with
`code`, `state` and `iss` (RFC 9207) — or starts the consent interaction Logto always has.
"""

from __future__ import annotations

import html
import re
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

import asyncpg
from litestar import Request, Response
from litestar.datastructures import Cookie

from tessera_events.identity import InteractionEnded, InteractionStarted, SessionEnded, SessionStarted
from tessera_identity.oidc import claims as claim_rules
from tessera_identity.oidc import store
from tessera_identity.oidc.clients import Client
from tessera_identity.oidc.crypto import digest, new_token
from tessera_identity.oidc.errors import OAuthError, invalid_request
from tessera_identity.oidc.keys import from_timestamp
from tessera_identity.oidc.params import Params, check_scope_syntax, read_params
from tessera_identity.oidc.provider import Provider
from tessera_identity.oidc.tokens import check_resource_syntax
from tessera_kit.ids import new_id

INTERACTION_COOKIE = "_interaction"
SESSION_COOKIE = "_session"
UI_COOKIE = "_logto"
SIGN_IN_PATH = "/sign-in"
REGISTER_PATH = "/register"
CONSENT_PATH = "/sign-in/consent"
REGISTER_SCREENS = frozenset({"register", "identifier:register"})  # later SDKs' `first_screen`
# The authorization request's own parameters (oidc-provider's list, RFC 8707's `resource`,
# Logto's extra ones): all an interaction keeps, hands to the sign-in pages and announces.
# Anything else a client sends (its client_secret, by mistake) is neither stored nor published.
AUTHORIZATION_PARAMS = frozenset({
    "acr_values", "claims", "claims_locales", "client_id", "code_challenge", "code_challenge_method",
    "display", "id_token_hint", "login_hint", "max_age", "nonce", "prompt", "redirect_uri", "registration",
    "request", "request_uri", "response_mode", "response_type", "scope", "state", "ui_locales",
    "resource", "interaction_mode", "first_screen",
})
INTERACTION_TTL = 3600  # Logto §5.4
SESSION_TTL = 14 * 86400
GRANT_TTL = 14 * 86400
CODE_TTL = 60  # oidc-provider's default
PROMPTS = frozenset({"none", "login", "consent"})
_CHALLENGE = re.compile(r"^[A-Za-z0-9\-._~]{43,128}$")


@dataclass
class AuthorizationRequest:
    """A validated authorization request, as stored with its interaction."""

    client_id: str
    redirect_uri: str
    response_mode: str
    state: str | None
    scopes: list[str]
    resources: list[str]
    prompts: list[str]
    max_age: int | None
    nonce: str | None
    code_challenge: str | None
    interaction_mode: str | None
    raw: dict[str, str] = field(default_factory=dict)
    fulfilled: list[str] = field(default_factory=list)  # prompts satisfied earlier in this flow

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "AuthorizationRequest":
        return cls(**data)

    @property
    def oidc_scopes(self) -> list[str]:
        return claim_rules.oidc_part(self.scopes)

    @property
    def resource_scopes(self) -> list[str]:
        return claim_rules.resource_part(self.scopes)


@dataclass
class Target:
    """Where the answer to the client goes (RFC 6749 §4.1.2; OAuth 2.0 Form Post Response Mode)."""

    redirect_uri: str
    response_mode: str
    state: str | None


# ------------------------------------------------------------------ responses


def redirect_to_client(provider: Provider, target: Target, values: dict[str, str]) -> Response:
    values = {**values, **({"state": target.state} if target.state else {}), "iss": provider.issuer}
    if target.response_mode == "form_post":
        inputs = "".join(
            f'<input type="hidden" name="{html.escape(k)}" value="{html.escape(v)}"/>' for k, v in values.items()
        )
        page = (
            "<!DOCTYPE html><html><head><title>Submitting...</title></head>"
            '<body onload="document.forms[0].submit()">'
            f'<form method="post" action="{html.escape(target.redirect_uri)}">{inputs}'
            '<noscript><button type="submit">Continue</button></noscript></form></body></html>'
        )
        return Response(page, status_code=200, media_type="text/html", headers={"cache-control": "no-store"})
    separator = "&" if "?" in target.redirect_uri else "?"
    return Response(
        None, status_code=303,
        headers={"location": target.redirect_uri + separator + urlencode(values), "cache-control": "no-store"},
    )


def error_to_client(provider: Provider, target: Target, error: OAuthError) -> Response:
    """RFC 6749 §4.1.2.1: error, error_description and state on the redirect URI."""
    values = {"error": error.error}
    if error.description:
        values["error_description"] = error.description
    return redirect_to_client(provider, target, values)


def cookie(provider: Provider, name: str, value: str | None, max_age: int, *, httponly: bool = True) -> Cookie:
    return Cookie(
        key=name, value=value if value is not None else "", path="/", max_age=max_age if value is not None else 0,
        httponly=httponly, samesite="lax", secure=provider.secure_cookies,
    )


def signed_cookie(provider: Provider, name: str, value: str | None, max_age: int) -> list[Cookie]:
    """koa's signed cookie: `<name>=<value>` and `<name>.sig=<signature>` (both cleared when
    value is None), as oidc-provider sets `_interaction` and `_session` for Logto."""
    signature = provider.cookies.signature(name, value) if value is not None else None
    return [cookie(provider, name, value, max_age), cookie(provider, f"{name}.sig", signature, max_age)]


def _interaction_mode(params: Params) -> str | None:
    """Logto 1.6's `interaction_mode=signUp`, or the `first_screen` later SDKs send instead."""
    mode = params.get("interaction_mode")
    if mode is None and params.get("first_screen") in REGISTER_SCREENS:
        return "signUp"
    return mode


# ------------------------------------------------------------------ validation


async def _client_and_redirect_uri(provider: Provider, params: Params) -> tuple[Client, str]:
    """RFC 6749 §4.1.2.1: a missing or invalid client or redirect URI is not redirected."""
    client_id = params.get("client_id")
    if client_id is None:
        raise invalid_request("missing required parameter 'client_id'")
    client = await provider.clients.get(client_id)
    if client is None:
        raise OAuthError("invalid_client", "client is invalid")
    redirect_uri = params.get("redirect_uri")
    if redirect_uri is None:
        raise invalid_request("missing required parameter 'redirect_uri'")
    if redirect_uri not in client.redirect_uris:
        client = await provider.clients.read_again_before_refusing(client) or client  # just registered?
    # OIDC Core §3.1.2.1: an exact match with a registered redirection URI.
    if redirect_uri not in client.redirect_uris:
        raise invalid_request("redirect_uri did not match any of the client's registered redirect_uris")
    return client, redirect_uri


async def _validate(provider: Provider, params: Params, client: Client, redirect_uri: str,
                    target: Target) -> AuthorizationRequest:
    # OIDC Core §6.1/§6.2: request objects are not supported.
    if "request" in params:
        raise OAuthError("request_not_supported", "request parameter is not supported")
    if "request_uri" in params:
        raise OAuthError("request_uri_not_supported", "request_uri parameter is not supported")
    if "registration" in params:
        raise OAuthError("registration_not_supported", "registration parameter is not supported")
    # RFC 6749 §3.1.1: response_type is required; only `code` (RFC 6749 §4.1.1).
    response_type = params.get("response_type")
    if response_type is None:
        raise invalid_request("missing required parameter 'response_type'")
    if response_type != "code":
        raise OAuthError("unsupported_response_type", "only response_type=code is supported")
    if "code" not in client.response_types:
        raise OAuthError("unauthorized_client", "this client may not use the authorization code flow")

    # RFC 6749 §3.3; OIDC Core §3.1.2.1: `openid` makes it an OpenID Connect request.
    scope_param = params.get("scope")
    check_scope_syntax(scope_param)
    scopes = claim_rules.split_scope(scope_param)
    if "openid" not in scopes:
        raise OAuthError("invalid_scope", "openid scope must be requested")

    # OIDC Core §3.1.2.1 prompt
    prompts = claim_rules.split_scope(params.get("prompt"))
    unknown = [p for p in prompts if p not in PROMPTS]
    if unknown:
        raise invalid_request(f"unsupported prompt value(s): {' '.join(unknown)}")
    if "none" in prompts and len(prompts) > 1:
        raise invalid_request("prompt none must only be used alone")

    max_age_param = params.get("max_age")
    max_age: int | None = None
    if max_age_param is not None:
        if not max_age_param.isdigit():
            raise invalid_request("max_age must be a non-negative integer")
        max_age = int(max_age_param)

    # RFC 7636 §4.3/§4.4.1; Logto §5.3: S256 only, required unless client_secret_basic.
    challenge = params.get("code_challenge")
    method = params.get("code_challenge_method")
    if challenge is None:
        if method is not None:
            raise invalid_request("code_challenge_method provided without code_challenge")
        if client.requires_pkce:
            raise invalid_request("PKCE is required for this client: provide code_challenge (S256)")
    else:
        if method != "S256":
            raise invalid_request("code_challenge_method must be S256 (plain is not supported)")
        if not _CHALLENGE.match(challenge):
            raise invalid_request("code_challenge must be 43-128 characters of [A-Za-z0-9-._~]")

    # RFC 8707 §2: resources must be absolute URIs of known resources, else invalid_target.
    resources = params.all("resource")
    for indicator in resources:
        check_resource_syntax(indicator)
    for indicator in resources:
        if await provider.resource_by_indicator(indicator) is None:
            raise OAuthError("invalid_target", f"unknown resource indicator {indicator}")
    resource_scopes = claim_rules.resource_part(scopes)
    if not resources and resource_scopes:
        # Without a resource the default one applies (Logto §5.6), for consent too.
        default = await provider.default_resource()
        if default is not None:
            resources = [default.indicator]
    if not resources:
        scopes = claim_rules.oidc_part(scopes)  # API scopes mean nothing without an API

    # OIDC Core §11: offline_access is ignored unless prompt contains consent; and it is only
    # meaningful for clients that may refresh.
    if "offline_access" in scopes and ("consent" not in prompts or "refresh_token" not in client.grant_types):
        scopes = [s for s in scopes if s != "offline_access"]

    return AuthorizationRequest(
        client_id=client.id, redirect_uri=redirect_uri, response_mode=target.response_mode,
        state=target.state, scopes=scopes, resources=resources, prompts=prompts, max_age=max_age,
        nonce=params.get("nonce"), code_challenge=challenge,
        interaction_mode=_interaction_mode(params),
        raw={k: v for k, v in params.as_dict().items() if k in AUTHORIZATION_PARAMS},
    )


# ------------------------------------------------------------------ the endpoint


async def authorize(provider: Provider, request: Request) -> Response:
    params = await read_params(request)
    try:
        client, redirect_uri = await _client_and_redirect_uri(provider, params)
        state = params.get("state")
    except OAuthError as error:
        return error.response()
    response_mode = params.get("response_mode") or "query"
    target = Target(redirect_uri, response_mode if response_mode in ("query", "form_post") else "query", state)
    try:
        if response_mode not in ("query", "form_post"):
            raise OAuthError("unsupported_response_mode", "response_mode must be query or form_post")
        auth_request = await _validate(provider, params, client, redirect_uri, target)
        session = await current_session(provider, request)
        return await decide(provider, client, auth_request, session, interaction_id=None)
    except OAuthError as error:
        return error_to_client(provider, target, error)


async def current_session(provider: Provider, request: Request, conn: asyncpg.Connection | None = None):
    session_id = provider.cookie_value(request, SESSION_COOKIE)
    if session_id is None:
        return None
    return await store.find_session(conn or provider.pool, provider.tenant_id, session_id)


def _missing(auth_request: AuthorizationRequest, grant) -> tuple[list[str], dict[str, list[str]]]:
    granted_oidc = set(grant["oidc_scopes"]) if grant else set()
    granted_resources = dict(grant["resource_scopes"] or {}) if grant else {}
    missing_oidc = [s for s in auth_request.oidc_scopes if s not in granted_oidc]
    missing_resources: dict[str, list[str]] = {}
    for indicator in auth_request.resources:
        have = set(granted_resources.get(indicator, []))
        lacking = [s for s in auth_request.resource_scopes if s not in have]
        if lacking or indicator not in granted_resources:
            missing_resources[indicator] = lacking
    return missing_oidc, missing_resources


# `decide` looks the grant up itself unless the caller already holds it (or knows there is none).
UNKNOWN_GRANT: Any = object()


async def decide(provider: Provider, client: Client, auth_request: AuthorizationRequest, session, *,
                 interaction_id: str | None, grant: Any = UNKNOWN_GRANT,
                 conn: asyncpg.Connection | None = None, pending: list | None = None) -> Response:
    """Which prompt the request still needs (OIDC Core §3.1.2.3, §3.1.2.4), or the code.
    `pending`: events (data, aggregate id) the caller has yet to write; the statement that
    starts the interaction or issues the code writes them first and empties the list."""
    target = Target(auth_request.redirect_uri, auth_request.response_mode, auth_request.state)
    fulfilled = set(auth_request.fulfilled)
    prompts = set(auth_request.prompts)
    reasons: list[str] = []
    if session is None:
        reasons.append("no_session")
    elif "login" in prompts and "login" not in fulfilled:
        reasons.append("login_prompt")
    elif (auth_request.max_age is not None and "login" not in fulfilled
          and time.time() - session["login_at"].timestamp() > auth_request.max_age):
        reasons.append("max_age")
    if reasons:
        if "none" in prompts:
            raise OAuthError("login_required", "End-User authentication is required")
        return await start_interaction(provider, auth_request, session, "login", reasons, conn=conn, pending=pending)

    if grant is UNKNOWN_GRANT:
        grant = await store.find_grant_for(conn or provider.pool, provider.tenant_id, session["id"], client.id)
    missing_oidc, missing_resources = _missing(auth_request, grant)
    if missing_oidc:
        reasons.append("op_scopes_missing")
    if missing_resources:
        reasons.append("rs_scopes_missing")
    if "consent" in prompts and "consent" not in fulfilled:
        reasons.append("consent_prompt")
    if reasons:
        if "none" in prompts:
            raise OAuthError("consent_required", "End-User consent is required")
        return await start_interaction(provider, auth_request, session, "consent", reasons,
                                       missing_oidc=missing_oidc, missing_resources=missing_resources, conn=conn,
                                       pending=pending)
    return await issue_code(provider, auth_request, session, grant, interaction_id, target, conn=conn,
                            pending=pending)


async def start_interaction(provider: Provider, auth_request: AuthorizationRequest, session, name: str,
                            reasons: list[str], *, missing_oidc: list[str] | None = None,
                            missing_resources: dict[str, list[str]] | None = None,
                            conn: asyncpg.Connection | None = None, pending: list | None = None) -> Response:
    uid = new_id()
    prompt = {"name": name, "reasons": reasons, "missing_oidc_scope": missing_oidc or [],
              "missing_resource_scopes": missing_resources or {}}
    session_id = session["id"] if session else None
    account_id = session["account_id"] if session else None
    row = store.interaction_row(
        tenant_id=provider.tenant_id, uid=uid, client_id=auth_request.client_id,
        params=auth_request.to_json(), prompt=prompt, session_id=session_id, session_account_id=account_id,
        expires_at=from_timestamp(time.time() + INTERACTION_TTL),
    )
    started = InteractionStarted(
        interaction_id=uid, application_id=auth_request.client_id, params=auth_request.raw,
        prompt={"name": name, "reasons": reasons, "details": {
            k: v for k, v in (("missingOIDCScope", missing_oidc), ("missingResourceScopes", missing_resources)) if v
        }},
        session_id=session_id, user_id=account_id,
    )
    # The interaction and its event in one statement: atomic by itself, or part of the
    # caller's transaction (a resumption starting the consent interaction).
    await provider.outbox.execute_with_events(conn or provider.pool, store.INSERT_INTERACTION, row,
                                              [*_take(pending), (started, uid)], tenant_id=provider.tenant_id)
    if name == "consent":
        location = CONSENT_PATH
    elif auth_request.interaction_mode == "signUp":
        location = REGISTER_PATH
    else:
        location = SIGN_IN_PATH
    return Response(
        None, status_code=303,
        headers={"location": location, "cache-control": "no-store"},
        cookies=[
            *signed_cookie(provider, INTERACTION_COOKIE, uid, INTERACTION_TTL),
            # For the sign-in pages (not secret, readable by their script), as Logto sets it.
            cookie(provider, UI_COOKIE, '{"appId":"%s"}' % auth_request.client_id, INTERACTION_TTL, httponly=False),
        ],
    )


async def issue_code(provider: Provider, auth_request: AuthorizationRequest, session, grant,
                     interaction_id: str | None, target: Target, *, conn: asyncpg.Connection | None = None,
                     pending: list | None = None) -> Response:
    """RFC 6749 §4.1.2: a short-lived, single-use code bound to client, redirect URI, PKCE
    challenge and nonce (with the events still `pending`, in one statement)."""
    code = new_token()
    args = store.code_args(
        code_hash=digest(code), tenant_id=provider.tenant_id, grant_id=grant["id"],
        client_id=auth_request.client_id, account_id=session["account_id"], session_id=session["id"],
        interaction_id=interaction_id, redirect_uri=auth_request.redirect_uri,
        scope=" ".join(auth_request.scopes), resources=auth_request.resources,
        code_challenge=auth_request.code_challenge, nonce=auth_request.nonce,
        auth_time=session["login_at"], expires_at=from_timestamp(time.time() + CODE_TTL),
    )
    await provider.outbox.execute_with_events(conn or provider.pool, store.INSERT_CODE, args, _take(pending),
                                              tenant_id=provider.tenant_id)
    return redirect_to_client(provider, target, {"code": code})


def _take(pending: list | None) -> list:
    """The pending events, the list emptied (they are written by the caller's statement)."""
    if not pending:
        return []
    taken, pending[:] = list(pending), []
    return taken


# ------------------------------------------------------------------ resumption


def _interaction_not_found() -> OAuthError:
    # oidc-provider's SessionNotFound: nothing to redirect to, the browser sees it.
    return invalid_request("interaction session not found")


async def resume(provider: Provider, request: Request, uid: str) -> Response:
    if provider.cookie_value(request, INTERACTION_COOKIE) != uid:
        return _interaction_not_found().response()
    # One transaction for the whole resumption (the interaction taken, the session, the grant,
    # the code or the consent interaction): each was a transaction of its own, three or four
    # commits per request. What an error answers is kept as before: the interaction is gone
    # and whatever was done before the error stands (an OAuthError is answered, not raised).
    async with provider.pool.acquire() as conn, conn.transaction():
        row = await store.take_interaction(conn, provider.tenant_id, uid)  # resumes once
        if row is None:
            return _interaction_not_found().response()
        login = (row["result"] or {}).get("login") or {}
        ended = InteractionEnded(
            interaction_id=uid, application_id=row["client_id"], params=row["params"].get("raw") or {},
            session_id=row["session_id"], user_id=login.get("account_id") or row["session_account_id"],
        )
        # InteractionEnded goes out first, with the statement that issues the code or starts the
        # next interaction; a login's session (and its event) comes before those, so then it
        # is written at once, and so is it wherever nothing else takes it (an error answered).
        pending: list = [(ended, uid)]
        if login:
            await provider.emit(conn, ended, aggregate_id=uid)
            pending.clear()
        auth_request = AuthorizationRequest.from_json(row["params"])
        target = Target(auth_request.redirect_uri, auth_request.response_mode, auth_request.state)
        client = await provider.clients.get(auth_request.client_id, conn=conn)
        if client is None or auth_request.redirect_uri not in client.redirect_uris:
            for data, aggregate_id in _take(pending):
                await provider.emit(conn, data, aggregate_id=aggregate_id)
            return OAuthError("invalid_client", "client is invalid").response()
        result = row["result"] or {}
        cookies: list[Cookie] = signed_cookie(provider, INTERACTION_COOKIE, None, 0)
        try:
            if result.get("error"):
                raise OAuthError(result["error"], result.get("error_description") or "")
            session = await current_session(provider, request, conn)
            fulfilled = set(auth_request.fulfilled)
            grant: Any = UNKNOWN_GRANT
            if login:
                session, is_new_session = await _sign_in(provider, conn, session, login, client.id, uid)
                cookies.extend(signed_cookie(provider, SESSION_COOKIE, session["id"], SESSION_TTL))
                fulfilled.add("login")
                if is_new_session:
                    grant = None  # nothing was granted to a session that did not exist
            if result.get("consent"):
                if session is None:
                    raise OAuthError("access_denied", "consent without a signed-in user")
                grant = await _grant(provider, conn, session, auth_request)
                fulfilled.add("consent")
            auth_request.fulfilled = sorted(fulfilled)
            response = await decide(provider, client, auth_request, session, interaction_id=uid, grant=grant,
                                    conn=conn, pending=pending)
        except OAuthError as error:
            response = error_to_client(provider, target, error)
        for data, aggregate_id in _take(pending):
            await provider.emit(conn, data, aggregate_id=aggregate_id)
    for item in cookies:
        if any(c.key == item.key for c in response.cookies):
            continue  # a new interaction (consent) just set its own
        response.set_cookie(item)
    return response


async def _sign_in(provider: Provider, conn: asyncpg.Connection, session, login: dict[str, Any], client_id: str,
                   interaction_id: str) -> tuple[dict[str, Any], bool]:
    """Create the OIDC session for the user the experience identified (or refresh the login
    time of the same user's session); another user's session in this browser ends.
    Returns (session, whether it is new)."""
    account_id = login["account_id"]
    amr = list(login.get("amr") or [])
    login_at = from_timestamp(login.get("ts") or time.time())
    if session is not None:
        # A session in this browser: the same user logs in again, or another one replaces it.
        if not await store.user_is_active(conn, provider.tenant_id, account_id):
            raise OAuthError("access_denied", "the user may not sign in")
        if session["account_id"] == account_id:
            await store.refresh_session_login(conn, session["id"], login_at, amr)
            return {**dict(session), "login_at": login_at, "amr": amr}, False
        await end_session_rows(conn, provider, session["id"], reason="replaced")
    # The check that the user may sign in, the session and its event in one statement.
    session_id = new_id()
    expires_at = from_timestamp(time.time() + SESSION_TTL)
    started = await provider.outbox.execute_with_events(
        conn, store.INSERT_SESSION_IF_ACTIVE,
        (provider.tenant_id, session_id, account_id, login_at, amr, expires_at),
        [(SessionStarted(user_id=account_id, session_id=session_id, application_id=client_id,
                         interaction_id=interaction_id, amr=amr), account_id)],
        tenant_id=provider.tenant_id, if_changed=True)
    if not started:
        raise OAuthError("access_denied", "the user may not sign in")
    return {"id": session_id, "account_id": account_id, "login_at": login_at, "amr": amr,
            "expires_at": expires_at}, True


async def _grant(provider: Provider, conn: asyncpg.Connection, session,
                 auth_request: AuthorizationRequest) -> dict[str, Any]:
    """Record consent: the grant of (session, client) gets everything the request asked for.
    Returns the grant as it now stands."""
    grant = await store.find_grant_for(conn, provider.tenant_id, session["id"], auth_request.client_id)
    oidc_scopes = list(dict.fromkeys([*(grant["oidc_scopes"] if grant else []), *auth_request.oidc_scopes]))
    resource_scopes: dict[str, list[str]] = dict(grant["resource_scopes"] or {}) if grant else {}
    for indicator in auth_request.resources:
        resource_scopes[indicator] = list(dict.fromkeys([*resource_scopes.get(indicator, []),
                                                        *auth_request.resource_scopes]))
    if grant is None:
        grant_id = new_id()
        await store.insert_grant(
            conn, tenant_id=provider.tenant_id, grant_id=grant_id, account_id=session["account_id"],
            client_id=auth_request.client_id, session_id=session["id"], oidc_scopes=oidc_scopes,
            resource_scopes=resource_scopes, expires_at=from_timestamp(time.time() + GRANT_TTL),
        )
    else:
        grant_id = grant["id"]
        await store.update_grant_scopes(conn, grant_id, oidc_scopes, resource_scopes)
    return {"id": grant_id, "account_id": session["account_id"], "client_id": auth_request.client_id,
            "session_id": session["id"], "oidc_scopes": oidc_scopes, "resource_scopes": resource_scopes}


async def end_session_rows(conn, provider: Provider, session_id: str, *, reason: str) -> str | None:
    """End a session; grants without offline_access end with it (oidc-provider's logout:
    only offline grants outlive the session). Returns the session's user."""
    ended = await store.delete_session(conn, provider.tenant_id, session_id)
    if ended is None:
        return None
    for grant in await store.grants_of_session(conn, provider.tenant_id, session_id):
        if "offline_access" not in grant["oidc_scopes"]:
            await store.delete_grant_and_tokens(conn, grant["id"])
    await provider.emit(conn, SessionEnded(user_id=ended["account_id"], session_id=session_id, reason=reason),
                        aggregate_id=ended["account_id"])
    return ended["account_id"]

"""The OpenID Provider under `/oidc` (logto-behaviour.md §5.1): thin Litestar handlers that
read parameters, apply CORS, and turn OAuthErrors into RFC error bodies."""

from __future__ import annotations

from typing import Awaitable, Callable

import msgspec
from litestar import Request, Response, asgi, get, route
from litestar.types import Receive, Scope, Send
from litestar.params import FromPath

from tessera_identity.oidc import authorize as authorization
from tessera_identity.oidc import end_session as logout
from tessera_identity.oidc import revocation, userinfo as userinfo_endpoint
from tessera_identity.oidc.client_auth import authenticate_client
from tessera_identity.oidc.clients import Client, origin_of
from tessera_identity.oidc.errors import NO_STORE, OAuthError, invalid_request
from tessera_identity.oidc.grants import authorization_code, client_credentials, refresh_token
from tessera_identity.oidc.params import Params, read_params
from tessera_identity.oidc.provider import Provider, provider_for, provider_of
from tessera_identity.ratelimits import RateLimits, rate_limits
from tessera_kit.app import DirectResponse
from tessera_kit.outage import is_outage, retry_after_headers
from tessera_kit.http import public_origin
from tessera_kit.ratelimit import TooManyRequests, client_ip
from tessera_kit.logging import get_logger
from tessera_kit.text_guard import InvalidText, error_body

log = get_logger(__name__)
TAGS = ["OIDC"]


def per_method(name: str):
    """Operation ids must be unique per method: `OidcAuthorizeGet`, `OidcAuthorizePost`."""
    return lambda _handler, method, _path: f"{name}{method.capitalize()}"
GRANTS: dict[str, Callable[[Provider, Client, Params], Awaitable]] = {
    "authorization_code": authorization_code.exchange,
    "refresh_token": refresh_token.refresh,
    "client_credentials": client_credentials.issue,
}
PUBLIC_CORS = {"access-control-allow-origin": "*"}


# ------------------------------------------------------------------ CORS (Logto §1.9)


def _origin_allowed(provider: Provider, request: Request, client: Client | None, origin: str) -> bool:
    """The request's own origin, the client's corsAllowedOrigins and its redirect URIs' origins."""
    scheme, host = public_origin(request)
    if origin.lower() in (f"{scheme}://{host}".lower(), origin_of(provider.endpoint)):
        return True
    return client is not None and client.allows_origin(origin)


def _cors(provider: Provider, request: Request, client: Client | None) -> dict[str, str]:
    origin = request.headers.get("origin")
    if not origin:
        return {}
    if not _origin_allowed(provider, request, client, origin):
        raise invalid_request(f"origin {origin} is not allowed for this client")
    return {"access-control-allow-origin": origin, "vary": "Origin",
            "access-control-expose-headers": "WWW-Authenticate"}


def _preflight(request: Request, methods: str) -> Response:
    """Preflights are answered for any origin: the client is known only on the real request,
    which is where its origins are checked."""
    origin = request.headers.get("origin") or "*"
    return Response(None, status_code=204, headers={
        "access-control-allow-origin": origin,
        "access-control-allow-methods": methods,
        "access-control-allow-headers": request.headers.get("access-control-request-headers")
        or "Authorization, Content-Type",
        "access-control-max-age": "3600",
        "vary": "Origin",
    })


def _json(body, headers: dict[str, str] | None = None, status: int = 200) -> Response:
    return Response(body, status_code=status, headers={**NO_STORE, **(headers or {})},
                    media_type="application/json")


_NO_STORE_RAW = [(name.encode(), value.encode()) for name, value in NO_STORE.items()]
_JSON_TYPE = (b"content-type", b"application/json")


def _token_answer(body: dict, cors: dict[str, str]) -> DirectResponse:
    """What `_json` answers (the same headers in the same order, the same JSON), sent as it is:
    the token endpoint's success answer is its most frequent one."""
    headers = [*_NO_STORE_RAW, *((name.encode("latin-1"), value.encode("latin-1")) for name, value in cors.items()),
               _JSON_TYPE]
    return DirectResponse(200, headers, msgspec.json.encode(body))


async def _guard(request: Request, work: Callable[[], Awaitable[Response]],
                 cors: dict[str, str] | None = None) -> Response:
    """RFC errors for anything that goes wrong, never Logto's {code, message} body; with the
    CORS headers already granted, so a browser client can read the error too."""
    try:
        return await work()
    except OAuthError as error:
        return error.response(cors)
    except InvalidText as error:  # NUL or invalid UTF-8 in the body: the kit's edge rule
        return invalid_request(error_body("/oidc", error)["error_description"]).response(cors)
    except Exception as error:
        if is_outage(error):  # the database or NATS is down: try again shortly (RFC 6749 §4.1.2.1)
            log.warning("oidc endpoint: dependency unavailable", path=request.url.path, error=repr(error))
            return OAuthError("temporarily_unavailable", "the service is unavailable, try again later",
                              status=503, headers=retry_after_headers()).response(cors)
        log.exception("oidc endpoint failed", path=request.url.path)
        return OAuthError("server_error", "unexpected error", status=500).response()


# ------------------------------------------------------------------ discovery and keys


def _static_document(path: str, body_of: Callable[[Provider], bytes], name: str):
    """A raw ASGI handler for the public, precomputed documents: no request parsing, no
    dependency injection — discovery is the most requested path of an OP (and is cached by
    nobody in between). GET/HEAD answer the bytes, OPTIONS the preflight."""

    @asgi(path, is_mount=False, include_in_schema=False, name=name, copy_scope=False)
    async def handler(scope: Scope, receive: Receive, send: Send) -> None:
        method = scope["method"]
        if method == "OPTIONS":
            response = _preflight(Request(scope, receive), "GET")
        elif method in ("GET", "HEAD"):
            response = Response(body_of(provider_for(scope["app"].state.ctx)), status_code=200,
                                media_type="application/json", headers=PUBLIC_CORS)
        else:
            response = Response("Method Not Allowed", status_code=405, media_type="text/plain",
                                headers={"allow": "GET, HEAD, OPTIONS"})
        await response.to_asgi_response(app=None, request=Request(scope, receive))(scope, receive, send)

    return handler


discovery = _static_document("/oidc/.well-known/openid-configuration", lambda p: p.discovery_json, "oidc-discovery")
jwks = _static_document("/oidc/jwks", lambda p: p.keys.jwks_json, "oidc-jwks")


# ------------------------------------------------------------------ authorization


@route("/oidc/auth", http_method=["GET", "POST"], operation_id=per_method("OidcAuthorize"), tags=TAGS)
async def authorize(request: Request) -> Response:
    return await _guard(request, lambda: authorization.authorize(provider_of(request), request))


@get("/oidc/auth/{uid:str}", operation_id="OidcResume", tags=TAGS)
async def resume(request: Request, uid: FromPath[str]) -> Response:
    return await _guard(request, lambda: authorization.resume(provider_of(request), request, uid))


# ------------------------------------------------------------------ token


@route("/oidc/token", http_method=["POST"], operation_id="OidcToken", tags=TAGS)
async def token(request: Request) -> Response:
    response = await token_response(request)
    return response.as_litestar() if isinstance(response, DirectResponse) else response


async def token_response(request: Request) -> Response | DirectResponse:
    """POST /oidc/token. Served by the kit before Litestar's router (DIRECT_ROUTES: the most
    requested path of an OP, whose routing and signature parsing cost as much as its JSON);
    the route above documents it and keeps its body cap."""
    provider = provider_of(request)
    grant_type: str | None = None
    client: Client | None = None
    cors: dict[str, str] = {}

    async def work() -> Response:
        nonlocal grant_type, client
        params = await read_params(request)
        # RFC 6749 §4.1.3, §4.4.2, §6: grant_type is required.
        grant_type = params.get("grant_type")
        client = await authenticate_client(provider, request, params)
        cors.update(_cors(provider, request, client))
        if grant_type is None:
            raise invalid_request("missing required parameter 'grant_type'")
        grant = GRANTS.get(grant_type)
        if grant is None:
            raise OAuthError("unsupported_grant_type", f"unsupported grant_type '{grant_type}'")
        if grant_type not in client.grant_types:
            raise OAuthError("unauthorized_client", f"this client may not use the {grant_type} grant")
        token_set = await grant(provider, client, params)
        return _token_answer(token_set.body(), cors)

    limits = rate_limits(provider.ctx)
    ip = client_ip(request.headers, request.client.host if request.client else None)
    try:
        limits.token_refused(ip)  # memory only: a successful request costs no round trip
    except TooManyRequests as refused:
        return too_many_token_failures(refused).response()
    response = await _guard(request, work, cors)
    if response.status_code >= 400 and response.status_code != 503:
        await _exchange_failed(provider, grant_type, client, response)
        if response.status_code < 500:
            response = await _count_token_failure(limits, ip) or response
    return response


def too_many_token_failures(refused: TooManyRequests) -> OAuthError:
    """oidc-provider has no rate limiter of its own; this is the answer its `InvalidRequest`
    gives with a status of 429 (RFC 6749 §5.2 names no rate-limit error; `slow_down` is the
    device flow's polling answer, `temporarily_unavailable` the authorization endpoint's)."""
    seconds = refused.retry_after
    return OAuthError("invalid_request", f"too many failed token requests; retry after {seconds} seconds",
                      status=429, headers={"retry-after": str(seconds)})


async def _count_token_failure(limits: RateLimits, ip: str | None) -> Response | None:
    """This failure counts against the address; the one over the limit is answered 429, and
    so is the address's next request, before any work, until the limit has room again."""
    try:
        await limits.count_token_failure(ip)
    except TooManyRequests as refused:
        return too_many_token_failures(refused).response()
    except Exception as error:  # the limit is a defence, not a reason to fail the answer
        log.warning("token failure not counted", error=str(error))
    return None


async def _exchange_failed(provider: Provider, grant_type: str | None, client: Client | None,
                           response: Response) -> None:
    from tessera_events.identity import TokenExchangeFailed

    body = response.content if isinstance(response.content, dict) else {}
    # Batched (no state changed): a flood of bad requests must not cost a transaction each.
    await provider.emit_grouped(TokenExchangeFailed(
        grant_type=grant_type or "unknown", error=str(body.get("error", "server_error")),
        application_id=client.id if client else None,
        error_description=body.get("error_description"),
    ), aggregate_id=client.id if client else None)


@route("/oidc/token/revocation", http_method=["POST"], operation_id="OidcRevoke", tags=TAGS)
async def revoke(request: Request) -> Response:
    provider = provider_of(request)

    cors: dict[str, str] = {}

    async def work() -> Response:
        params = await read_params(request)
        client = await authenticate_client(provider, request, params)  # RFC 7009 §2.1
        cors.update(_cors(provider, request, client))
        await revocation.revoke_token(provider, client, params.require("token"), params.get("token_type_hint"))
        # oidc-provider answers an empty body (koa's `ctx.body = ''`), not a JSON `null`.
        return Response(b"", status_code=200, media_type="text/plain; charset=utf-8", headers={**NO_STORE, **cors})

    return await _guard(request, work, cors)


@route("/oidc/token/introspection", http_method=["POST"], operation_id="OidcIntrospect", tags=TAGS)
async def introspect(request: Request) -> Response:
    provider = provider_of(request)

    cors: dict[str, str] = {}

    async def work() -> Response:
        params = await read_params(request)
        # RFC 7662 §2.1: the caller must be authorized: confidential clients only.
        client = await authenticate_client(provider, request, params, allow_public=False)
        cors.update(_cors(provider, request, client))
        body = await userinfo_endpoint.introspect(provider, client, params.require("token"),
                                                  params.get("token_type_hint"))
        return _json(body, cors)

    return await _guard(request, work, cors)


# ------------------------------------------------------------------ userinfo


def _bearer(request: Request, params: Params) -> str:
    """RFC 6750 §2.1 header or §2.2 form body; never both (§2)."""
    header = request.headers.get("authorization")
    body_token = params.get("access_token") if request.method == "POST" else None
    if header and body_token:
        raise invalid_request("access token must only be provided using one mechanism")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise OAuthError("invalid_token", "authorization header must be Bearer", status=401,
                             headers={"www-authenticate": 'Bearer realm="oidc"'})
        return value.strip()
    if body_token:
        return body_token
    raise OAuthError("invalid_token", "no access token provided", status=401,
                     headers={"www-authenticate": 'Bearer realm="oidc"'})


@route("/oidc/me", http_method=["GET", "POST"], operation_id=per_method("OidcUserinfo"), tags=TAGS)
async def me(request: Request) -> Response:
    provider = provider_of(request)

    async def work() -> Response:
        params = await read_params(request) if request.method == "POST" else Params([])
        claims, client_id = await userinfo_endpoint.userinfo(provider, _bearer(request, params))
        cors = _cors(provider, request, await provider.clients.get(client_id)) if request.headers.get("origin") else {}
        return _json(claims, cors)

    return await _guard(request, work)


# ------------------------------------------------------------------ logout


@route("/oidc/session/end", http_method=["GET", "POST"], operation_id=per_method("OidcEndSession"), tags=TAGS)
async def end_session(request: Request) -> Response:
    provider = provider_of(request)

    async def work() -> Response:
        return await logout.end_session(provider, await read_params(request), request)

    return await _guard(request, work)


@route("/oidc/session/end/confirm", http_method=["POST"], operation_id="OidcEndSessionConfirm", tags=TAGS)
async def end_session_confirm(request: Request) -> Response:
    provider = provider_of(request)

    async def work() -> Response:
        return await logout.confirm(provider, await read_params(request), request)

    return await _guard(request, work)


@get("/oidc/session/end/success", operation_id="OidcEndSessionSuccess", tags=TAGS, sync_to_thread=False)
def end_session_success() -> Response:
    return Response(logout.SUCCESS_PAGE, media_type="text/html")


# ------------------------------------------------------------------ preflights


def _preflight_route(path: str, methods: str, name: str):
    @route(path, http_method=["OPTIONS"], operation_id=name, include_in_schema=False, sync_to_thread=False)
    def handler(request: Request) -> Response:
        return _preflight(request, methods)

    return handler


DIRECT_ROUTES = {("POST", "/oidc/token"): token_response}

# Preflight handlers first: Litestar adds its own OPTIONS handler to a path registered without one.
handlers: list = [
    _preflight_route("/oidc/token", "POST", "OidcTokenPreflight"),
    _preflight_route("/oidc/token/revocation", "POST", "OidcRevokePreflight"),
    _preflight_route("/oidc/token/introspection", "POST", "OidcIntrospectPreflight"),
    _preflight_route("/oidc/me", "GET, POST", "OidcUserinfoPreflight"),
    discovery, jwks, authorize, resume, token, revoke, introspect, me, end_session,
    end_session_confirm, end_session_success,
]

"""Management API authentication (Logto's koa-auth, logto-behaviour.md §1.8).

Every Management API request carries `Authorization: Bearer <JWT>` issued by identity for the
resource `https://default.logto.app/api`. The checks, in Logto's order:
1. no header                      -> 401 auth.authorization_header_missing
2. not `Bearer `                  -> 401 auth.authorization_token_type_not_supported
3. signature (identity's JWKS), iss, aud, exp/nbf/iat
                                  -> 401 auth.unauthorized, data: the error text
   no `sub`                       -> 401 auth.jwt_sub_missing
4. `scope` lacks `all`            -> 403 auth.forbidden
The verified caller goes to the service inside the gateway's signed assertion
(`tessera_kit.assertion`), never as a plain header.

When identity's JWKS cannot be fetched and no keys are known, the answer is 503
`service.unavailable` (service "identity"), not 401: the token may be perfectly good, and a
client that sees 401 would throw it away; 503 says "try again" and names the culprit.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import time
from dataclasses import dataclass
from typing import Any, Callable

import httpx
from joserfc import jwk, jwt
from joserfc.errors import JoseError
from joserfc.jwt import JWTClaimsRegistry

from tessera_events import SYSTEM, Actor
from tessera_kit.assertion import ASSERTION_HEADER, AssertionSigner
from tessera_kit.context import current_request_id, new_request_id
from tessera_kit.errors import RequestError
from tessera_kit.logging import get_logger

log = get_logger(__name__)

# Algorithms identity may sign with: ES384 for its default P-384 key (Logto §5.2), RS256 for
# RSA keys, ES256 for P-256. Symmetric algorithms are never accepted (the JWKS is public).
ALLOWED_ALGORITHMS = frozenset({"ES256", "ES384", "RS256"})
_KEY_TYPES = {"ES256": "EC", "ES384": "EC", "RS256": "RSA"}

MANAGEMENT_SCOPE = "all"
# A token without `exp` never expires by itself; still re-verify it now and then.
_MAX_CACHE_SECONDS = 300.0


@dataclass(frozen=True, slots=True)
class _Verified:
    caller: Actor  # a user or an application
    has_management_scope: bool
    expires_at: float  # wall-clock seconds


def _error_text(error: JoseError) -> str:
    return f"{error.error}: {error.description}" if error.description else error.error


def unauthorized(reason: str) -> RequestError:
    return RequestError("auth.unauthorized", 401, data=reason)


class JwksUnavailable(Exception):
    pass


class JwksCache:
    """identity's public keys by `kid`, fetched lazily and refetched when a `kid` is unknown
    (at most once per `refresh_interval`) or when older than `max_age`."""

    def __init__(
        self,
        url: str,
        http: httpx.AsyncClient,
        *,
        refresh_interval: float = 10.0,
        max_age: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.url = url
        self._http = http
        self._refresh_interval = refresh_interval
        self._max_age = max_age
        self._clock = clock
        self._keys: dict[str | None, Any] | None = None
        self._fetched_at = float("-inf")  # last success
        self._attempted_at = float("-inf")  # last attempt, successful or not
        self._lock = asyncio.Lock()
        self.generation = 0  # bumped whenever a key disappears (cached tokens must go)
        self.fetches = 0

    async def key(self, kid: str | None) -> Any | None:
        now = self._clock()
        if self._keys is None or now - self._fetched_at >= self._max_age:
            await self._refresh(min_gap=min(1.0, self._refresh_interval))
        key = self._lookup(kid)
        if key is None and kid is not None:
            # Identity may have rotated its keys: look again, but not more often than allowed.
            await self._refresh(min_gap=self._refresh_interval)
            key = self._lookup(kid)
        return key

    def _lookup(self, kid: str | None) -> Any | None:
        keys = self._keys
        assert keys is not None
        if kid is None:  # like jose's local JWKS: without a kid, only an unambiguous key will do
            return next(iter(keys.values())) if len(keys) == 1 else None
        return keys.get(kid)

    async def _refresh(self, *, min_gap: float) -> None:
        started = self._clock()
        async with self._lock:
            if self._attempted_at >= started:
                # Someone refreshed while we waited for the lock; use their result.
                if self._keys is None:
                    raise JwksUnavailable("no keys")
                return
            if self._clock() - self._attempted_at < min_gap:
                if self._keys is None:
                    raise JwksUnavailable("no keys (retrying shortly)")
                return
            self._attempted_at = self._clock()
            try:
                keys = await self._fetch()
            except JwksUnavailable:
                if self._keys is None:
                    raise
                return  # keep the keys we have; identity may be restarting
            if self._keys is not None and not set(self._keys) <= set(keys):
                self.generation += 1
            self._keys = keys
            self._fetched_at = self._clock()

    async def _fetch(self) -> dict[str | None, Any]:
        if not self.url:
            raise JwksUnavailable("no JWKS URL configured")
        self.fetches += 1
        try:
            response = await self._http.get(self.url)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.warning("jwks fetch failed", url=self.url, error=str(error))
            raise JwksUnavailable(str(error)) from error
        keys: dict[str | None, Any] = {}
        for data in document.get("keys", []) if isinstance(document, dict) else []:
            # Only public asymmetric keys; anything else in a JWKS is ignored, never trusted.
            if not isinstance(data, dict) or data.get("kty") not in ("EC", "RSA") or "d" in data:
                continue
            try:
                keys[data.get("kid")] = jwk.import_key(data)
            except (JoseError, ValueError, TypeError) as error:
                log.warning("jwks key skipped", kid=data.get("kid"), error=str(error))
        return keys


def _b64url_json(segment: str) -> dict[str, Any]:
    padded = segment + "=" * (-len(segment) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded))
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


class TokenVerifier:
    """Checks a bearer token and remembers verified ones until they expire."""

    def __init__(
        self,
        jwks: JwksCache,
        *,
        issuer: str,
        audience: str,
        leeway: int = 0,
        cache_size: int = 10_000,
        wall_clock: Callable[[], float] = time.time,
    ):
        self.jwks = jwks
        self._issuer = issuer
        self._audience = audience
        self._leeway = leeway
        self._cache_size = cache_size
        self._wall_clock = wall_clock
        self._cache: dict[str, _Verified] = {}
        self._cache_generation = jwks.generation

    async def verify(self, token: str) -> _Verified:
        if self._cache_generation != self.jwks.generation:
            self._cache.clear()  # a signing key was withdrawn
            self._cache_generation = self.jwks.generation
        cached = self._cache.get(token)
        now = self._wall_clock()
        if cached is not None:
            if cached.expires_at > now:
                return cached
            del self._cache[token]

        verified = await self._verify_uncached(token, now)
        self._remember(token, verified, now)
        return verified

    async def _verify_uncached(self, token: str, now: float) -> _Verified:
        try:
            header = _b64url_json(token.split(".", 1)[0])
        except (ValueError, binascii.Error, UnicodeDecodeError):
            raise unauthorized("Invalid Compact JWS") from None
        alg = header.get("alg")
        if alg not in ALLOWED_ALGORITHMS:
            raise unauthorized(f"unsupported_algorithm: {alg!r} is not allowed")
        kid = header.get("kid")
        if not isinstance(kid, (str, type(None))):
            raise unauthorized("invalid_header_value: kid")
        try:
            key = await self.jwks.key(kid)
        except JwksUnavailable:
            raise RequestError("service.unavailable", 503, service="identity") from None
        if key is None:
            raise unauthorized("no applicable key found in the JSON Web Key Set")
        if key.key_type != _KEY_TYPES[alg]:
            raise unauthorized(f"key {kid!r} cannot verify {alg}")
        try:
            claims = jwt.decode(token, key, algorithms=[alg]).claims
            JWTClaimsRegistry(
                now=int(now),
                leeway=self._leeway,
                iss={"essential": True, "value": self._issuer},
                aud={"essential": True, "value": self._audience},
            ).validate(claims)
        except JoseError as error:
            raise unauthorized(_error_text(error)) from None
        sub = claims.get("sub")
        if not sub or not isinstance(sub, str):
            raise RequestError("auth.jwt_sub_missing", 401)
        if not sub.isprintable():  # it becomes a header value upstream
            raise unauthorized("invalid_claim: sub")
        scope = claims.get("scope")
        scopes = scope.split(" ") if isinstance(scope, str) else ()
        caller = Actor(type="application" if sub == claims.get("client_id") else "user", id=sub)
        exp = claims.get("exp")
        expires_at = min(float(exp), now + _MAX_CACHE_SECONDS) if exp is not None else now + _MAX_CACHE_SECONDS
        return _Verified(caller, MANAGEMENT_SCOPE in scopes, expires_at + self._leeway)

    def _remember(self, token: str, verified: _Verified, now: float) -> None:
        cache = self._cache
        if len(cache) >= self._cache_size:
            for stale in [t for t, v in cache.items() if v.expires_at <= now]:
                del cache[stale]
            # Still full: forget the oldest tenth (dicts keep insertion order).
            if len(cache) >= self._cache_size:
                for oldest in list(cache)[: max(1, self._cache_size // 10)]:
                    del cache[oldest]
        cache[token] = verified


class ManagementAuth:
    """Koa-auth for one audience: the Management API's, or (`users_only`) the admin tenant's
    Me API, which a machine's token never reaches (403 `auth.forbidden`)."""

    def __init__(self, verifier: TokenVerifier, *, dev_auth: bool = False, users_only: bool = False):
        self._verifier = verifier
        self._dev_auth = dev_auth
        self._users_only = users_only

    async def authenticate(self, authorization: bytes | None, development_user_id: bytes | None) -> Actor:
        """The caller of a Management API request, or a RequestError to answer with."""
        if self._dev_auth and development_user_id:
            # Logto's test switch: the header names the user, no token needed.
            return Actor(type="user", id=development_user_id.decode("utf-8", "replace"))
        if not authorization:
            raise RequestError("auth.authorization_header_missing", 401)
        if not authorization.startswith(b"Bearer "):
            raise RequestError(
                "auth.authorization_token_type_not_supported", 401,
                data={"supportedTypes": ["Bearer"]},
            )
        token = authorization[7:].strip().decode("latin-1")
        verified = await self._verifier.verify(token)
        if not verified.has_management_scope:
            raise RequestError("auth.forbidden", 403)
        if self._users_only and verified.caller.type != "user":
            raise RequestError("auth.forbidden", 403)
        return verified.caller


class InternalCalls(httpx.Auth):
    """The gateway's own requests to its services (identity's JWKS, the OpenAPI documents) carry
    an assertion too, as the system; requests to any other origin carry none."""

    def __init__(self, signer: AssertionSigner, upstream_urls: list[str]):
        self._signer = signer
        self._origins = {_origin(httpx.URL(url)) for url in upstream_urls}

    def auth_flow(self, request: httpx.Request):
        if _origin(request.url) in self._origins:
            request_id = current_request_id() or new_request_id()
            request.headers["x-request-id"] = request_id
            request.headers[ASSERTION_HEADER.decode()] = self._signer.sign(
                request.method, request.url.raw_path, SYSTEM, request_id.encode()).decode()
        yield request


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port

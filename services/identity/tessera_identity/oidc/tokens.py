"""Issuing tokens: JWT access tokens (RFC 9068), opaque access tokens, refresh tokens and
ID tokens (OIDC Core §2), with the TTLs of logto-behaviour.md §5.4."""

from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Mapping

import asyncpg

from tessera_events.contracts.rbac import ResourceInfo
from tessera_identity.oidc import claims as claim_rules
from tessera_identity.oidc import store
from tessera_identity.oidc.clients import Client
from tessera_identity.oidc.crypto import digest, half_hash, new_token
from tessera_identity.oidc.errors import OAuthError
from tessera_identity.oidc.keys import from_timestamp
from tessera_identity.oidc.provider import Provider
from tessera_kit.ids import new_id

OPAQUE_ACCESS_TOKEN_TTL = 3600
CLIENT_CREDENTIALS_OPAQUE_TTL = 600
ROTATION_LIFETIME_CAP = 365.25 * 86400  # oidc-provider stops rotating after a year


def new_jti() -> str:
    return secrets.token_urlsafe(16)


@dataclass
class TokenSet:
    """A successful token response (RFC 6749 §5.1; OIDC Core §3.1.3.3)."""

    access_token: str
    expires_in: int
    scope: str
    id_token: str | None = None
    refresh_token: str | None = None
    resource: str | None = None
    kinds: list[str] = field(default_factory=list)

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "access_token": self.access_token,
            "expires_in": self.expires_in,
            "token_type": "Bearer",
        }
        if self.scope:  # oidc-provider leaves `scope` out when nothing was granted
            body["scope"] = self.scope
        if self.id_token:
            body["id_token"] = self.id_token
        if self.refresh_token:
            body["refresh_token"] = self.refresh_token
        return body


def invalid_target(description: str = "resource indicator is missing, or unknown") -> OAuthError:
    return OAuthError("invalid_target", description)


def check_resource_syntax(indicator: str) -> None:
    """RFC 8707 §2: an absolute URI, no fragment."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(indicator)
    except ValueError:
        raise invalid_target("resource must be an absolute URI") from None
    if not parts.scheme or parts.fragment or "#" in indicator:
        raise invalid_target("resource must be an absolute URI without a fragment")


def single_resource(resources: list[str]) -> str | None:
    if len(resources) > 1:
        raise invalid_target("only a single resource indicator value is supported at the token endpoint")
    if resources:
        check_resource_syntax(resources[0])
        return resources[0]
    return None


def jwt_access_token(provider: Provider, *, subject: str, client_id: str, resource: ResourceInfo,
                     scopes: list[str], now: int) -> tuple[str, int]:
    """RFC 9068 §2.2: iss, exp, aud, sub, client_id, iat, jti, scope; header typ `at+jwt`."""
    ttl = resource.access_token_ttl
    claims = {
        "jti": new_jti(),
        "sub": subject,
        "iat": now,
        "exp": now + ttl,
        "scope": " ".join(scopes),
        "client_id": client_id,
        "iss": provider.issuer,
        "aud": resource.indicator,
    }
    return provider.keys.sign(claims, typ="at+jwt"), ttl


async def opaque_access_token(conn: asyncpg.Connection, provider: Provider, *, client_id: str,
                              account_id: str | None, grant_id: str | None, family_id: str | None,
                              scopes: list[str], ttl: int, now: int) -> str:
    token = new_token()
    await store.insert_access_token(
        conn, token_hash=digest(token), id=new_jti(), tenant_id=provider.tenant_id, family_id=family_id,
        grant_id=grant_id, client_id=client_id, account_id=account_id, scope=" ".join(scopes),
        expires_at=from_timestamp(now + ttl),
    )
    return token


async def refresh_token(conn: asyncpg.Connection, provider: Provider, client: Client, *, family_id: str,
                        grant_id: str, account_id: str, session_id: str | None, scope: str,
                        nonce: str | None, auth_time: Any, family_created_at: Any, now: int,
                        token: str | None = None) -> str:
    """A new refresh token of the family: random, or `token` (a rotation's successor)."""
    token = token or new_token()
    await store.insert_refresh_token(
        conn, token_hash=digest(token), id=new_jti(), tenant_id=provider.tenant_id, family_id=family_id,
        grant_id=grant_id, client_id=client.id, account_id=account_id, session_id=session_id,
        scope=scope, nonce=nonce, auth_time=auth_time, family_created_at=family_created_at,
        expires_at=from_timestamp(now + client.refresh_token_ttl),
    )
    return token


def id_token(provider: Provider, client: Client, user: Mapping[str, Any], scopes: list[str], *,
             nonce: str | None, auth_time: int, access_token: str, now: int) -> str:
    """OIDC Core §2 and §3.1.3.6 (at_hash), with the claims of §5.5 of the contract."""
    claims: dict[str, Any] = {
        "sub": user["id"],
        **claim_rules.id_token_claims(user, scopes),
        "at_hash": half_hash(access_token, provider.keys.signing_alg),
        "aud": client.id,
        "exp": now + client.id_token_ttl,
        "iat": now,
        "auth_time": auth_time,
        "iss": provider.issuer,
    }
    if nonce:
        claims["nonce"] = nonce
    return provider.keys.sign(claims, typ="JWT")


def issues_refresh_token(client: Client, oidc_scopes: list[str]) -> bool:
    """Logto §5.4: the client may use refresh_token, and either `offline_access` was granted
    or it is a web app with `alwaysIssueRefreshToken`."""
    if "refresh_token" not in client.grant_types:
        return False
    return "offline_access" in oidc_scopes or (
        client.application_type == "web" and client.always_issue_refresh_token
    )


def should_rotate(client: Client, *, issued_at: float, expires_at: float, family_created_at: float,
                  now: float) -> bool:
    """Public clients always rotate (OAuth 2.0 Security BCP §4.14.2); confidential ones, unless
    `rotateRefreshToken` is false, once 70 % of the token's lifetime has passed — the policy of
    oidc-provider that Logto keeps — and never past a year of rotations."""
    if now - family_created_at >= ROTATION_LIFETIME_CAP:
        return False
    if client.is_public:
        return True
    if not client.rotate_refresh_token:
        return False
    lifetime = max(expires_at - issued_at, 1.0)
    return (now - issued_at) / lifetime >= 0.7


@dataclass
class UserTokenRequest:
    """What the code and refresh grants share when issuing a user's tokens."""

    client: Client
    account_id: str
    grant: Mapping[str, Any]
    scopes: list[str]  # the authorization's scopes (OIDC and resource), already narrowed
    resource_param: str | None
    authorized_resources: set[str]
    family_id: str
    session_id: str | None
    nonce: str | None
    auth_time: int


async def user_access_token(conn: asyncpg.Connection, provider: Provider, req: UserTokenRequest,
                            now: int) -> tuple[str, int, str, str | None]:
    """(token, expires_in, scope, resource): a JWT for the requested (or default) resource with
    requested ∩ granted ∩ rbac-allowed scopes (logto-behaviour.md §5.6), else an opaque token
    for userinfo carrying the OIDC scopes."""
    indicator = req.resource_param
    if indicator is not None:
        if indicator not in req.authorized_resources:
            raise invalid_target("the resource was not part of the authorization")
    else:
        default = await provider.default_resource()
        indicator = default.indicator if default else None
    if indicator is not None:
        allowed = await provider.user_scopes(req.account_id, indicator)
        if allowed.resource is None:
            if req.resource_param is not None:
                raise invalid_target()
        else:
            granted = set(req.grant["resource_scopes"].get(indicator, []))
            permitted = set(allowed.scopes)
            scopes = [s for s in claim_rules.resource_part(req.scopes) if s in granted and s in permitted]
            token, ttl = jwt_access_token(provider, subject=req.account_id, client_id=req.client.id,
                                          resource=allowed.resource, scopes=scopes, now=now)
            return token, ttl, " ".join(scopes), indicator
    oidc_scopes = claim_rules.oidc_part(req.scopes)
    token = await opaque_access_token(
        conn, provider, client_id=req.client.id, account_id=req.account_id, grant_id=req.grant["id"],
        family_id=req.family_id, scopes=oidc_scopes, ttl=OPAQUE_ACCESS_TOKEN_TTL, now=now,
    )
    return token, OPAQUE_ACCESS_TOKEN_TTL, " ".join(oidc_scopes), None


def now_seconds() -> int:
    return int(time.time())

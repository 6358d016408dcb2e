"""The userinfo endpoint `GET|POST /oidc/me` (OIDC Core §5.3) and token introspection
(RFC 7662)."""

from __future__ import annotations

import time
from typing import Any

from joserfc.errors import JoseError

from tessera_identity.oidc import claims as claim_rules
from tessera_identity.oidc import store
from tessera_identity.oidc.clients import Client
from tessera_identity.oidc.crypto import digest
from tessera_identity.oidc.errors import OAuthError, invalid_token


def _looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2


async def userinfo(provider, access_token: str) -> tuple[dict[str, Any], str]:
    """Only the opaque tokens issued without a resource are good here (logto-behaviour.md
    §5.6): a JWT access token's audience is its API, not the OP. Returns the claims and the
    client the token was issued to (for CORS)."""
    if _looks_like_jwt(access_token):
        raise invalid_token("access token audience prevents accessing the userinfo endpoint")
    row = await store.find_access_token(provider.pool, provider.tenant_id, digest(access_token))
    if row is None or row["account_id"] is None:
        raise invalid_token("invalid token provided")
    scopes = claim_rules.split_scope(row["scope"])
    if "openid" not in scopes:
        # RFC 6750 §3.1
        raise OAuthError("insufficient_scope", "access token missing 'openid' scope", status=403,
                         headers={"www-authenticate": 'Bearer realm="oidc", error="insufficient_scope"'})
    user = await store.find_user(provider.pool, provider.tenant_id, row["account_id"])
    if user is None or user["is_suspended"]:
        raise invalid_token("invalid token provided")
    return claim_rules.userinfo_claims(user, scopes), row["client_id"]


async def introspect(provider, client: Client, token: str, hint: str | None) -> dict[str, Any]:
    """RFC 7662 §2.2. Refresh tokens are described to the client they were issued to only;
    access tokens to any confidential client (resource servers introspect others' tokens)."""
    inactive = {"active": False}
    token_hash = digest(token)
    if hint != "access_token":
        refresh = await store.find_refresh_token(provider.pool, provider.tenant_id, token_hash)
        if refresh is not None:
            expired = refresh["expires_at"].timestamp() <= time.time()
            if expired or refresh["consumed_at"] is not None or refresh["client_id"] != client.id:
                return inactive
            return {
                "active": True, "token_type": "refresh_token", "client_id": refresh["client_id"],
                "sub": refresh["account_id"], "scope": refresh["scope"], "iss": provider.issuer,
                "iat": int(refresh["created_at"].timestamp()), "exp": int(refresh["expires_at"].timestamp()),
                "jti": refresh["id"],
            }
    if _looks_like_jwt(token):
        try:
            _, claims = provider.keys.verify(token)
        except (JoseError, ValueError, KeyError, TypeError):
            return inactive
        if claims.get("iss") != provider.issuer or not isinstance(claims.get("exp"), int) or claims["exp"] <= time.time():
            return inactive
        if "client_id" not in claims:  # an ID token is not an access token
            return inactive
        return {"active": True, "token_type": "Bearer",
                **{k: claims[k] for k in ("scope", "client_id", "sub", "aud", "iss", "iat", "exp", "jti") if k in claims}}
    access = await store.find_access_token(provider.pool, provider.tenant_id, token_hash)
    if access is None:
        return inactive
    body = {
        "active": True, "token_type": "Bearer", "client_id": access["client_id"], "scope": access["scope"],
        "iss": provider.issuer, "iat": int(access["created_at"].timestamp()),
        "exp": int(access["expires_at"].timestamp()), "jti": access["id"],
        "sub": access["account_id"] or access["client_id"],
    }
    return body

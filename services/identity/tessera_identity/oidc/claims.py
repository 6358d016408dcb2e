"""Scopes and the claims they release (logto-behaviour.md §5.5, OIDC Core §5.4).

ID tokens carry the standard claims of the granted scopes even when an access token is issued
too (Logto's `conformIdTokenClaims: false`); userinfo adds `custom_data` and `identities`.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping

OIDC_SCOPES = ("openid", "offline_access", "profile", "email", "phone", "custom_data", "identities")
OIDC_SCOPE_SET = frozenset(OIDC_SCOPES)

SCOPE_CLAIMS: dict[str, tuple[str, ...]] = {
    "openid": ("sub",),
    "profile": ("name", "picture", "username"),
    "email": ("email", "email_verified"),
    "phone": ("phone_number", "phone_number_verified"),
    "custom_data": ("custom_data",),
    "identities": ("identities",),
}
USERINFO_ONLY_SCOPES = frozenset({"custom_data", "identities"})
CLAIMS_SUPPORTED = (
    "sub", "iss", "aud", "exp", "iat", "auth_time", "nonce", "at_hash",
    "name", "picture", "username", "email", "email_verified", "phone_number",
    "phone_number_verified", "custom_data", "identities",
)


def split_scope(scope: str | None) -> list[str]:
    """Space-delimited, order kept, duplicates dropped (RFC 6749 §3.3)."""
    seen: dict[str, None] = {}
    for item in (scope or "").split(" "):
        if item:
            seen.setdefault(item, None)
    return list(seen)


def join_scope(scopes: Iterable[str]) -> str:
    return " ".join(scopes)


def oidc_part(scopes: Iterable[str]) -> list[str]:
    return [s for s in scopes if s in OIDC_SCOPE_SET]


def resource_part(scopes: Iterable[str]) -> list[str]:
    return [s for s in scopes if s not in OIDC_SCOPE_SET]


def _claims_for(user: Mapping[str, Any], scope: str) -> dict[str, Any]:
    if scope == "profile":
        return {"name": user["name"], "picture": user["avatar"], "username": user["username"]}
    if scope == "email":
        return {"email": user["primary_email"], "email_verified": bool(user["primary_email"])}
    if scope == "phone":
        return {"phone_number": user["primary_phone"], "phone_number_verified": bool(user["primary_phone"])}
    if scope == "custom_data":
        return {"custom_data": user["custom_data"] or {}}
    if scope == "identities":
        return {"identities": user["identities"] or {}}
    return {}


def id_token_claims(user: Mapping[str, Any], scopes: Iterable[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for scope in scopes:
        if scope not in USERINFO_ONLY_SCOPES:
            claims.update(_claims_for(user, scope))
    return claims


def userinfo_claims(user: Mapping[str, Any], scopes: Iterable[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {"sub": user["id"]}
    for scope in scopes:
        claims.update(_claims_for(user, scope))
    return claims

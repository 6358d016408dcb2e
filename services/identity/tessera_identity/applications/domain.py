"""Applications (OIDC clients): guards, shapes and what changed (Logto §2, §3.1). No I/O."""

from __future__ import annotations

from typing import Any, Mapping

from tessera_events.contracts.identity import ApplicationClient
from tessera_events.identity import ApplicationSnapshot
from tessera_identity.validation import ABSENT, Guard, is_url, is_web_or_mobile_redirect_uri
from tessera_kit.errors import ValidationIssue, invalid_input

APPLICATION_TYPES = ("Native", "SPA", "Traditional", "MachineToMachine")
NATIVE = "Native"
DEMO_APP_ID = "demo-app"
ADMIN_CONSOLE_APP_ID = "admin-console"

# API field -> column.
COLUMNS = {
    "name": "name",
    "secret": "secret",
    "description": "description",
    "type": "type",
    "oidcClientMetadata": "oidc_client_metadata",
    "customClientMetadata": "custom_client_metadata",
}


def public_application(row: Mapping[str, Any]) -> dict[str, Any]:
    """The full row, secret included, as Logto returns it."""
    return {
        "tenantId": row["tenant_id"],
        "id": row["id"],
        "name": row["name"],
        "secret": row["secret"],
        "description": row["description"],
        "type": row["type"],
        "oidcClientMetadata": row["oidc_client_metadata"],
        "customClientMetadata": row["custom_client_metadata"],
        "createdAt": row["created_at"],
    }


def demo_application(tenant_id: str) -> dict[str, Any]:
    """What Logto answers for GET /applications/demo-app (buildDemoAppDataForTenant)."""
    return {
        "tenantId": tenant_id,
        "id": DEMO_APP_ID,
        "name": "Live Preview",
        "secret": "N/A",
        "description": "Preview for Sign-in Experience.",
        "type": "SPA",
        "oidcClientMetadata": {"redirectUris": [], "postLogoutRedirectUris": []},
        "customClientMetadata": {},
        "createdAt": 0,
        "isAdmin": False,
    }


def demo_client_metadata(endpoint: str) -> dict[str, Any]:
    """The demo app as an OIDC client (§5.3): it redirects to `<endpoint>/demo-app`."""
    url = f"{endpoint.rstrip('/')}/{DEMO_APP_ID}"
    return {"redirectUris": [url], "postLogoutRedirectUris": [url]}


def admin_console_client_metadata(admin_endpoint: str) -> dict[str, Any]:
    """The console as an OIDC client (§5.3): `<admin endpoint>/console/callback`, signing out
    to `<admin endpoint>/console`."""
    console = f"{admin_endpoint.rstrip('/')}/console"
    return {"redirectUris": [f"{console}/callback"], "postLogoutRedirectUris": [console]}


def snapshot(row: Mapping[str, Any]) -> ApplicationSnapshot:
    return ApplicationSnapshot(
        id=row["id"], name=row["name"], type=row["type"], description=row["description"],
        oidc_client_metadata=row["oidc_client_metadata"], custom_client_metadata=row["custom_client_metadata"],
        created_at=row["created_at"],
    )


def client(row: Mapping[str, Any]) -> ApplicationClient:
    metadata = row["oidc_client_metadata"] or {}
    return ApplicationClient(
        id=row["id"], name=row["name"], type=row["type"], description=row["description"],
        redirect_uris=list(metadata.get("redirectUris") or []),
        post_logout_redirect_uris=list(metadata.get("postLogoutRedirectUris") or []),
        logo_uri=metadata.get("logoUri"), custom_client_metadata=row["custom_client_metadata"],
        created_at=row["created_at"],
    )


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """Changed columns by name; `secret` is named, never its value."""
    return [c for c in COLUMNS.values() if before[c] != after[c]]


# ---------------------------------------------------------------- guards


def _redirect_uri(item: str) -> bool:
    # Every type's guard accepts custom schemes; whether this app may use one is decided
    # once its type is known (custom_scheme_issues).
    return is_web_or_mobile_redirect_uri(item, allow_custom_scheme=True)


def _oidc_metadata(g: Guard, *, partial: bool) -> Any:
    raw = g.object("oidcClientMetadata")
    if raw is ABSENT:
        return ABSENT
    m = g.nested("oidcClientMetadata", raw)
    values = {
        "redirectUris": m.string_array("redirectUris", _redirect_uri, "Invalid input", "custom", required=not partial),
        "postLogoutRedirectUris": m.string_array("postLogoutRedirectUris", is_url, required=not partial),
        "logoUri": m.string("logoUri"),
    }
    return {k: v for k, v in values.items() if v is not ABSENT}


def _custom_metadata(g: Guard) -> Any:
    raw = g.object("customClientMetadata")
    if raw is ABSENT:
        return ABSENT
    m = g.nested("customClientMetadata", raw)
    values = {
        "corsAllowedOrigins": m.string_array("corsAllowedOrigins", is_url),
        "idTokenTtl": m.number("idTokenTtl"),
        "refreshTokenTtl": m.number("refreshTokenTtl"),
        "refreshTokenTtlInDays": m.number("refreshTokenTtlInDays"),
        "tenantId": m.string("tenantId"),
        "alwaysIssueRefreshToken": m.boolean("alwaysIssueRefreshToken"),
        "rotateRefreshToken": m.boolean("rotateRefreshToken"),
    }
    return {k: v for k, v in values.items() if v is not ABSENT}


def _common(g: Guard, *, creating: bool) -> dict[str, Any]:
    g.string("tenantId", max_length=21)  # accepted and ignored: the tenant is the service's (§1.2)
    return {
        "name": g.string("name", required=creating, min_length=1, max_length=256),
        "secret": g.string("secret", min_length=1, max_length=64),
        "description": g.string("description", nullable=True),
        "type": g.enum("type", APPLICATION_TYPES, required=creating),
        "oidc_client_metadata": _oidc_metadata(g, partial=not creating),
        "custom_client_metadata": _custom_metadata(g),
    }


def guard_create(body: dict[str, Any]) -> dict[str, Any]:
    """POST /applications: `name` and `type` required; `oidcClientMetadata`, when given,
    with both URI lists. Defaults are Logto's: empty URI lists and `{}`."""
    g = Guard(body)
    values = _common(g, creating=True)
    g.done()
    values = {k: v for k, v in values.items() if v is not ABSENT}
    values["oidc_client_metadata"] = {
        "redirectUris": [], "postLogoutRedirectUris": [], **values.get("oidc_client_metadata", {}),
    }
    values.setdefault("custom_client_metadata", {})
    custom_scheme_issues(values["type"], values["oidc_client_metadata"])
    return values


def guard_update(body: dict[str, Any]) -> tuple[dict[str, Any], Any]:
    """PATCH /applications/:id: a deep-partial body plus `isAdmin`. Returns (columns, isAdmin)."""
    g = Guard(body)
    values = _common(g, creating=False)
    is_admin = g.boolean("isAdmin")
    g.done()
    return {k: v for k, v in values.items() if v is not ABSENT}, is_admin


def custom_scheme_issues(app_type: str, oidc_metadata: Mapping[str, Any]) -> None:
    """Only native apps may redirect to a custom (reverse-domain) scheme; others need http(s)."""
    if app_type == NATIVE:
        return
    issues = [
        ValidationIssue(f"oidcClientMetadata.redirectUris.{i}", "custom", "Invalid input")
        for i, uri in enumerate(oidc_metadata.get("redirectUris") or [])
        if not is_web_or_mobile_redirect_uri(uri, allow_custom_scheme=False)
    ]
    if issues:
        raise invalid_input("body", issues)


def merged(before: Mapping[str, Any], changes: Mapping[str, Any]) -> dict[str, Any]:
    """Logto's PATCH: plain columns replaced; metadata objects merged key by key (a given
    array replaces the stored one)."""
    after = {column: before[column] for column in COLUMNS.values()}
    for column, value in changes.items():
        if column in ("oidc_client_metadata", "custom_client_metadata"):
            after[column] = {**(before[column] or {}), **value}
        else:
            after[column] = value
    return after

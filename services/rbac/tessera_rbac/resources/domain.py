"""API resources and scopes: request bodies, rules and event snapshots. No I/O."""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from msgspec import UNSET, Meta, UnsetType

from tessera_events.rbac import ResourceSnapshot, ScopeSnapshot

MANAGEMENT_API_ID = "management-api"
MANAGEMENT_API_NAME = "Logto Management API"
MANAGEMENT_API_SCOPE_ID = "management-api-all"
MANAGEMENT_API_SCOPE_NAME = "all"
MANAGEMENT_API_SCOPE_DESCRIPTION = "Default scope for Management API, allows all permissions."
DEFAULT_ACCESS_TOKEN_TTL = 3600

NonEmpty = Annotated[str, Meta(min_length=1)]
ScopeName = Annotated[str, Meta(min_length=1, max_length=256)]
# Seconds; bigint in the table, and a JSON number must stay exact in JavaScript.
TokenTtl = Annotated[int, Meta(ge=0, le=2**53 - 1)]


class CreateResource(msgspec.Struct, rename="camel"):
    name: NonEmpty
    indicator: NonEmpty
    access_token_ttl: TokenTtl = DEFAULT_ACCESS_TOKEN_TTL
    tenant_id: str | None = None  # accepted and ignored: the tenant is the service's (§1.2)


class UpdateResource(msgspec.Struct, rename="camel"):
    """`indicator` and `isDefault` cannot change here (the latter has its own route)."""

    name: NonEmpty | UnsetType = UNSET
    access_token_ttl: TokenTtl | UnsetType = UNSET
    tenant_id: str | None = None


class SetDefaultResource(msgspec.Struct, rename="camel"):
    is_default: bool


class CreateScope(msgspec.Struct):
    name: ScopeName
    description: NonEmpty


class UpdateScope(msgspec.Struct):
    name: ScopeName | UnsetType = UNSET
    description: NonEmpty | UnsetType = UNSET


def management_api_indicator(tenant_id: str) -> str:
    """Logto's fixed logical indicator of a tenant's Management API (§5.7)."""
    return f"https://{tenant_id}.logto.app/api"


def is_management_api(indicator: str, tenant_id: str) -> bool:
    return indicator == management_api_indicator(tenant_id)


_WHITESPACE = re.compile(r"\s")


def has_whitespace(scope_name: str) -> bool:
    return _WHITESPACE.search(scope_name) is not None


def changes_of(update: msgspec.Struct, current: dict[str, Any], columns: dict[str, str]) -> dict[str, Any]:
    """The fields of a PATCH body that were given and differ from the row: {column: value}.
    `columns` maps the body's attribute to the row's key."""
    changed = {}
    for attribute, key in columns.items():
        value = getattr(update, attribute)
        if value is not UNSET and value != current[key]:
            changed[attribute] = value
    return changed


def resource_snapshot(row: dict[str, Any]) -> ResourceSnapshot:
    return ResourceSnapshot(
        id=row["id"], name=row["name"], indicator=row["indicator"],
        is_default=row["isDefault"], access_token_ttl=row["accessTokenTtl"],
    )


def scope_snapshot(row: dict[str, Any]) -> ScopeSnapshot:
    return ScopeSnapshot(
        id=row["id"], resource_id=row["resourceId"], name=row["name"], description=row["description"]
    )

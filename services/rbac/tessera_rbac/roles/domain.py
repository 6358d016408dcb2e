"""Roles: request bodies, rules and event snapshots. No I/O.

Role `type` comes from later Logto versions: `User` roles are held by users,
`MachineToMachine` roles by machine-to-machine applications. 1.6 clients never send it and
get `User` roles, as before.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from tessera_events.rbac import RoleSnapshot
from tessera_kit.errors import RequestError

INTERNAL_ROLE_PREFIX = "#internal:"
ADMIN_ROLE_ID = "admin-role"
ADMIN_ROLE_NAME = "#internal:admin"
USER = "User"
MACHINE_TO_MACHINE = "MachineToMachine"

RoleType = Literal["User", "MachineToMachine"]
RoleText = Annotated[str, Meta(min_length=1, max_length=128)]
Id = Annotated[str, Meta(min_length=1)]


class CreateRole(msgspec.Struct, rename="camel"):
    name: RoleText
    description: RoleText
    scope_ids: list[Id] | None = None
    type: RoleType = "User"
    tenant_id: str | None = None  # accepted and ignored (§1.2)


class UpdateRole(msgspec.Struct):
    """The type of a role cannot change (its holders depend on it)."""

    name: RoleText | UnsetType = UNSET
    description: RoleText | UnsetType = UNSET


class ScopeIds(msgspec.Struct, rename="camel"):
    scope_ids: Annotated[list[Id], Meta(min_length=1)]


def admin_role_description(tenant_id: str) -> str:
    return f"Internal admin role for Logto tenant {tenant_id}."


def is_internal(role_name: str) -> bool:
    """`#internal:*` roles are Logto's own (the admin role): hidden from lists, read-only."""
    return role_name.startswith(INTERNAL_ROLE_PREFIX)


def internal_role_violation() -> RequestError:
    return RequestError("role.internal_role_violation", 403)


def unique_in_order(ids: list[str]) -> list[str]:
    """A client may repeat an id; a link exists once."""
    return list(dict.fromkeys(ids))


def role_snapshot(row: dict[str, Any]) -> RoleSnapshot:
    return RoleSnapshot(id=row["id"], name=row["name"], description=row["description"], type=row["type"])

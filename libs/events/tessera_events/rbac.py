"""Events published by the rbac service (resources, scopes, roles and their links)."""

from __future__ import annotations

from typing import Literal

import msgspec

from tessera_events.catalogue import event
from tessera_events.envelope import EventData


class ResourceSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    indicator: str
    is_default: bool = False
    access_token_ttl: int = 3600


class ScopeSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    resource_id: str
    name: str
    description: str | None = None


RoleType = Literal["User", "MachineToMachine"]


class RoleSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    description: str
    type: RoleType = "User"


@event("rbac.resource.created")
class ResourceCreated(EventData):
    """An API resource was created."""

    resource: ResourceSnapshot


@event("rbac.resource.updated")
class ResourceUpdated(EventData):
    """An API resource changed (name, TTL or default flag)."""

    resource: ResourceSnapshot
    changed: list[str]


@event("rbac.resource.deleted")
class ResourceDeleted(EventData):
    """An API resource was deleted with its scopes and their role links."""

    resource_id: str
    scope_ids: list[str] = []


@event("rbac.scope.created")
class ScopeCreated(EventData):
    """A scope was added to a resource."""

    scope: ScopeSnapshot


@event("rbac.scope.updated")
class ScopeUpdated(EventData):
    """A scope changed."""

    scope: ScopeSnapshot
    changed: list[str]


@event("rbac.scope.deleted")
class ScopeDeleted(EventData):
    """A scope was deleted (and unlinked from every role)."""

    scope_id: str
    resource_id: str


@event("rbac.role.created")
class RoleCreated(EventData):
    """A role was created (with its initial scopes)."""

    role: RoleSnapshot
    scope_ids: list[str] = []


@event("rbac.role.updated")
class RoleUpdated(EventData):
    """A role's name or description changed."""

    role: RoleSnapshot
    changed: list[str]


@event("rbac.role.deleted")
class RoleDeleted(EventData):
    """A role was deleted with its links."""

    role_id: str


@event("rbac.role.users_assigned")
class RoleUsersAssigned(EventData):
    """Users were given a role."""

    role_id: str
    user_ids: list[str]


@event("rbac.role.users_unassigned")
class RoleUsersUnassigned(EventData):
    """Users lost a role."""

    role_id: str
    user_ids: list[str]


@event("rbac.role.scopes_assigned")
class RoleScopesAssigned(EventData):
    """Scopes were added to a role."""

    role_id: str
    scope_ids: list[str]


@event("rbac.role.scopes_unassigned")
class RoleScopesUnassigned(EventData):
    """Scopes were removed from a role."""

    role_id: str
    scope_ids: list[str]


@event("rbac.role.applications_assigned")
class RoleApplicationsAssigned(EventData):
    """Machine-to-machine applications were given a role."""

    role_id: str
    application_ids: list[str]


@event("rbac.role.applications_unassigned")
class RoleApplicationsUnassigned(EventData):
    """Machine-to-machine applications lost a role."""

    role_id: str
    application_ids: list[str]

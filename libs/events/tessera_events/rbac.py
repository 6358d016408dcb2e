"""Events published by the rbac service (API resources, scopes, roles and their links).

Link events name one role and the users, scopes or applications that gained or lost it, so a
subscriber can keep "who holds which role" without asking rbac. Links removed as a consequence
(a deleted resource's scopes, a deleted role, a user or application deleted in identity) are
announced too: `rbac.resource.deleted` and `rbac.scope.deleted` name the roles that lost scopes,
and a user or application deleted in identity yields
`rbac.role.users_unassigned` / `rbac.role.applications_unassigned` with `reason`.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from tessera_events.catalogue import event
from tessera_events.envelope import EventData

RoleType = Literal["User", "MachineToMachine"]
# Why links went away: an admin's request, or the deletion of the user/application in identity.
UnassignReason = Literal["request", "user_deleted", "application_deleted"]


class ResourceSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    indicator: str
    is_default: bool = False
    access_token_ttl: int = 3600  # seconds


class ScopeSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    resource_id: str
    name: str
    description: str | None = None


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
    """An API resource changed; `changed` names the fields (`name`, `access_token_ttl`,
    `is_default`). Making a resource the default also updates the previous default."""

    resource: ResourceSnapshot
    changed: list[str]


@event("rbac.resource.deleted")
class ResourceDeleted(EventData):
    """An API resource was deleted with its scopes; `role_ids` lost those scopes."""

    resource_id: str
    indicator: str
    scope_ids: list[str] = []
    role_ids: list[str] = []


@event("rbac.scope.created")
class ScopeCreated(EventData):
    """A scope was added to a resource."""

    scope: ScopeSnapshot


@event("rbac.scope.updated")
class ScopeUpdated(EventData):
    """A scope's name or description changed."""

    scope: ScopeSnapshot
    changed: list[str]


@event("rbac.scope.deleted")
class ScopeDeleted(EventData):
    """A scope was deleted; `role_ids` are the roles that held it."""

    scope_id: str
    resource_id: str
    role_ids: list[str] = []


@event("rbac.role.created")
class RoleCreated(EventData):
    """A role was created, with its initial scopes."""

    role: RoleSnapshot
    scope_ids: list[str] = []


@event("rbac.role.updated")
class RoleUpdated(EventData):
    """A role's name or description changed."""

    role: RoleSnapshot
    changed: list[str]


@event("rbac.role.deleted")
class RoleDeleted(EventData):
    """A role was deleted with all its links. The holders are not listed (a role may have
    more users than an event may carry); subscribers know them from the assigned events."""

    role_id: str
    name: str


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
    reason: UnassignReason = "request"


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
    reason: UnassignReason = "request"

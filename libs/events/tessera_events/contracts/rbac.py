"""What rbac answers over rpc: scopes for tokens, resources, and admin links of apps.

The OIDC token endpoint calls `USER_SCOPES` / `APPLICATION_SCOPES` on every token
with a resource, so each is one indexed query on rbac's side.
"""

from __future__ import annotations

import msgspec

from tessera_events.rpc import RpcOperation

MANAGEMENT_API_INDICATOR = "https://default.logto.app/api"  # fixed logical indicator (Logto §5.7)
MANAGEMENT_API_SCOPE = "all"
ADMIN_ROLE_NAME = "#internal:admin"


class ResourceInfo(msgspec.Struct, frozen=True, kw_only=True):
    id: str
    name: str
    indicator: str
    access_token_ttl: int  # seconds
    is_default: bool = False


class ResourceByIndicator(msgspec.Struct, frozen=True, kw_only=True):
    indicator: str
    tenant_id: str


class TenantRef(msgspec.Struct, frozen=True, kw_only=True):
    tenant_id: str


class UserScopesRequest(msgspec.Struct, frozen=True, kw_only=True):
    user_id: str
    indicator: str
    tenant_id: str


class ApplicationScopesRequest(msgspec.Struct, frozen=True, kw_only=True):
    application_id: str
    indicator: str
    tenant_id: str


class AllowedScopes(msgspec.Struct, frozen=True, kw_only=True):
    """Scope names the subject holds on the resource through its roles.
    `resource` is None when no resource has that indicator (-> `invalid_target`)."""

    resource: ResourceInfo | None
    scopes: list[str]


class ApplicationAdminRequest(msgspec.Struct, frozen=True, kw_only=True):
    application_id: str
    is_admin: bool
    tenant_id: str


class ApplicationRef(msgspec.Struct, frozen=True, kw_only=True):
    application_id: str
    tenant_id: str


class ApplicationAdminState(msgspec.Struct, frozen=True, kw_only=True):
    application_id: str
    is_admin: bool


RESOURCE_BY_INDICATOR = RpcOperation("rbac", "resource_by_indicator", ResourceByIndicator, ResourceInfo | None)
DEFAULT_RESOURCE = RpcOperation("rbac", "default_resource", TenantRef, ResourceInfo | None)
USER_SCOPES = RpcOperation("rbac", "user_scopes", UserScopesRequest, AllowedScopes)
APPLICATION_SCOPES = RpcOperation("rbac", "application_scopes", ApplicationScopesRequest, AllowedScopes)
# Link or unlink the `#internal:admin` role (identity's PATCH /applications/:id {isAdmin}).
SET_APPLICATION_ADMIN = RpcOperation("rbac", "set_application_admin", ApplicationAdminRequest, ApplicationAdminState)
IS_APPLICATION_ADMIN = RpcOperation("rbac", "is_application_admin", ApplicationRef, ApplicationAdminState)


# --- Added with the rbac service ---------------------------------------------------------


class RoleRef(msgspec.Struct, frozen=True, kw_only=True):
    role_id: str
    tenant_id: str


# The ids of the users holding a role (identity's `GET /users?excludeRoleId=`). An unknown
# role holds nobody: the answer is `[]`, as Logto applies the filter without checking the role.
ROLE_USER_IDS = RpcOperation("rbac", "role_user_ids", RoleRef, list[str])

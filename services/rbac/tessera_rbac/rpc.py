"""What rbac answers over NATS request/reply (contracts in tessera_events.contracts.rbac).

`user_scopes` and `application_scopes` run on every token the OIDC provider issues for a
resource: each is one statement that finds the resource by its unique indicator and the scope
names the subject holds on it through its roles, walking only indexed keys
(holder -> roles -> scopes of that resource).
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tessera_events.contracts.rbac import (
    APPLICATION_SCOPES,
    DEFAULT_RESOURCE,
    IS_APPLICATION_ADMIN,
    RESOURCE_BY_INDICATOR,
    ROLE_USER_IDS,
    SET_APPLICATION_ADMIN,
    USER_SCOPES,
    AllowedScopes,
    ApplicationAdminRequest,
    ApplicationAdminState,
    ApplicationRef,
    ApplicationScopesRequest,
    ResourceByIndicator,
    ResourceInfo,
    RoleRef,
    TenantRef,
    UserScopesRequest,
)
from tessera_events.rbac import RoleApplicationsAssigned, RoleApplicationsUnassigned
from tessera_kit.app import ServiceContext
from tessera_kit.errors import not_found as not_exists_with_id
from tessera_kit.ids import new_id
from tessera_kit.rpc import RpcHandler
from tessera_rbac.holders import store as holders
from tessera_rbac.roles.domain import ADMIN_ROLE_ID

RESOURCE_INFO = "r.id, r.name, r.indicator, r.access_token_ttl, r.is_default"


# The holder's roles -> their scopes on resource r. `{link}`/`{holder}` come from the two
# constants below, never from a request.
_SCOPES_OF_HOLDER = f"""
SELECT {RESOURCE_INFO},
       ARRAY(SELECT DISTINCT s.name
               FROM {{link}} h
               JOIN roles_scopes rs ON rs.tenant_id = h.tenant_id AND rs.role_id = h.role_id
               JOIN scopes s ON s.tenant_id = rs.tenant_id AND s.id = rs.scope_id
              WHERE h.tenant_id = $1 AND h.{{holder}} = $2 AND s.resource_id = r.id
              ORDER BY s.name) AS scopes
  FROM resources r
 WHERE r.tenant_id = $1 AND r.indicator = $3
"""
USER_SCOPES_SQL = _SCOPES_OF_HOLDER.format(link="users_roles", holder="user_id")
APPLICATION_SCOPES_SQL = _SCOPES_OF_HOLDER.format(link="applications_roles", holder="application_id")


def _resource_info(row: Any) -> ResourceInfo:
    return ResourceInfo(
        id=row["id"], name=row["name"], indicator=row["indicator"],
        access_token_ttl=row["access_token_ttl"], is_default=row["is_default"],
    )


# resources


async def resource_by_indicator(ctx: ServiceContext, request: ResourceByIndicator) -> ResourceInfo | None:
    row = await ctx.pool.fetchrow(
        f"SELECT {RESOURCE_INFO} FROM resources r WHERE r.tenant_id = $1 AND r.indicator = $2",
        request.tenant_id, request.indicator,
    )
    return _resource_info(row) if row else None


async def default_resource(ctx: ServiceContext, request: TenantRef) -> ResourceInfo | None:
    row = await ctx.pool.fetchrow(
        f"SELECT {RESOURCE_INFO} FROM resources r WHERE r.tenant_id = $1 AND r.is_default", request.tenant_id
    )
    return _resource_info(row) if row else None


# the token hot path


async def user_scopes(ctx: ServiceContext, request: UserScopesRequest) -> AllowedScopes:
    row = await ctx.pool.fetchrow(USER_SCOPES_SQL, request.tenant_id, request.user_id, request.indicator)
    return AllowedScopes(resource=_resource_info(row), scopes=list(row["scopes"])) if row else \
        AllowedScopes(resource=None, scopes=[])


async def application_scopes(ctx: ServiceContext, request: ApplicationScopesRequest) -> AllowedScopes:
    row = await ctx.pool.fetchrow(
        APPLICATION_SCOPES_SQL, request.tenant_id, request.application_id, request.indicator
    )
    return AllowedScopes(resource=_resource_info(row), scopes=list(row["scopes"])) if row else \
        AllowedScopes(resource=None, scopes=[])


# applications and the admin role


async def set_application_admin(ctx: ServiceContext, request: ApplicationAdminRequest) -> ApplicationAdminState:
    """Identity vouches that the application exists: no read model is consulted."""
    tenant, app_id = request.tenant_id, request.application_id
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(
            "SELECT true FROM roles WHERE tenant_id = $1 AND id = $2 FOR SHARE", tenant, ADMIN_ROLE_ID
        ):
            raise not_exists_with_id("roles", ADMIN_ROLE_ID)
        if request.is_admin:
            changed = await conn.fetchval(
                "INSERT INTO applications_roles (tenant_id, id, application_id, role_id)"
                " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING true",
                tenant, new_id(), app_id, ADMIN_ROLE_ID,
            )
            event = RoleApplicationsAssigned(role_id=ADMIN_ROLE_ID, application_ids=[app_id])
        else:
            changed = bool(await holders.unlink(conn, holders.APPLICATIONS, tenant, app_id, [ADMIN_ROLE_ID]))
            event = RoleApplicationsUnassigned(role_id=ADMIN_ROLE_ID, application_ids=[app_id])
        if changed:
            await ctx.outbox.emit(conn, event, aggregate_id=ADMIN_ROLE_ID, tenant_id=tenant)
    return ApplicationAdminState(application_id=app_id, is_admin=request.is_admin)


async def is_application_admin(ctx: ServiceContext, request: ApplicationRef) -> ApplicationAdminState:
    linked = await ctx.pool.fetchval(
        "SELECT true FROM applications_roles WHERE tenant_id = $1 AND application_id = $2 AND role_id = $3",
        request.tenant_id, request.application_id, ADMIN_ROLE_ID,
    )
    return ApplicationAdminState(application_id=request.application_id, is_admin=bool(linked))


async def role_user_ids(ctx: ServiceContext, request: RoleRef) -> list[str]:
    async with ctx.pool.acquire() as conn:
        return await holders.role_user_ids(conn, request.tenant_id, request.role_id)


def _with_context(operation, answer) -> RpcHandler:
    return RpcHandler(operation, answer, with_context=True)


HANDLERS = [
    _with_context(RESOURCE_BY_INDICATOR, resource_by_indicator),
    _with_context(DEFAULT_RESOURCE, default_resource),
    _with_context(USER_SCOPES, user_scopes),
    _with_context(APPLICATION_SCOPES, application_scopes),
    _with_context(SET_APPLICATION_ADMIN, set_application_admin),
    _with_context(IS_APPLICATION_ADMIN, is_application_admin),
    _with_context(ROLE_USER_IDS, role_user_ids),
]

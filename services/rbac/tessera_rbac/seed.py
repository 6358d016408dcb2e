"""Logto's seed for a tenant (§5.7, §5.8), with its fixed ids: the Management API resource,
its `all` scope, and the `#internal:admin` role holding it. Idempotent: replicas starting
together, or restarts, insert (and announce) each row once."""

from __future__ import annotations

from tessera_events.rbac import ResourceCreated, RoleCreated, RoleScopesAssigned, ScopeCreated
from tessera_kit.app import ServiceContext
from tessera_kit.config import ADMIN_TENANT
from tessera_kit.context import current_tenant, tenant_scope
from tessera_rbac.announce import announce
from tessera_rbac.resources.domain import (
    DEFAULT_ACCESS_TOKEN_TTL,
    MANAGEMENT_API_ID,
    MANAGEMENT_API_NAME,
    MANAGEMENT_API_SCOPE_DESCRIPTION,
    MANAGEMENT_API_SCOPE_ID,
    MANAGEMENT_API_SCOPE_NAME,
    management_api_indicator,
    resource_snapshot,
    scope_snapshot,
)
from tessera_rbac.resources.store import RESOURCE_COLUMNS, SCOPE_COLUMNS
from tessera_rbac.roles.domain import (
    ADMIN_ROLE_ID,
    ADMIN_ROLE_NAME,
    USER,
    admin_role_description,
    role_snapshot,
)
from tessera_rbac.roles.store import ROLE_COLUMNS


async def seed(ctx: ServiceContext) -> None:
    for tenant in ctx.settings.tenants:
        with tenant_scope(tenant):
            if tenant == ADMIN_TENANT:
                await seed_admin_tenant(ctx)
            else:
                await seed_user_tenant(ctx)


async def seed_user_tenant(ctx: ServiceContext) -> None:
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _resource(ctx, conn, MANAGEMENT_API_ID, MANAGEMENT_API_NAME, management_api_indicator(tenant),
                        MANAGEMENT_API_SCOPE_ID, MANAGEMENT_API_SCOPE_DESCRIPTION)
        # Logto 1.6 roles have no type and 1.6 clients give this role to users (its own suite
        # does); later Logto typed every such role `User`. Machine-to-machine applications get
        # it through identity's `isAdmin`, which links it without the type check.
        await _role(ctx, conn, ADMIN_ROLE_ID, ADMIN_ROLE_NAME, admin_role_description(tenant),
                    MANAGEMENT_API_SCOPE_ID)


# The admin tenant (Logto's `admin`, §5.7-5.8): the console's users hold `user` (the Me API,
# `/me/*`) and `default:admin` (the default tenant's Management API, as the console calls it).
ME_API_ID, ME_API_SCOPE_ID = "me-api", "me-api-all"
ME_API_NAME = "Logto Me API"
ME_API_SCOPE_DESCRIPTION = "Default scope for Me API, allows all permissions."
ADMIN_TENANT_USER_ROLE = ("admin-user-role", "user", "Default role for admin tenant.")
DEFAULT_TENANT_API = ("default-tenant-api", "default-tenant-all")  # ids: 21 characters at most
DEFAULT_TENANT_ADMIN_ROLE = ("default-admin-role", "default:admin", "Admin role for Logto tenant default.")
ADMIN_TENANT_ADMIN_ROLE = ("admin-admin-role", "admin:admin", "Admin role for Logto tenant admin.")


async def seed_admin_tenant(ctx: ServiceContext) -> None:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _resource(ctx, conn, ME_API_ID, ME_API_NAME, me_api_indicator(), ME_API_SCOPE_ID,
                        ME_API_SCOPE_DESCRIPTION)
        await _role(ctx, conn, *ADMIN_TENANT_USER_ROLE, ME_API_SCOPE_ID)
        api_id, scope_id = DEFAULT_TENANT_API
        await _resource(ctx, conn, api_id, f"{MANAGEMENT_API_NAME} for tenant default",
                        management_api_indicator("default"), scope_id, MANAGEMENT_API_SCOPE_DESCRIPTION)
        await _role(ctx, conn, *DEFAULT_TENANT_ADMIN_ROLE, scope_id)
        # The admin tenant's own Management API (what its gateway checks tokens against).
        await _resource(ctx, conn, MANAGEMENT_API_ID, f"{MANAGEMENT_API_NAME} for tenant {ADMIN_TENANT}",
                        management_api_indicator(ADMIN_TENANT), MANAGEMENT_API_SCOPE_ID,
                        MANAGEMENT_API_SCOPE_DESCRIPTION)
        await _role(ctx, conn, *ADMIN_TENANT_ADMIN_ROLE, MANAGEMENT_API_SCOPE_ID)


def me_api_indicator() -> str:
    return f"https://{ADMIN_TENANT}.logto.app/me"


async def _resource(ctx: ServiceContext, conn, resource_id: str, name: str, indicator: str,
                    scope_id: str, scope_description: str) -> None:
    """A resource and its `all` scope, each inserted and announced once."""
    tenant = current_tenant()
    resource = await conn.fetchrow(
        "INSERT INTO resources (tenant_id, id, name, indicator, access_token_ttl) VALUES ($1, $2, $3, $4, $5)"
        f" ON CONFLICT DO NOTHING RETURNING {RESOURCE_COLUMNS}",
        tenant, resource_id, name, indicator, DEFAULT_ACCESS_TOKEN_TTL,
    )
    if resource:
        await announce(ctx, conn, ResourceCreated(resource=resource_snapshot(dict(resource))),
                       aggregate_id=resource_id)
    scope = await conn.fetchrow(
        "INSERT INTO scopes (tenant_id, id, resource_id, name, description) VALUES ($1, $2, $3, $4, $5)"
        f" ON CONFLICT DO NOTHING RETURNING {SCOPE_COLUMNS}",
        tenant, scope_id, resource_id, MANAGEMENT_API_SCOPE_NAME, scope_description,
    )
    if scope:
        await announce(ctx, conn, ScopeCreated(scope=scope_snapshot(dict(scope))), aggregate_id=resource_id)


async def _role(ctx: ServiceContext, conn, role_id: str, name: str, description: str, scope_id: str) -> None:
    """A role holding one scope, inserted, linked and announced once."""
    tenant = current_tenant()
    role = await conn.fetchrow(
        "INSERT INTO roles (tenant_id, id, name, description, type) VALUES ($1, $2, $3, $4, $5)"
        f" ON CONFLICT DO NOTHING RETURNING {ROLE_COLUMNS}",
        tenant, role_id, name, description, USER,
    )
    linked = await conn.fetchval(
        "INSERT INTO roles_scopes (tenant_id, id, role_id, scope_id) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING RETURNING true",
        tenant, f"{role_id}-{scope_id}"[:21], role_id, scope_id,
    )
    if role:
        await announce(ctx, conn, RoleCreated(role=role_snapshot(dict(role)), scope_ids=[scope_id] if linked else []),
                       aggregate_id=role_id)
    elif linked:
        await announce(ctx, conn, RoleScopesAssigned(role_id=role_id, scope_ids=[scope_id]), aggregate_id=role_id)

"""Logto's seed for a tenant (§5.7, §5.8), with its fixed ids: the Management API resource,
its `all` scope, and the `#internal:admin` role holding it. Idempotent: replicas starting
together, or restarts, insert (and announce) each row once."""

from __future__ import annotations

from tessera_events.rbac import ResourceCreated, RoleCreated, RoleScopesAssigned, ScopeCreated
from tessera_kit.app import ServiceContext
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
    tenant = ctx.settings.tenant_id
    async with ctx.pool.acquire() as conn, conn.transaction():
        resource = await conn.fetchrow(
            "INSERT INTO resources (tenant_id, id, name, indicator, access_token_ttl) VALUES ($1, $2, $3, $4, $5)"
            f" ON CONFLICT DO NOTHING RETURNING {RESOURCE_COLUMNS}",
            tenant, MANAGEMENT_API_ID, MANAGEMENT_API_NAME, management_api_indicator(tenant), DEFAULT_ACCESS_TOKEN_TTL,
        )
        if resource:
            await announce(ctx, conn, ResourceCreated(resource=resource_snapshot(dict(resource))),
                           aggregate_id=MANAGEMENT_API_ID)
        scope = await conn.fetchrow(
            "INSERT INTO scopes (tenant_id, id, resource_id, name, description) VALUES ($1, $2, $3, $4, $5)"
            f" ON CONFLICT DO NOTHING RETURNING {SCOPE_COLUMNS}",
            tenant, MANAGEMENT_API_SCOPE_ID, MANAGEMENT_API_ID, MANAGEMENT_API_SCOPE_NAME,
            MANAGEMENT_API_SCOPE_DESCRIPTION,
        )
        if scope:
            await announce(ctx, conn, ScopeCreated(scope=scope_snapshot(dict(scope))), aggregate_id=MANAGEMENT_API_ID)
        # Logto 1.6 roles have no type and 1.6 clients give this role to users (its own suite
        # does); later Logto typed every such role `User`. Machine-to-machine applications get
        # it through identity's `isAdmin`, which links it without the type check.
        role = await conn.fetchrow(
            "INSERT INTO roles (tenant_id, id, name, description, type) VALUES ($1, $2, $3, $4, $5)"
            f" ON CONFLICT DO NOTHING RETURNING {ROLE_COLUMNS}",
            tenant, ADMIN_ROLE_ID, ADMIN_ROLE_NAME, admin_role_description(tenant), USER,
        )
        linked = await conn.fetchval(
            "INSERT INTO roles_scopes (tenant_id, id, role_id, scope_id) VALUES ($1, $2, $3, $4)"
            " ON CONFLICT DO NOTHING RETURNING true",
            tenant, f"{ADMIN_ROLE_ID}-{MANAGEMENT_API_SCOPE_ID}"[:21], ADMIN_ROLE_ID, MANAGEMENT_API_SCOPE_ID,
        )
        if role:
            await announce(ctx, conn, RoleCreated(role=role_snapshot(dict(role)),
                                                  scope_ids=[MANAGEMENT_API_SCOPE_ID] if linked else []),
                           aggregate_id=ADMIN_ROLE_ID)
        elif linked:
            await announce(ctx, conn, RoleScopesAssigned(role_id=ADMIN_ROLE_ID, scope_ids=[MANAGEMENT_API_SCOPE_ID]),
                           aggregate_id=ADMIN_ROLE_ID)

"""`/api/roles`, `/api/roles/:id` and `/api/roles/:id/scopes*` (Logto §3.8, §3.9).

Differences from Logto 1.6, on purpose:
- `POST /roles` with `scopeIds` is all-or-nothing: an unknown scope id creates nothing
  (Logto leaves the role created).
- `#internal:*` roles (the admin role) answer 403 `role.internal_role_violation` to every
  change, deletion included (Logto's DELETE says 404, the role being invisible to it).
- Roles have a `type` (later Logto versions): `User` (default) or `MachineToMachine`;
  `GET /roles` takes `type` and `excludeApplicationId`, and also counts applications.
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from tessera_events.rbac import (
    RoleCreated,
    RoleDeleted,
    RoleScopesAssigned,
    RoleScopesUnassigned,
    RoleUpdated,
)
from tessera_kit.app import Ctx
from tessera_kit.errors import RequestError, not_found as not_exists_with_id
from tessera_kit.http import paginated
from tessera_kit.pagination import parse_page
from tessera_kit.context import current_tenant
from tessera_rbac.announce import announce
from tessera_rbac.http import not_found
from tessera_rbac.resources.domain import changes_of
from tessera_rbac.roles import store
from tessera_rbac.roles.domain import (
    CreateRole,
    RoleType,
    ScopeIds,
    UpdateRole,
    internal_role_violation,
    is_internal,
    role_snapshot,
    unique_in_order,
)
from tessera_rbac.search import parse_search

TAGS = ["Roles"]


@get("/api/roles", operation_id="ListRoles", tags=TAGS, summary="Get roles",
     description="Paginated, newest first; internal roles are never listed. Each role comes with "
                 "`usersCount` and `featuredUsers` (and, beyond Logto 1.6, `applicationsCount` and "
                 "`featuredApplications`). Logto's search over `id`, `name`, `description`.")
async def list_roles(
    request: Request, ctx: Ctx,
    excludeUserId: FromQuery[str | None] = None,  # noqa: N803 (Logto's names)
    excludeApplicationId: FromQuery[str | None] = None,  # noqa: N803
    role_type: Annotated[RoleType | None, QueryParameter(name="type")] = None,
) -> Response:
    page = parse_page(request.query_params)
    search = parse_search(request.query_params.multi_items())
    filters = store.role_filters(
        current_tenant(), search, role_type=role_type, exclude_user_id=excludeUserId,
        exclude_application_id=excludeApplicationId,
    )
    async with ctx.pool.acquire() as conn:
        total, rows = await store.search_roles(conn, filters, limit=page.limit, offset=page.offset, with_holders=True)
    return paginated(request, page, rows, total)


@post("/api/roles", operation_id="CreateRole", tags=TAGS, status_code=200, summary="Create a role",
      description="With `scopeIds`, the role is created holding those scopes, or not at all.")
async def create_role(data: JSONBody[CreateRole], ctx: Ctx) -> dict[str, Any]:
    tenant = current_tenant()
    name_in_use = RequestError("role.name_in_use", 422, name=data.name)
    scope_ids = unique_in_order(data.scope_ids or [])
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await store.name_taken(conn, tenant, data.name):
            raise name_in_use
        if is_internal(data.name):
            raise internal_role_violation()
        missing = await store.missing_scope_ids(conn, tenant, scope_ids) if scope_ids else []
        if missing:
            raise not_exists_with_id("scopes", missing[0])
        try:
            role = await store.insert_role(
                conn, tenant, name=data.name, description=data.description, role_type=data.type
            )
        except asyncpg.UniqueViolationError:  # the same name, created concurrently
            raise name_in_use from None
        if scope_ids:
            await store.link_scopes(conn, tenant, role["id"], scope_ids)
        await announce(ctx, conn, RoleCreated(role=role_snapshot(role), scope_ids=scope_ids), aggregate_id=role["id"])
    return role


@get("/api/roles/{id:str}", operation_id="GetRole", tags=TAGS, summary="Get a role")
async def get_role(ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002 (Logto's name)
    async with ctx.pool.acquire() as conn:
        role = await store.find_role(conn, current_tenant(), id)
    if role is None:
        raise not_exists_with_id("roles", id)
    return role


@patch("/api/roles/{id:str}", operation_id="UpdateRole", tags=TAGS, summary="Update a role",
       description="`name` and `description`; the type of a role does not change.")
async def update_role(data: JSONBody[UpdateRole], ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    tenant = current_tenant()
    new_name = data.name if isinstance(data.name, str) else None
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await store.find_role(conn, tenant, id, lock=True)
        if current is None:
            raise not_exists_with_id("roles", id)
        if new_name is not None and await store.name_taken(conn, tenant, new_name, except_id=id):
            raise RequestError("role.name_in_use", 422, name=new_name)
        if is_internal(current["name"]) or (new_name is not None and is_internal(new_name)):
            raise internal_role_violation()
        changes = changes_of(data, current, {"name": "name", "description": "description"})
        if not changes:
            return current
        try:
            role = await store.update_role(conn, tenant, id, changes)
        except asyncpg.UniqueViolationError:
            raise RequestError("role.name_in_use", 422, name=new_name) from None
        await announce(ctx, conn, RoleUpdated(role=role_snapshot(role), changed=list(changes)), aggregate_id=id)
    return role


@delete("/api/roles/{id:str}", operation_id="DeleteRole", tags=TAGS, status_code=204, summary="Delete a role",
        description="Its links to users, applications and scopes go with it.")
async def delete_role(ctx: Ctx, id: FromPath[str]) -> None:  # noqa: A002
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await store.find_role(conn, tenant, id, lock=True)
        if current is None:
            raise not_found()
        if is_internal(current["name"]):
            raise internal_role_violation()
        await store.delete_role(conn, tenant, id)
        await announce(ctx, conn, RoleDeleted(role_id=id, name=current["name"]), aggregate_id=id)


# --- role <-> scope ------------------------------------------------------------------------


@get("/api/roles/{id:str}/scopes", operation_id="ListRoleScopes", tags=TAGS, summary="Get the scopes of a role",
     description="Optional pagination; each scope with its `resource`. Logto's search over scopes.")
async def list_role_scopes(request: Request, ctx: Ctx, id: FromPath[str]) -> Response:  # noqa: A002
    page = parse_page(request.query_params, optional=True)
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn:
        if await store.find_role(conn, tenant, id) is None:
            raise not_exists_with_id("roles", id)
        search = parse_search(request.query_params.multi_items())
        total, rows = await store.search_role_scopes(
            conn, tenant, id, search, limit=page.limit if page else None, offset=page.offset if page else 0
        )
    return paginated(request, page, rows, total)


@post("/api/roles/{id:str}/scopes", operation_id="CreateRoleScopes", tags=TAGS, status_code=200,
      summary="Add scopes to a role", description="Answers every scope the role now holds.")
async def add_role_scopes(data: JSONBody[ScopeIds], ctx: Ctx, id: FromPath[str]) -> list[dict[str, Any]]:  # noqa: A002
    tenant = current_tenant()
    scope_ids = unique_in_order(data.scope_ids)
    async with ctx.pool.acquire() as conn, conn.transaction():
        role = await store.find_role(conn, tenant, id, lock=True)
        if role is None:
            raise not_exists_with_id("roles", id)
        linked = await store.linked_scope_ids(conn, tenant, id)
        already = next((scope_id for scope_id in scope_ids if scope_id in linked), None)
        if already is not None:
            raise RequestError("role.scope_exists", 422, scopeId=already)
        missing = await store.missing_scope_ids(conn, tenant, scope_ids)
        if missing:
            raise not_exists_with_id("scopes", missing[0])
        if is_internal(role["name"]):
            raise internal_role_violation()
        await store.link_scopes(conn, tenant, id, scope_ids)
        await announce(ctx, conn, RoleScopesAssigned(role_id=id, scope_ids=scope_ids), aggregate_id=id)
        return await store.scopes_of_role(conn, tenant, id)


@delete("/api/roles/{id:str}/scopes/{scopeId:str}", operation_id="DeleteRoleScope", tags=TAGS, status_code=204,
        summary="Remove a scope from a role")
async def remove_role_scope(ctx: Ctx, id: FromPath[str], scopeId: FromPath[str]) -> None:  # noqa: A002, N803
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        role = await store.find_role(conn, tenant, id, lock=True)
        if role is not None and is_internal(role["name"]):
            raise internal_role_violation()
        if role is None or not await store.unlink_scope(conn, tenant, id, scopeId):
            raise not_found()
        await announce(ctx, conn, RoleScopesUnassigned(role_id=id, scope_ids=[scopeId]), aggregate_id=id)


route_handlers = [
    list_roles, create_role, get_role, update_role, delete_role,
    list_role_scopes, add_role_scopes, remove_role_scope,
]

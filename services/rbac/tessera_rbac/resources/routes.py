"""`/api/resources*`: API resources and their scopes (Logto §3.4).

Beyond Logto 1.6: the tenant's Management API resource and its scopes cannot be changed or
deleted (400 `resource.cannot_modify_management_api` / `resource.cannot_delete_management_api`,
the codes later Logto versions use), because doing so would lock every admin out; and a scope
is only reachable under its own resource (Logto ignores `:resourceId` on PATCH/DELETE).
"""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath, FromQuery, JSONBody

from tessera_events.rbac import (
    ResourceCreated,
    ResourceDeleted,
    ResourceUpdated,
    ScopeCreated,
    ScopeDeleted,
    ScopeUpdated,
)
from tessera_kit.app import Ctx, ServiceContext
from tessera_kit.errors import RequestError, not_found as not_exists_with_id
from tessera_kit.http import paginated
from tessera_kit.pagination import parse_page
from tessera_kit.context import current_tenant
from tessera_rbac.announce import announce
from tessera_rbac.http import not_exists, not_found
from tessera_rbac.resources import store
from tessera_rbac.resources.domain import (
    CreateResource,
    CreateScope,
    SetDefaultResource,
    UpdateResource,
    UpdateScope,
    changes_of,
    has_whitespace,
    is_management_api,
    resource_snapshot,
    scope_snapshot,
)
from tessera_rbac.search import is_truthy, parse_search

TAGS = ["Resources"]


def _refuse_management_api(ctx: ServiceContext, resource: dict[str, Any], code: str) -> None:
    if is_management_api(resource["indicator"], current_tenant()):
        raise RequestError(code, 400)


@get("/api/resources", operation_id="ListResources", tags=TAGS, summary="Get API resources",
     description="Optional pagination: without `page` and `page_size`, every resource. "
                 "`includeScopes=true` adds each resource's scopes.")
async def list_resources(request: Request, ctx: Ctx, includeScopes: FromQuery[str | None] = None) -> Response:  # noqa: N803
    page = parse_page(request.query_params, optional=True)
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn:
        rows = await store.list_resources(
            conn, tenant, limit=page.limit if page else None, offset=page.offset if page else 0,
            include_scopes=is_truthy(includeScopes),
        )
        total = await store.count_resources(conn, tenant) if page else len(rows)
    return paginated(request, page, rows, total)


@post("/api/resources", operation_id="CreateResource", tags=TAGS, status_code=201, summary="Create an API resource")
async def create_resource(data: JSONBody[CreateResource], ctx: Ctx) -> dict[str, Any]:
    tenant = current_tenant()
    in_use = RequestError("resource.resource_identifier_in_use", 422, indicator=data.indicator)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if await store.indicator_in_use(conn, tenant, data.indicator):
            raise in_use
        try:
            resource = await store.insert_resource(
                conn, tenant, name=data.name, indicator=data.indicator, access_token_ttl=data.access_token_ttl
            )
        except asyncpg.UniqueViolationError:  # created by a concurrent request meanwhile
            raise in_use from None
        await announce(ctx, conn, ResourceCreated(resource=resource_snapshot(resource)), aggregate_id=resource["id"])
    return {**resource, "scopes": []}


@get("/api/resources/{id:str}", operation_id="GetResource", tags=TAGS, summary="Get an API resource")
async def get_resource(ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002 (Logto's name)
    async with ctx.pool.acquire() as conn:
        resource = await store.find_resource(conn, current_tenant(), id)
    if resource is None:
        raise not_exists_with_id("resources", id)
    return resource


@patch("/api/resources/{id:str}", operation_id="UpdateResource", tags=TAGS, summary="Update an API resource",
       description="`name` and `accessTokenTtl`; the indicator and the default flag cannot change here.")
async def update_resource(data: JSONBody[UpdateResource], ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await store.find_resource(conn, tenant, id, lock=True)
        if current is None:
            raise not_exists("resource")
        _refuse_management_api(ctx, current, "resource.cannot_modify_management_api")
        changes = changes_of(data, current, {"name": "name", "access_token_ttl": "accessTokenTtl"})
        if not changes:
            return current
        resource = await store.update_resource(conn, tenant, id, changes)
        await announce(ctx, conn, ResourceUpdated(resource=resource_snapshot(resource), changed=list(changes)),
                       aggregate_id=id)
    return resource


@patch("/api/resources/{id:str}/is-default", operation_id="UpdateResourceIsDefault", tags=TAGS,
       summary="Set or unset the default API resource",
       description="`true` makes this resource the tenant's only default resource.")
async def set_default_resource(data: JSONBody[SetDefaultResource], ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await store.lock_default_flag(conn, tenant)
        current = await store.find_resource(conn, tenant, id, lock=True)
        if current is None:
            raise not_exists("resource")
        previous_defaults = await store.clear_default(conn, tenant, id) if data.is_default else []
        for previous in previous_defaults:
            await announce(ctx, conn, ResourceUpdated(resource=resource_snapshot(previous), changed=["is_default"]),
                           aggregate_id=previous["id"])
        if current["isDefault"] == data.is_default:
            return current
        resource = await store.set_default_flag(conn, tenant, id, data.is_default)
        await announce(ctx, conn, ResourceUpdated(resource=resource_snapshot(resource), changed=["is_default"]),
                       aggregate_id=id)
    return resource


@delete("/api/resources/{id:str}", operation_id="DeleteResource", tags=TAGS, status_code=204,
        summary="Delete an API resource", description="Its scopes and their role links go with it.")
async def delete_resource(ctx: Ctx, id: FromPath[str]) -> None:  # noqa: A002
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        current = await store.find_resource(conn, tenant, id, lock=True)
        if current is None:
            raise not_found()
        _refuse_management_api(ctx, current, "resource.cannot_delete_management_api")
        scope_ids, role_ids = await store.delete_resource(conn, tenant, id)
        await announce(ctx, conn, ResourceDeleted(
            resource_id=id, indicator=current["indicator"], scope_ids=scope_ids, role_ids=role_ids,
        ), aggregate_id=id)


# --- scopes --------------------------------------------------------------------------------


@get("/api/resources/{resourceId:str}/scopes", operation_id="ListResourceScopes", tags=TAGS,
     summary="Get the scopes of an API resource",
     description="Paginated; Logto's search over `id`, `name`, `description`. An unknown resource has no scopes.")
async def list_scopes(request: Request, ctx: Ctx, resourceId: FromPath[str]) -> Response:  # noqa: N803
    page = parse_page(request.query_params)
    search = parse_search(request.query_params.multi_items())
    async with ctx.pool.acquire() as conn:
        total, rows = await store.search_scopes(
            conn, current_tenant(), resourceId, search, limit=page.limit, offset=page.offset
        )
    return paginated(request, page, rows, total)


def _refuse_whitespace(name: str) -> None:
    if has_whitespace(name):
        raise RequestError("scope.name_with_space", 400)


@post("/api/resources/{resourceId:str}/scopes", operation_id="CreateResourceScope", tags=TAGS, status_code=201,
      summary="Create a scope of an API resource")
async def create_scope(data: JSONBody[CreateScope], ctx: Ctx, resourceId: FromPath[str]) -> dict[str, Any]:  # noqa: N803
    tenant = current_tenant()
    _refuse_whitespace(data.name)
    name_exists = RequestError("scope.name_exists", 422, name=data.name)
    async with ctx.pool.acquire() as conn, conn.transaction():
        # Locking the resource orders this against its deletion and other scope changes.
        resource = await store.find_resource(conn, tenant, resourceId, lock=True)
        if resource is None:
            raise not_exists_with_id("resources", resourceId)
        _refuse_management_api(ctx, resource, "resource.cannot_modify_management_api")
        if await store.scope_name_taken(conn, tenant, resourceId, data.name):
            raise name_exists
        try:
            scope = await store.insert_scope(conn, tenant, resourceId, name=data.name, description=data.description)
        except asyncpg.UniqueViolationError:
            raise name_exists from None
        await announce(ctx, conn, ScopeCreated(scope=scope_snapshot(scope)), aggregate_id=resourceId)
    return scope


@patch("/api/resources/{resourceId:str}/scopes/{scopeId:str}", operation_id="UpdateResourceScope", tags=TAGS,
       summary="Update a scope of an API resource")
async def update_scope(
    data: JSONBody[UpdateScope], ctx: Ctx, resourceId: FromPath[str], scopeId: FromPath[str],  # noqa: N803
) -> dict[str, Any]:
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        resource = await store.find_resource(conn, tenant, resourceId, lock=True)
        if resource is None:
            raise not_exists_with_id("resources", resourceId)
        _refuse_management_api(ctx, resource, "resource.cannot_modify_management_api")
        if isinstance(data.name, str):
            _refuse_whitespace(data.name)
            if await store.scope_name_taken(conn, tenant, resourceId, data.name, except_id=scopeId):
                raise RequestError("scope.name_exists", 422, name=data.name)
        current = await store.find_scope(conn, tenant, scopeId, lock=True)
        if current is None or current["resourceId"] != resourceId:
            raise not_exists("scope")
        changes = changes_of(data, current, {"name": "name", "description": "description"})
        if not changes:
            return current
        scope = await store.update_scope(conn, tenant, scopeId, changes)
        await announce(ctx, conn, ScopeUpdated(scope=scope_snapshot(scope), changed=list(changes)),
                       aggregate_id=resourceId)
    return scope


@delete("/api/resources/{resourceId:str}/scopes/{scopeId:str}", operation_id="DeleteResourceScope", tags=TAGS,
        status_code=204, summary="Delete a scope of an API resource", description="Roles holding it lose it.")
async def delete_scope(ctx: Ctx, resourceId: FromPath[str], scopeId: FromPath[str]) -> None:  # noqa: N803
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        resource = await store.find_resource(conn, tenant, resourceId, lock=True)
        scope = await store.find_scope(conn, tenant, scopeId, lock=True)
        if resource is None or scope is None or scope["resourceId"] != resourceId:
            raise not_found()
        _refuse_management_api(ctx, resource, "resource.cannot_modify_management_api")
        role_ids = await store.delete_scope(conn, tenant, scopeId)
        await announce(ctx, conn, ScopeDeleted(scope_id=scopeId, resource_id=resourceId, role_ids=role_ids),
                       aggregate_id=resourceId)


route_handlers = [
    list_resources, create_resource, get_resource, update_resource, set_default_resource, delete_resource,
    list_scopes, create_scope, update_scope, delete_scope,
]

"""`/api/users*` (except `/api/users/:id/roles*`, which rbac owns): Logto §3.6.

Statuses as Logto: create 200, delete 204, password verify 204, identity unlink 200 with
the user. A missing user is 404 `entity.not_found`.
"""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Request, Response, delete, get, patch, post
from litestar.params import FromPath

from tessera_events.contracts.rbac import ROLE_USER_IDS, RoleRef
from tessera_identity.users import lockout, service, store
from tessera_identity.users.domain import (
    guard_create,
    guard_custom_data,
    guard_link_identity,
    guard_new_password,
    guard_password_to_verify,
    guard_suspension,
    guard_update,
    public_user,
)
from tessera_kit.search import invalid_search, parse_search
from tessera_identity.validation import read_object
from tessera_kit.app import Ctx
from tessera_kit.context import current_actor, current_tenant
from tessera_kit.errors import RequestError
from tessera_kit.http import paginated
from tessera_kit.pagination import parse_page

TAGS = ["Users"]


@get("/api/users", operation_id="ListUsers", tags=TAGS)
async def list_users(request: Request, ctx: Ctx) -> Response:
    page = parse_page(request.query_params)
    query = list(request.query_params.multi_items())
    search = parse_search(query)
    exclude_ids = None
    exclude_role_id = request.query_params.get("excludeRoleId")
    if exclude_role_id:
        exclude_ids = await ctx.call(ROLE_USER_IDS, RoleRef(role_id=exclude_role_id,
                                                            tenant_id=current_tenant()))
    try:
        async with ctx.pool.acquire() as conn:
            frequent = await store.trigram_statistics(conn, ctx.extras) if search.matches else None
            total, rows = await store.find_users(conn, current_tenant(), search, exclude_ids,
                                                 page.limit, page.offset, frequent=frequent)
    except (asyncpg.InvalidRegularExpressionError, asyncpg.InvalidEscapeSequenceError,
            asyncpg.InvalidParameterValueError) as exc:
        # A `posix` / `similar_to` / `like` pattern PostgreSQL cannot use: the client's mistake.
        raise invalid_search(str(exc)) from None
    return paginated(request, page, [public_user(r) for r in rows], total)


@post("/api/users", operation_id="CreateUser", tags=TAGS, status_code=200)
async def create_user(request: Request, ctx: Ctx) -> dict[str, Any]:
    values = guard_create(await read_object(request))
    password = values.pop("password", None)
    return public_user(await service.create_user(ctx, values, password=password))


@get("/api/users/{userId:str}", operation_id="GetUser", tags=TAGS)
async def get_user(ctx: Ctx, userId: FromPath[str]) -> dict[str, Any]:  # noqa: N803 (Logto's name)
    return public_user(await service.get_user(ctx, userId))


@patch("/api/users/{userId:str}", operation_id="UpdateUser", tags=TAGS)
async def update_user(request: Request, ctx: Ctx, userId: FromPath[str]) -> dict[str, Any]:  # noqa: N803
    values = guard_update(await read_object(request))
    return public_user(await service.update_user(ctx, userId, values))


@delete("/api/users/{userId:str}", operation_id="DeleteUser", tags=TAGS, status_code=204)
async def delete_user(ctx: Ctx, userId: FromPath[str]) -> None:  # noqa: N803
    caller = current_actor()
    if caller.id is not None and caller.id == userId:
        raise RequestError("user.cannot_delete_self", 400)
    await service.delete_user(ctx, userId)


@get("/api/users/{userId:str}/custom-data", operation_id="ListUserCustomData", tags=TAGS)
async def get_custom_data(ctx: Ctx, userId: FromPath[str]) -> dict[str, Any]:  # noqa: N803
    return (await service.get_user(ctx, userId))["custom_data"]


@patch("/api/users/{userId:str}/custom-data", operation_id="UpdateUserCustomData", tags=TAGS)
async def update_custom_data(request: Request, ctx: Ctx, userId: FromPath[str]) -> dict[str, Any]:  # noqa: N803
    custom_data = guard_custom_data(await read_object(request))
    return (await service.merge_custom_data(ctx, userId, custom_data))["custom_data"]


@patch("/api/users/{userId:str}/password", operation_id="UpdateUserPassword", tags=TAGS)
async def update_password(request: Request, ctx: Ctx, userId: FromPath[str]) -> dict[str, Any]:  # noqa: N803
    password = guard_new_password(await read_object(request))
    return public_user(await service.update_user(ctx, userId, {}, password=password))


@post("/api/users/{userId:str}/password/verify", operation_id="VerifyUserPassword", tags=TAGS,
      status_code=204)
async def verify_password(request: Request, ctx: Ctx, userId: FromPath[str]) -> None:  # noqa: N803
    password = guard_password_to_verify(await read_object(request))
    row = await store.find_user_by(ctx.pool, current_tenant(), "id", userId, with_secret=True)
    if row is None:
        raise service.user_not_found()
    if not await service.check_password(ctx, row, password, lockout.identifier_key("id", userId)):
        raise service.invalid_credentials()


@get("/api/users/{userId:str}/has-password", operation_id="GetUserHasPassword", tags=TAGS)
async def has_password(ctx: Ctx, userId: FromPath[str]) -> dict[str, bool]:  # noqa: N803
    return {"hasPassword": (await service.get_user(ctx, userId))["has_password"]}


@patch("/api/users/{userId:str}/is-suspended", operation_id="UpdateUserIsSuspended", tags=TAGS)
async def update_suspension(request: Request, ctx: Ctx, userId: FromPath[str]) -> dict[str, Any]:  # noqa: N803
    is_suspended = guard_suspension(await read_object(request))
    return public_user(await service.set_suspended(ctx, userId, is_suspended))


@post("/api/users/{userId:str}/identities", operation_id="CreateUserIdentity", tags=TAGS, status_code=200)
async def link_identity(request: Request, ctx: Ctx, userId: FromPath[str]) -> dict[str, Any]:  # noqa: N803
    connector_id, connector_data = guard_link_identity(await read_object(request))
    return (await service.link_social_identity(ctx, userId, connector_id, connector_data))["identities"]


@delete("/api/users/{userId:str}/identities/{target:str}", operation_id="DeleteUserIdentity", tags=TAGS,
        status_code=200)
async def unlink_identity(ctx: Ctx, userId: FromPath[str], target: FromPath[str]) -> dict[str, Any]:  # noqa: N803
    return public_user(await service.unlink_identity(ctx, userId, target))


handlers: list = [
    list_users, create_user, get_user, update_user, delete_user, get_custom_data, update_custom_data,
    update_password, verify_password, has_password, update_suspension, link_identity, unlink_identity,
]

"""Who holds which role, from both sides (Logto §3.6 `/users/:userId/roles`, §3.8).

Users and applications are known through identity's events (the directory read models): an
id the read model does not know is Logto's 404 once the read model has caught up
(`known_or_not_found`). Beyond Logto 1.6, from later versions: the machine-to-machine routes
(`/roles/:id/applications*`, `/applications/:id/roles*`) and the role types, so a user only
gets `User` roles and an application only `MachineToMachine` ones (roles default to `User`, so
1.6 clients, which know no types, see 1.6's behaviour). Internal roles (the admin role) are
granted to users as in 1.6, but not to applications through these routes: identity's
`isAdmin` does that.
"""

from __future__ import annotations

from typing import Annotated, Any

import asyncpg
import msgspec
from litestar import Request, Response, delete, get, post, put
from litestar.params import FromPath, JSONBody
from msgspec import Meta

from tessera_events.rbac import (
    RoleApplicationsAssigned,
    RoleApplicationsUnassigned,
    RoleUsersAssigned,
    RoleUsersUnassigned,
)
from tessera_kit.app import Ctx, ServiceContext
from tessera_kit.errors import RequestError, not_found as not_exists_with_id
from tessera_kit.http import paginated
from tessera_kit.pagination import parse_page
from tessera_kit.context import current_tenant
from tessera_rbac.announce import announce
from tessera_rbac.directory import store as directory
from tessera_rbac.directory.freshness import NotYetKnown, known_or_not_found
from tessera_rbac.holders import store
from tessera_rbac.holders.store import APPLICATIONS, USERS
from tessera_rbac.http import created_text, not_found, ok_text
from tessera_rbac.roles import store as roles
from tessera_rbac.roles.domain import (
    MACHINE_TO_MACHINE,
    USER,
    internal_role_violation,
    is_internal,
    unique_in_order,
)
from tessera_rbac.search import parse_search

Id = Annotated[str, Meta(min_length=1)]


class UserIds(msgspec.Struct, rename="camel"):
    user_ids: Annotated[list[Id], Meta(min_length=1)]


class ApplicationIds(msgspec.Struct, rename="camel"):
    application_ids: Annotated[list[Id], Meta(min_length=1)]


class RoleIds(msgspec.Struct, rename="camel"):
    role_ids: list[Id]


def _unknown_user() -> NotYetKnown:
    return NotYetKnown("entity.not_found", 404)  # users are "select one" lookups in Logto (§1.3)


def _unknown_application(application_id: str) -> NotYetKnown:
    return NotYetKnown("entity.not_exists_with_id", 404, name="applications", id=application_id)


async def _existing_role(conn: asyncpg.Connection, ctx: ServiceContext, role_id: str) -> dict[str, Any]:
    role = await roles.find_role(conn, current_tenant(), role_id, share=True)
    if role is None:
        raise not_exists_with_id("roles", role_id)
    return role


async def _roles_to_grant(
    conn: asyncpg.Connection, ctx: ServiceContext, role_ids: list[str], *, holder_type: str
) -> dict[str, dict[str, Any]]:
    """The roles, which must exist (404) and suit the holder (422 by type); an application
    is never granted an internal role here (403)."""
    found = await roles.find_roles(conn, current_tenant(), role_ids, share=True)
    missing = next((role_id for role_id in role_ids if role_id not in found), None)
    if missing is not None:
        raise not_exists_with_id("roles", missing)
    for role_id in role_ids:
        role = found[role_id]
        if holder_type == USER and role["type"] != USER:
            raise RequestError("user.invalid_role_type", 422, roleId=role_id)
        if holder_type == MACHINE_TO_MACHINE:
            if is_internal(role["name"]):
                raise internal_role_violation()
            if role["type"] != MACHINE_TO_MACHINE:
                raise RequestError("application.invalid_role_type", 422, roleId=role_id)
    return found


# --- /api/roles/:id/users ------------------------------------------------------------------


@get("/api/roles/{id:str}/users", operation_id="ListRoleUsers", tags=["Roles"], summary="Get the users of a role",
     description="Paginated, newest first; Logto's user search over `id`, `primaryEmail`, `primaryPhone`, "
                 "`username`, `name`.")
async def list_role_users(request: Request, ctx: Ctx, id: FromPath[str]) -> Response:  # noqa: A002 (Logto's name)
    page = parse_page(request.query_params)
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn:
        if await roles.find_role(conn, tenant, id) is None:
            raise not_exists_with_id("roles", id)
        search = parse_search(request.query_params.multi_items())
        total, rows = await directory.search_role_users(conn, tenant, id, search, limit=page.limit, offset=page.offset)
    return paginated(request, page, rows, total)


@post("/api/roles/{id:str}/users", operation_id="CreateRoleUsers", tags=["Roles"], status_code=201,
      summary="Give a role to users", description="Answers 201 with the text `Created`.")
async def add_role_users(data: JSONBody[UserIds], ctx: Ctx, id: FromPath[str]) -> Response:  # noqa: A002
    tenant = current_tenant()
    user_ids = unique_in_order(data.user_ids)

    async def attempt() -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            role = await _existing_role(conn, ctx, id)
            if role["type"] != USER:
                raise RequestError("user.invalid_role_type", 422, roleId=id)
            held = await store.holders_among(conn, USERS, tenant, id, user_ids)
            already = next((user_id for user_id in user_ids if user_id in held), None)
            if already is not None:
                raise RequestError("role.user_exists", 422, userId=already)
            if await directory.unknown_user_ids(conn, tenant, user_ids):
                raise _unknown_user()
            try:
                await store.link(conn, USERS, tenant, [(user_id, id) for user_id in user_ids])
            except asyncpg.UniqueViolationError:  # linked concurrently
                raise RequestError("role.user_exists", 422, userId=user_ids[0]) from None
            await announce(ctx, conn, RoleUsersAssigned(role_id=id, user_ids=user_ids), aggregate_id=id)

    await known_or_not_found(ctx, attempt)
    return created_text()


@delete("/api/roles/{id:str}/users/{userId:str}", operation_id="DeleteRoleUser", tags=["Roles"], status_code=204,
        summary="Take a role from a user")
async def remove_role_user(ctx: Ctx, id: FromPath[str], userId: FromPath[str]) -> None:  # noqa: A002, N803
    await _unlink_one(ctx, USERS, holder_id=userId, role_id=id)


# --- /api/roles/:id/applications (later Logto) ---------------------------------------------


@get("/api/roles/{id:str}/applications", operation_id="ListRoleApplications", tags=["Roles"],
     summary="Get the machine-to-machine applications of a role", description="Paginated, newest first.")
async def list_role_applications(request: Request, ctx: Ctx, id: FromPath[str]) -> Response:  # noqa: A002
    page = parse_page(request.query_params)
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn:
        if await roles.find_role(conn, tenant, id) is None:
            raise not_exists_with_id("roles", id)
        total, rows = await directory.role_applications(conn, tenant, id, limit=page.limit, offset=page.offset)
    return paginated(request, page, rows, total)


@post("/api/roles/{id:str}/applications", operation_id="CreateRoleApplications", tags=["Roles"], status_code=201,
      summary="Give a machine-to-machine role to applications", description="Answers 201 with the text `Created`.")
async def add_role_applications(data: JSONBody[ApplicationIds], ctx: Ctx, id: FromPath[str]) -> Response:  # noqa: A002
    tenant = current_tenant()
    application_ids = unique_in_order(data.application_ids)

    async def attempt() -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            role = await _existing_role(conn, ctx, id)
            if is_internal(role["name"]):
                raise internal_role_violation()
            if role["type"] != MACHINE_TO_MACHINE:
                raise RequestError("application.invalid_role_type", 422, roleId=id)
            held = await store.holders_among(conn, APPLICATIONS, tenant, id, application_ids)
            already = next((app_id for app_id in application_ids if app_id in held), None)
            if already is not None:
                raise RequestError("role.application_exists", 422, applicationId=already)
            found = await directory.find_applications(conn, tenant, application_ids)
            unknown = next((app_id for app_id in application_ids if app_id not in found), None)
            if unknown is not None:
                raise _unknown_application(unknown)
            if any(found[app_id]["type"] != MACHINE_TO_MACHINE for app_id in application_ids):
                raise RequestError("application.invalid_type", 422)
            try:
                await store.link(conn, APPLICATIONS, tenant, [(app_id, id) for app_id in application_ids])
            except asyncpg.UniqueViolationError:
                raise RequestError("role.application_exists", 422, applicationId=application_ids[0]) from None
            await announce(ctx, conn, RoleApplicationsAssigned(role_id=id, application_ids=application_ids),
                           aggregate_id=id)

    await known_or_not_found(ctx, attempt)
    return created_text()


@delete("/api/roles/{id:str}/applications/{applicationId:str}", operation_id="DeleteRoleApplication",
        tags=["Roles"], status_code=204, summary="Take a machine-to-machine role from an application")
async def remove_role_application(ctx: Ctx, id: FromPath[str], applicationId: FromPath[str]) -> None:  # noqa: A002, N803
    await _unlink_one(ctx, APPLICATIONS, holder_id=applicationId, role_id=id)


async def _unlink_one(ctx: ServiceContext, link: tuple[str, str], *, holder_id: str, role_id: str) -> None:
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        role = await roles.find_role(conn, tenant, role_id)
        if link is APPLICATIONS and role is not None and is_internal(role["name"]):
            raise internal_role_violation()  # the admin role goes through identity's isAdmin
        if not await store.unlink(conn, link, tenant, holder_id, [role_id]):
            raise not_found()
        await _announce_unassigned(ctx, conn, link, holder_id, [role_id])


async def _announce_unassigned(
    ctx: ServiceContext, conn: asyncpg.Connection, link: tuple[str, str], holder_id: str, role_ids: list[str]
) -> None:
    for role_id in role_ids:
        event = (RoleUsersUnassigned(role_id=role_id, user_ids=[holder_id]) if link is USERS
                 else RoleApplicationsUnassigned(role_id=role_id, application_ids=[holder_id]))
        await announce(ctx, conn, event, aggregate_id=role_id)


async def _announce_assigned(
    ctx: ServiceContext, conn: asyncpg.Connection, link: tuple[str, str], holder_id: str, role_ids: list[str]
) -> None:
    for role_id in role_ids:
        event = (RoleUsersAssigned(role_id=role_id, user_ids=[holder_id]) if link is USERS
                 else RoleApplicationsAssigned(role_id=role_id, application_ids=[holder_id]))
        await announce(ctx, conn, event, aggregate_id=role_id)


# --- /api/users/:userId/roles --------------------------------------------------------------


async def _require_user(conn: asyncpg.Connection, ctx: ServiceContext, user_id: str) -> None:
    if await directory.unknown_user_ids(conn, current_tenant(), [user_id]):
        raise _unknown_user()


@get("/api/users/{userId:str}/roles", operation_id="ListUserRoles", tags=["Users"], summary="Get the roles of a user",
     description="Paginated, newest first; internal roles are not listed. Logto's search over roles.")
async def list_user_roles(request: Request, ctx: Ctx, userId: FromPath[str]) -> Response:  # noqa: N803
    page = parse_page(request.query_params)

    async def attempt() -> tuple[int, list[dict[str, Any]]]:
        async with ctx.pool.acquire() as conn:
            await _require_user(conn, ctx, userId)
            search = parse_search(request.query_params.multi_items())
            filters = roles.role_filters(current_tenant(), search, held_by_user=userId)
            return await roles.search_roles(conn, filters, limit=page.limit, offset=page.offset)

    total, rows = await known_or_not_found(ctx, attempt)
    return paginated(request, page, rows, total)


@post("/api/users/{userId:str}/roles", operation_id="CreateUserRoles", tags=["Users"], status_code=201,
      summary="Give roles to a user", description="Answers 201 with the text `Created`.")
async def add_user_roles(data: JSONBody[RoleIds], ctx: Ctx, userId: FromPath[str]) -> Response:  # noqa: N803
    await _change_roles(ctx, USERS, userId, unique_in_order(data.role_ids), replace=False)
    return created_text()


@put("/api/users/{userId:str}/roles", operation_id="ReplaceUserRoles", tags=["Users"], status_code=200,
     summary="Set the roles of a user", description="The user holds exactly these roles afterwards. "
                                                    "Answers 200 with the text `OK`.")
async def replace_user_roles(data: JSONBody[RoleIds], ctx: Ctx, userId: FromPath[str]) -> Response:  # noqa: N803
    await _change_roles(ctx, USERS, userId, unique_in_order(data.role_ids), replace=True)
    return ok_text()


@delete("/api/users/{userId:str}/roles/{roleId:str}", operation_id="DeleteUserRole", tags=["Users"],
        status_code=204, summary="Take a role from a user")
async def remove_user_role(ctx: Ctx, userId: FromPath[str], roleId: FromPath[str]) -> None:  # noqa: N803
    await _unlink_one(ctx, USERS, holder_id=userId, role_id=roleId)


async def _change_roles(
    ctx: ServiceContext, link: tuple[str, str], holder_id: str, role_ids: list[str], *, replace: bool
) -> None:
    """POST (none of the roles held yet) or PUT (exactly these roles) of
    `/users/:userId/roles` and `/applications/:id/roles`, for a holder the read model knows."""
    is_user = link is USERS

    async def attempt() -> None:
        async with ctx.pool.acquire() as conn, conn.transaction():
            if is_user:
                await _require_user(conn, ctx, holder_id)
            else:
                await _m2m_application(conn, ctx, holder_id)
            holder_type = USER if is_user else MACHINE_TO_MACHINE
            if replace:
                await _replace(ctx, conn, link, holder_id, role_ids, holder_type=holder_type)
                return
            held = await store.roles_held(conn, link, current_tenant(), holder_id)
            already = next((role_id for role_id in role_ids if role_id in held), None)
            if already is not None:
                raise _role_exists(link, already)
            await _roles_to_grant(conn, ctx, role_ids, holder_type=holder_type)
            await _link_and_announce(ctx, conn, link, holder_id, role_ids)

    await known_or_not_found(ctx, attempt)


def _role_exists(link: tuple[str, str], role_id: str) -> RequestError:
    return RequestError("user.role_exists" if link is USERS else "application.role_exists", 422, roleId=role_id)


async def _link_and_announce(
    ctx: ServiceContext, conn: asyncpg.Connection, link: tuple[str, str], holder_id: str, role_ids: list[str]
) -> None:
    if not role_ids:
        return
    try:
        await store.link(conn, link, current_tenant(), [(holder_id, role_id) for role_id in role_ids])
    except asyncpg.UniqueViolationError:  # linked concurrently
        raise _role_exists(link, role_ids[0]) from None
    await _announce_assigned(ctx, conn, link, holder_id, role_ids)


async def _replace(
    ctx: ServiceContext, conn: asyncpg.Connection, link: tuple[str, str], holder_id: str, role_ids: list[str],
    *, holder_type: str,
) -> None:
    """Make the holder hold exactly `role_ids` (internal-role links, which these routes do
    not show, are kept)."""
    tenant = current_tenant()
    held = await store.roles_held(conn, link, tenant, holder_id)
    to_add = [role_id for role_id in role_ids if role_id not in held]
    await _roles_to_grant(conn, ctx, to_add, holder_type=holder_type)
    held_roles = await roles.find_roles(conn, tenant, sorted(held))
    to_remove = sorted(r for r in held - set(role_ids) if not is_internal(held_roles[r]["name"]))
    if to_remove:
        removed = await store.unlink(conn, link, tenant, holder_id, to_remove)
        await _announce_unassigned(ctx, conn, link, holder_id, removed)
    await _link_and_announce(ctx, conn, link, holder_id, to_add)


# --- /api/applications/:id/roles (later Logto) ---------------------------------------------


async def _m2m_application(conn: asyncpg.Connection, ctx: ServiceContext, application_id: str) -> None:
    application = await directory.find_application(conn, current_tenant(), application_id)
    if application is None:
        raise _unknown_application(application_id)
    if application["type"] != MACHINE_TO_MACHINE:
        raise RequestError("application.invalid_type", 422)


@get("/api/applications/{id:str}/roles", operation_id="ListApplicationRoles", tags=["Applications"],
     summary="Get the roles of a machine-to-machine application",
     description="Paginated, newest first; internal roles are not listed (see the application's `isAdmin`).")
async def list_application_roles(request: Request, ctx: Ctx, id: FromPath[str]) -> Response:  # noqa: A002
    page = parse_page(request.query_params)

    async def attempt() -> tuple[int, list[dict[str, Any]]]:
        async with ctx.pool.acquire() as conn:
            await _m2m_application(conn, ctx, id)
            search = parse_search(request.query_params.multi_items())
            filters = roles.role_filters(current_tenant(), search, held_by_application=id)
            return await roles.search_roles(conn, filters, limit=page.limit, offset=page.offset)

    total, rows = await known_or_not_found(ctx, attempt)
    return paginated(request, page, rows, total)


@post("/api/applications/{id:str}/roles", operation_id="CreateApplicationRoles", tags=["Applications"],
      status_code=201, summary="Give machine-to-machine roles to an application",
      description="Answers 201 with the text `Created`.")
async def add_application_roles(data: JSONBody[RoleIds], ctx: Ctx, id: FromPath[str]) -> Response:  # noqa: A002
    await _change_roles(ctx, APPLICATIONS, id, unique_in_order(data.role_ids), replace=False)
    return created_text()


@put("/api/applications/{id:str}/roles", operation_id="ReplaceApplicationRoles", tags=["Applications"],
     status_code=200, summary="Set the machine-to-machine roles of an application",
     description="The application holds exactly these roles afterwards (and the admin role if it is an "
                 "admin). Answers 200 with the text `OK`.")
async def replace_application_roles(data: JSONBody[RoleIds], ctx: Ctx, id: FromPath[str]) -> Response:  # noqa: A002
    await _change_roles(ctx, APPLICATIONS, id, unique_in_order(data.role_ids), replace=True)
    return ok_text()


@delete("/api/applications/{id:str}/roles/{roleId:str}", operation_id="DeleteApplicationRole",
        tags=["Applications"], status_code=204, summary="Take a machine-to-machine role from an application")
async def remove_application_role(ctx: Ctx, id: FromPath[str], roleId: FromPath[str]) -> None:  # noqa: A002, N803
    async def attempt() -> None:
        async with ctx.pool.acquire() as conn:
            await _m2m_application(conn, ctx, id)

    await known_or_not_found(ctx, attempt)
    await _unlink_one(ctx, APPLICATIONS, holder_id=id, role_id=roleId)


route_handlers = [
    list_role_users, add_role_users, remove_role_user,
    list_role_applications, add_role_applications, remove_role_application,
    list_user_roles, add_user_roles, replace_user_roles, remove_user_role,
    list_application_roles, add_application_roles, replace_application_roles, remove_application_role,
]

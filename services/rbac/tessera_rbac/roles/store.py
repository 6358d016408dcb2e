"""SQL for roles and their scopes (rbac schema only, parameterised)."""

from __future__ import annotations

from typing import Any

import asyncpg

from tessera_kit.ids import new_id
from tessera_rbac.http import fetch_searched
from tessera_rbac.resources.store import resource_columns, scope_columns
from tessera_rbac.search import ROLE_FIELDS, SCOPE_FIELDS, Search
from tessera_rbac.sql import Filters

FEATURED = 3  # users (and applications) shown with each role in GET /roles


def role_columns(alias: str = "") -> str:
    a = f"{alias}." if alias else ""
    return f'{a}tenant_id AS "tenantId", {a}id, {a}name, {a}description, {a}type'


ROLE_COLUMNS = role_columns()
VISIBLE = "r.name NOT LIKE '#internal:%'"


def role_filters(
    tenant_id: str, search: Search, *, role_type: str | None = None, exclude_user_id: str | None = None,
    exclude_application_id: str | None = None, held_by_user: str | None = None,
    held_by_application: str | None = None,
) -> Filters:
    """Visible roles (never `#internal:*`), narrowed as GET /roles and the holder lists need."""
    filters = Filters(tenant_id, alias="r").where(VISIBLE)
    if role_type is not None:
        filters.where(f"r.type = {filters.param(role_type)}")
    if exclude_user_id is not None:
        filters.where("NOT EXISTS (SELECT 1 FROM users_roles ur WHERE ur.tenant_id = r.tenant_id"
                      f" AND ur.role_id = r.id AND ur.user_id = {filters.param(exclude_user_id)})")
    if exclude_application_id is not None:
        filters.where("NOT EXISTS (SELECT 1 FROM applications_roles ar WHERE ar.tenant_id = r.tenant_id"
                      f" AND ar.role_id = r.id AND ar.application_id = {filters.param(exclude_application_id)})")
    if held_by_user is not None:
        filters.where("EXISTS (SELECT 1 FROM users_roles ur WHERE ur.tenant_id = r.tenant_id"
                      f" AND ur.role_id = r.id AND ur.user_id = {filters.param(held_by_user)})")
    if held_by_application is not None:
        filters.where("EXISTS (SELECT 1 FROM applications_roles ar WHERE ar.tenant_id = r.tenant_id"
                      f" AND ar.role_id = r.id AND ar.application_id = {filters.param(held_by_application)})")
    return filters.search(search, ROLE_FIELDS)


async def search_roles(
    conn: asyncpg.Connection, filters: Filters, *, limit: int, offset: int, with_holders: bool = False
) -> tuple[int, list[dict[str, Any]]]:
    """A page of roles, newest first, and the total. `with_holders` adds what GET /roles shows:
    `usersCount`, `featuredUsers` (id, avatar, name of the first 3 users linked), and the same
    for machine-to-machine applications — computed per role of the page in the same query."""
    total = (await fetch_searched(conn, f"SELECT count(*) AS n FROM roles r WHERE {filters.sql}", *filters.args))[0]["n"]
    page_sql = (
        f"SELECT r.tenant_id, r.id, r.name, r.description, r.type, r.created_at FROM roles r"
        f" WHERE {filters.sql} ORDER BY r.created_at DESC, r.id DESC{filters.page(limit, offset)}"
    )
    if not with_holders:
        rows = await fetch_searched(conn, f"SELECT {role_columns('p')} FROM ({page_sql}) p"
                                          " ORDER BY p.created_at DESC, p.id DESC", *filters.args)
        return total, [dict(r) for r in rows]
    rows = await fetch_searched(
        conn,
        f"""SELECT {role_columns('p')},
          (SELECT count(*) FROM users_roles ur WHERE ur.tenant_id = p.tenant_id AND ur.role_id = p.id)::int
            AS "usersCount",
          (SELECT coalesce(json_agg(json_build_object('id', u.id, 'avatar', u.avatar, 'name', u.name)
                                    ORDER BY f.created_at, f.id), '[]'::json)
             FROM (SELECT ur.user_id, ur.created_at, ur.id FROM users_roles ur
                    WHERE ur.tenant_id = p.tenant_id AND ur.role_id = p.id
                    ORDER BY ur.created_at, ur.id LIMIT {FEATURED}) f
             JOIN directory_users u ON u.tenant_id = p.tenant_id AND u.id = f.user_id) AS "featuredUsers",
          (SELECT count(*) FROM applications_roles ar WHERE ar.tenant_id = p.tenant_id AND ar.role_id = p.id)::int
            AS "applicationsCount",
          (SELECT coalesce(json_agg(json_build_object('id', a.id, 'name', a.name, 'type', a.type)
                                    ORDER BY f.created_at, f.id), '[]'::json)
             FROM (SELECT ar.application_id, ar.created_at, ar.id FROM applications_roles ar
                    WHERE ar.tenant_id = p.tenant_id AND ar.role_id = p.id
                    ORDER BY ar.created_at, ar.id LIMIT {FEATURED}) f
             JOIN directory_applications a ON a.tenant_id = p.tenant_id AND a.id = f.application_id
              AND a.deleted_at IS NULL) AS "featuredApplications"
        FROM ({page_sql}) p ORDER BY p.created_at DESC, p.id DESC""",
        *filters.args,
    )
    return total, [dict(r) for r in rows]


async def find_role(
    conn: asyncpg.Connection, tenant_id: str, role_id: str, *, lock: bool = False, share: bool = False
) -> dict[str, Any] | None:
    """`lock`: for a change of the role; `share`: the role must stay while links are added."""
    suffix = " FOR UPDATE" if lock else " FOR SHARE" if share else ""
    row = await conn.fetchrow(
        f"SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = $1 AND id = $2{suffix}", tenant_id, role_id
    )
    return dict(row) if row else None


async def find_roles(conn: asyncpg.Connection, tenant_id: str, role_ids: list[str], *, share: bool = False) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {ROLE_COLUMNS} FROM roles WHERE tenant_id = $1 AND id = ANY($2::varchar[])"
        + (" ORDER BY id FOR SHARE" if share else ""),
        tenant_id, role_ids,
    )
    return {r["id"]: dict(r) for r in rows}


async def name_taken(conn: asyncpg.Connection, tenant_id: str, name: str, *, except_id: str | None = None) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM roles WHERE tenant_id = $1 AND name = $2 AND id IS DISTINCT FROM $3",
        tenant_id, name, except_id,
    ))


async def insert_role(
    conn: asyncpg.Connection, tenant_id: str, *, name: str, description: str, role_type: str,
    role_id: str | None = None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO roles (tenant_id, id, name, description, type) VALUES ($1, $2, $3, $4, $5)"
        f" RETURNING {ROLE_COLUMNS}",
        tenant_id, role_id or new_id(), name, description, role_type,
    )
    return dict(row)


async def update_role(conn: asyncpg.Connection, tenant_id: str, role_id: str, changes: dict[str, Any]) -> dict[str, Any]:
    sets, args = [], [tenant_id, role_id]
    for column in ("name", "description"):
        if column in changes:
            args.append(changes[column])
            sets.append(f"{column} = ${len(args)}")
    row = await conn.fetchrow(
        f"UPDATE roles SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2 RETURNING {ROLE_COLUMNS}", *args
    )
    return dict(row)


async def delete_role(conn: asyncpg.Connection, tenant_id: str, role_id: str) -> None:
    """Its user, application and scope links cascade."""
    await conn.execute("DELETE FROM roles WHERE tenant_id = $1 AND id = $2", tenant_id, role_id)


# --- role <-> scope ------------------------------------------------------------------------


async def missing_scope_ids(conn: asyncpg.Connection, tenant_id: str, scope_ids: list[str]) -> list[str]:
    """The given scope ids that do not exist, in the order given. Found scopes are share-locked
    so they cannot be deleted before the links to them are written."""
    rows = await conn.fetch(
        "SELECT id FROM scopes WHERE tenant_id = $1 AND id = ANY($2::varchar[]) ORDER BY id FOR SHARE",
        tenant_id, scope_ids,
    )
    found = {r["id"] for r in rows}
    return [scope_id for scope_id in scope_ids if scope_id not in found]


async def linked_scope_ids(conn: asyncpg.Connection, tenant_id: str, role_id: str) -> set[str]:
    rows = await conn.fetch(
        "SELECT scope_id FROM roles_scopes WHERE tenant_id = $1 AND role_id = $2", tenant_id, role_id
    )
    return {r["scope_id"] for r in rows}


async def link_scopes(conn: asyncpg.Connection, tenant_id: str, role_id: str, scope_ids: list[str]) -> None:
    await conn.executemany(
        "INSERT INTO roles_scopes (tenant_id, id, role_id, scope_id) VALUES ($1, $2, $3, $4)",
        [(tenant_id, new_id(), role_id, scope_id) for scope_id in scope_ids],
    )


async def unlink_scope(conn: asyncpg.Connection, tenant_id: str, role_id: str, scope_id: str) -> bool:
    deleted = await conn.fetchval(
        "DELETE FROM roles_scopes WHERE tenant_id = $1 AND role_id = $2 AND scope_id = $3 RETURNING true",
        tenant_id, role_id, scope_id,
    )
    return bool(deleted)


async def scopes_of_role(conn: asyncpg.Connection, tenant_id: str, role_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {scope_columns('s')} FROM roles_scopes rs"
        " JOIN scopes s ON s.tenant_id = rs.tenant_id AND s.id = rs.scope_id"
        " WHERE rs.tenant_id = $1 AND rs.role_id = $2 ORDER BY s.created_at, s.id",
        tenant_id, role_id,
    )
    return [dict(r) for r in rows]


async def search_role_scopes(
    conn: asyncpg.Connection, tenant_id: str, role_id: str, search: Search, *, limit: int | None, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """The scopes of a role, each with its resource embedded (GET /roles/:id/scopes)."""
    filters = Filters(tenant_id, alias="rs")
    filters.where(f"rs.role_id = {filters.param(role_id)}").search(search, SCOPE_FIELDS, alias="s")
    joins = (" FROM roles_scopes rs JOIN scopes s ON s.tenant_id = rs.tenant_id AND s.id = rs.scope_id"
             " JOIN resources res ON res.tenant_id = s.tenant_id AND res.id = s.resource_id")
    total = None
    if limit is not None:
        total = (await fetch_searched(conn, f"SELECT count(*) AS n{joins} WHERE {filters.sql}", *filters.args))[0]["n"]
    rows = await fetch_searched(
        conn,
        f"SELECT {scope_columns('s')}, row_to_json(res_json) AS resource{joins}"
        f" CROSS JOIN LATERAL (SELECT {resource_columns('res')}) res_json"
        f" WHERE {filters.sql} ORDER BY s.created_at, s.id{filters.page(limit, offset)}",
        *filters.args,
    )
    items = [dict(r) for r in rows]
    return (len(items) if total is None else total), items

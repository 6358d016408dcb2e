"""SQL for resources and scopes (rbac schema only, parameterised)."""

from __future__ import annotations

from typing import Any

import asyncpg

from tessera_kit.ids import new_id
from tessera_rbac.http import fetch_searched
from tessera_rbac.search import SCOPE_FIELDS, Search
from tessera_rbac.sql import Filters, epoch_ms



def resource_columns(alias: str = "") -> str:
    """A resource as Logto returns it: `{tenantId, id, name, indicator, isDefault, accessTokenTtl}`."""
    a = f"{alias}." if alias else ""
    return (
        f'{a}tenant_id AS "tenantId", {a}id, {a}name, {a}indicator, {a}is_default AS "isDefault",'
        f' {a}access_token_ttl AS "accessTokenTtl"'
    )


def scope_columns(alias: str = "") -> str:
    """A scope as Logto returns it: `{tenantId, id, resourceId, name, description, createdAt}`."""
    a = f"{alias}." if alias else ""
    return (
        f'{a}tenant_id AS "tenantId", {a}id, {a}resource_id AS "resourceId", {a}name, {a}description,'
        f' {epoch_ms(a + "created_at")} AS "createdAt"'
    )


RESOURCE_COLUMNS = resource_columns()
SCOPE_COLUMNS = scope_columns()


# --- resources -----------------------------------------------------------------------------


async def count_resources(conn: asyncpg.Connection, tenant_id: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM resources WHERE tenant_id = $1", tenant_id)


async def list_resources(
    conn: asyncpg.Connection, tenant_id: str, *, limit: int | None, offset: int, include_scopes: bool
) -> list[dict[str, Any]]:
    filters = Filters(tenant_id, alias="r")
    rows = await conn.fetch(
        f"SELECT {resource_columns('r')} FROM resources r WHERE {filters.sql}"
        f" ORDER BY r.created_at, r.id{filters.page(limit, offset)}",
        *filters.args,
    )
    resources = [dict(r) for r in rows]
    if include_scopes and resources:
        by_resource: dict[str, list[dict[str, Any]]] = {r["id"]: [] for r in resources}
        scope_rows = await conn.fetch(
            f"SELECT {SCOPE_COLUMNS} FROM scopes WHERE tenant_id = $1 AND resource_id = ANY($2::varchar[])"
            " ORDER BY created_at, id",
            tenant_id, list(by_resource),
        )
        for scope in scope_rows:
            by_resource[scope["resourceId"]].append(dict(scope))
        for resource in resources:
            resource["scopes"] = by_resource[resource["id"]]
    return resources


async def find_resource(
    conn: asyncpg.Connection, tenant_id: str, resource_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {RESOURCE_COLUMNS} FROM resources WHERE tenant_id = $1 AND id = $2"
        + (" FOR UPDATE" if lock else ""),
        tenant_id, resource_id,
    )
    return dict(row) if row else None


async def indicator_in_use(conn: asyncpg.Connection, tenant_id: str, indicator: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM resources WHERE tenant_id = $1 AND indicator = $2", tenant_id, indicator
    ))


async def insert_resource(
    conn: asyncpg.Connection, tenant_id: str, *, name: str, indicator: str, access_token_ttl: int,
    resource_id: str | None = None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO resources (tenant_id, id, name, indicator, access_token_ttl) VALUES ($1, $2, $3, $4, $5)"
        f" RETURNING {RESOURCE_COLUMNS}",
        tenant_id, resource_id or new_id(), name, indicator, access_token_ttl,
    )
    return dict(row)


async def update_resource(
    conn: asyncpg.Connection, tenant_id: str, resource_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    """`changes`: {"name": ..., "access_token_ttl": ...}, any subset (column names)."""
    sets, args = [], [tenant_id, resource_id]
    for column in ("name", "access_token_ttl"):
        if column in changes:
            args.append(changes[column])
            sets.append(f"{column} = ${len(args)}")
    row = await conn.fetchrow(
        f"UPDATE resources SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2 RETURNING {RESOURCE_COLUMNS}",
        *args,
    )
    return dict(row)


async def lock_default_flag(conn: asyncpg.Connection, tenant_id: str) -> None:
    """Serialise changes of the tenant's default resource (the partial unique index would
    otherwise fail one of two concurrent "make X the default" requests)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('rbac-default-resource:' || $1))", tenant_id)


async def clear_default(conn: asyncpg.Connection, tenant_id: str, except_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "UPDATE resources SET is_default = false WHERE tenant_id = $1 AND is_default AND id <> $2"
        f" RETURNING {RESOURCE_COLUMNS}",
        tenant_id, except_id,
    )
    return [dict(r) for r in rows]


async def set_default_flag(
    conn: asyncpg.Connection, tenant_id: str, resource_id: str, is_default: bool
) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"UPDATE resources SET is_default = $3 WHERE tenant_id = $1 AND id = $2 RETURNING {RESOURCE_COLUMNS}",
        tenant_id, resource_id, is_default,
    )
    return dict(row)


async def delete_resource(conn: asyncpg.Connection, tenant_id: str, resource_id: str) -> tuple[list[str], list[str]]:
    """Delete a resource; its scopes and their role links go with it (foreign keys cascade).
    Returns (scope ids, ids of the roles that lost a scope), read before the cascade."""
    scope_ids = [r["id"] for r in await conn.fetch(
        "SELECT id FROM scopes WHERE tenant_id = $1 AND resource_id = $2 ORDER BY created_at, id",
        tenant_id, resource_id,
    )]
    role_ids = await roles_holding(conn, tenant_id, scope_ids)
    await conn.execute("DELETE FROM resources WHERE tenant_id = $1 AND id = $2", tenant_id, resource_id)
    return scope_ids, role_ids


async def roles_holding(conn: asyncpg.Connection, tenant_id: str, scope_ids: list[str]) -> list[str]:
    if not scope_ids:
        return []
    rows = await conn.fetch(
        "SELECT DISTINCT role_id FROM roles_scopes WHERE tenant_id = $1 AND scope_id = ANY($2::varchar[])"
        " ORDER BY role_id",
        tenant_id, scope_ids,
    )
    return [r["role_id"] for r in rows]


# --- scopes --------------------------------------------------------------------------------


async def search_scopes(
    conn: asyncpg.Connection, tenant_id: str, resource_id: str, search: Search, *, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    filters = Filters(tenant_id, alias="s")
    filters.where(f"s.resource_id = {filters.param(resource_id)}").search(search, SCOPE_FIELDS)
    total = (await fetch_searched(conn, f"SELECT count(*) AS n FROM scopes s WHERE {filters.sql}", *filters.args))[0]["n"]
    rows = await fetch_searched(
        conn,
        f"SELECT {scope_columns('s')} FROM scopes s WHERE {filters.sql}"
        f" ORDER BY s.created_at, s.id{filters.page(limit, offset)}",
        *filters.args,
    )
    return total, [dict(r) for r in rows]


async def find_scope(
    conn: asyncpg.Connection, tenant_id: str, scope_id: str, *, lock: bool = False
) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {SCOPE_COLUMNS} FROM scopes WHERE tenant_id = $1 AND id = $2" + (" FOR UPDATE" if lock else ""),
        tenant_id, scope_id,
    )
    return dict(row) if row else None


async def scope_name_taken(
    conn: asyncpg.Connection, tenant_id: str, resource_id: str, name: str, *, except_id: str | None = None
) -> bool:
    return bool(await conn.fetchval(
        "SELECT true FROM scopes WHERE tenant_id = $1 AND resource_id = $2 AND name = $3"
        " AND id IS DISTINCT FROM $4",
        tenant_id, resource_id, name, except_id,
    ))


async def insert_scope(
    conn: asyncpg.Connection, tenant_id: str, resource_id: str, *, name: str, description: str,
    scope_id: str | None = None,
) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO scopes (tenant_id, id, resource_id, name, description) VALUES ($1, $2, $3, $4, $5)"
        f" RETURNING {SCOPE_COLUMNS}",
        tenant_id, scope_id or new_id(), resource_id, name, description,
    )
    return dict(row)


async def update_scope(
    conn: asyncpg.Connection, tenant_id: str, scope_id: str, changes: dict[str, Any]
) -> dict[str, Any]:
    sets, args = [], [tenant_id, scope_id]
    for column in ("name", "description"):
        if column in changes:
            args.append(changes[column])
            sets.append(f"{column} = ${len(args)}")
    row = await conn.fetchrow(
        f"UPDATE scopes SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2 RETURNING {SCOPE_COLUMNS}", *args
    )
    return dict(row)


async def delete_scope(conn: asyncpg.Connection, tenant_id: str, scope_id: str) -> list[str]:
    """Delete a scope (its role links cascade); returns the roles that held it."""
    role_ids = await roles_holding(conn, tenant_id, [scope_id])
    await conn.execute("DELETE FROM scopes WHERE tenant_id = $1 AND id = $2", tenant_id, scope_id)
    return role_ids

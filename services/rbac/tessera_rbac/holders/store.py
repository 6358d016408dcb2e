"""SQL for the links between roles and their holders: users and applications."""

from __future__ import annotations

import asyncpg

from tessera_kit.ids import new_id

# The two link tables differ only in the holder's column; names come from this table only.
USERS = ("users_roles", "user_id")
APPLICATIONS = ("applications_roles", "application_id")


async def roles_held(conn: asyncpg.Connection, link: tuple[str, str], tenant_id: str, holder_id: str) -> set[str]:
    table, column = link
    rows = await conn.fetch(f"SELECT role_id FROM {table} WHERE tenant_id = $1 AND {column} = $2", tenant_id, holder_id)
    return {r["role_id"] for r in rows}


async def holders_among(
    conn: asyncpg.Connection, link: tuple[str, str], tenant_id: str, role_id: str, holder_ids: list[str]
) -> set[str]:
    """Which of `holder_ids` already hold the role."""
    table, column = link
    rows = await conn.fetch(
        f"SELECT {column} AS holder FROM {table} WHERE tenant_id = $1 AND role_id = $2"
        f" AND {column} = ANY($3::varchar[])",
        tenant_id, role_id, holder_ids,
    )
    return {r["holder"] for r in rows}


async def link(
    conn: asyncpg.Connection, link: tuple[str, str], tenant_id: str, pairs: list[tuple[str, str]]
) -> None:
    """Insert (holder id, role id) links."""
    table, column = link
    await conn.executemany(
        f"INSERT INTO {table} (tenant_id, id, {column}, role_id) VALUES ($1, $2, $3, $4)",
        [(tenant_id, new_id(), holder_id, role_id) for holder_id, role_id in pairs],
    )


async def unlink(
    conn: asyncpg.Connection, link: tuple[str, str], tenant_id: str, holder_id: str, role_ids: list[str]
) -> list[str]:
    """Remove the holder's links to `role_ids`; returns the role ids that were linked."""
    table, column = link
    rows = await conn.fetch(
        f"DELETE FROM {table} WHERE tenant_id = $1 AND {column} = $2 AND role_id = ANY($3::varchar[])"
        " RETURNING role_id",
        tenant_id, holder_id, role_ids,
    )
    return sorted(r["role_id"] for r in rows)


async def role_user_ids(conn: asyncpg.Connection, tenant_id: str, role_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT user_id FROM users_roles WHERE tenant_id = $1 AND role_id = $2 ORDER BY created_at, id",
        tenant_id, role_id,
    )
    return [r["user_id"] for r in rows]

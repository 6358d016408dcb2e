"""SQL on the connectors schema. Configs go in and come out as bytes already sealed."""

from __future__ import annotations

from typing import Any

import asyncpg

COLUMNS = "id, connector_id, sync_profile, config_encrypted, kek_id, metadata, created_at"


async def lock_tenant(conn: asyncpg.Connection, tenant: str) -> None:
    """Writes of one tenant's connectors take turns: the one-Email/one-SMS and the
    (target, platform) rules are checked on what the previous write left."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtext('connectors:' || $1))", tenant)


async def list_connectors(conn: asyncpg.Connection, tenant: str) -> list[asyncpg.Record]:
    return await conn.fetch(f"SELECT {COLUMNS} FROM connectors WHERE tenant_id = $1 ORDER BY created_at, id", tenant)


async def find_connector(conn: asyncpg.Connection, tenant: str, id: str) -> asyncpg.Record | None:  # noqa: A002
    return await conn.fetchrow(f"SELECT {COLUMNS} FROM connectors WHERE tenant_id = $1 AND id = $2", tenant, id)


async def id_exists(conn: asyncpg.Connection, tenant: str, id: str) -> bool:  # noqa: A002
    return await conn.fetchval("SELECT EXISTS (SELECT 1 FROM connectors WHERE tenant_id = $1 AND id = $2)",
                               tenant, id)


async def count_of_factory(conn: asyncpg.Connection, tenant: str, factory_id: str) -> int:
    return await conn.fetchval("SELECT count(*) FROM connectors WHERE tenant_id = $1 AND connector_id = $2",
                               tenant, factory_id)


async def insert_connector(conn: asyncpg.Connection, tenant: str, *, id: str, factory_id: str,  # noqa: A002
                           sync_profile: bool, config: bytes, kek_id: str,
                           metadata: dict[str, Any]) -> asyncpg.Record:
    return await conn.fetchrow(
        f"INSERT INTO connectors (tenant_id, id, connector_id, sync_profile, config_encrypted, kek_id, metadata)"
        f" VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING {COLUMNS}",
        tenant, id, factory_id, sync_profile, config, kek_id, metadata)


async def update_connector(conn: asyncpg.Connection, tenant: str, id: str, *,  # noqa: A002
                           sync_profile: bool | None = None, config: bytes | None = None,
                           kek_id: str | None = None, metadata: dict[str, Any] | None = None) -> asyncpg.Record:
    return await conn.fetchrow(
        f"UPDATE connectors SET sync_profile = coalesce($3, sync_profile),"
        f" config_encrypted = coalesce($4, config_encrypted), kek_id = coalesce($5, kek_id),"
        f" metadata = coalesce($6, metadata) WHERE tenant_id = $1 AND id = $2 RETURNING {COLUMNS}",
        tenant, id, sync_profile, config, kek_id, metadata)


async def delete_connectors(conn: asyncpg.Connection, tenant: str, ids: list[str]) -> list[asyncpg.Record]:
    return await conn.fetch(
        f"DELETE FROM connectors WHERE tenant_id = $1 AND id = ANY($2::text[]) RETURNING {COLUMNS}", tenant, ids)

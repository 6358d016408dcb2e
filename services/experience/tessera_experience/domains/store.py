"""SQL for custom domains (this schema only)."""

from __future__ import annotations

from typing import Any

import asyncpg

_COLUMNS = ('tenant_id AS "tenantId", id, domain, status, error_message AS "errorMessage",'
            ' dns_records AS "dnsRecords", created_at AS "createdAt"')

Executor = asyncpg.Connection | asyncpg.Pool


async def lock_tenant_domains(conn: asyncpg.Connection, tenant_id: str) -> None:
    """Serialises domain creation per tenant (the one-domain limit is checked, then inserted)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('domains:' || $1, 0))", tenant_id)


async def list_domains(conn: Executor, tenant_id: str) -> list[dict[str, Any]]:
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM domains WHERE tenant_id = $1 ORDER BY created_at, id", tenant_id)
    return [dict(r) for r in rows]


async def find_domain(conn: Executor, tenant_id: str, domain_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM domains WHERE tenant_id = $1 AND id = $2", tenant_id, domain_id)
    return dict(row) if row else None


async def insert_domain(conn: asyncpg.Connection, tenant_id: str, domain_id: str, domain: str, status: str,
                        dns_records: list[dict[str, Any]]) -> dict[str, Any]:
    row = await conn.fetchrow(
        f"INSERT INTO domains (tenant_id, id, domain, status, dns_records) VALUES ($1, $2, $3, $4, $5)"
        f" RETURNING {_COLUMNS}",
        tenant_id, domain_id, domain, status, dns_records,
    )
    return dict(row)


async def delete_domain(conn: asyncpg.Connection, tenant_id: str, domain_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"DELETE FROM domains WHERE tenant_id = $1 AND id = $2 RETURNING {_COLUMNS}", tenant_id, domain_id
    )
    return dict(row) if row else None

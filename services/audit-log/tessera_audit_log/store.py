"""SQL for the audit_log schema (parameterised, this schema only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg
import msgspec

from tessera_audit_log.domain import LogEntry
from tessera_kit.ids import new_id

LOG_COLUMNS = 'tenant_id AS "tenantId", id, key, payload, (extract(epoch FROM created_at) * 1000)::bigint AS "createdAt"'


async def insert_log(conn: asyncpg.Connection, tenant_id: str, event_id: str, entry: LogEntry) -> None:
    await conn.execute(
        "INSERT INTO logs (tenant_id, id, key, payload, created_at, event_id)"
        " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (event_id) DO NOTHING",
        tenant_id, entry.id or new_id(), entry.key, entry.payload, entry.created_at, event_id,
    )


async def insert_logs(conn: asyncpg.Connection, rows: list[tuple[str, str, LogEntry]]) -> None:
    """Many (tenant id, event id, entry) in one statement: the consumer's batches (a token
    endpoint under load sends hundreds of events a second)."""
    await conn.execute(
        "INSERT INTO logs (tenant_id, id, key, payload, created_at, event_id)"
        " SELECT tenant_id, id, key, payload::jsonb, created_at, event_id FROM"
        " unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::text[])"
        " AS t(tenant_id, id, key, payload, created_at, event_id)"
        " ON CONFLICT (event_id) DO NOTHING",
        *_log_columns(rows),
    )


def _log_columns(rows: list[tuple[str, str, LogEntry]]) -> list[list]:
    """The columns of log rows (tenant id, event id, entry) as arrays for `unnest`: tenant
    ids, ids, keys, payloads (JSON text), creation times, event ids."""
    return [
        [tenant_id for tenant_id, _, _ in rows],
        [entry.id or new_id() for _, _, entry in rows],
        [entry.key for _, _, entry in rows],
        [msgspec.json.encode(entry.payload).decode() for _, _, entry in rows],
        [entry.created_at for _, _, entry in rows],
        [event_id for _, event_id, _ in rows],
    ]


def logs_statement(rows: list[tuple[str, str, LogEntry]], activity: list[tuple[str, dt.date, str]],
                   first: int) -> tuple[list[str], list]:
    """The log entries (tenant id, event id, entry) and the active-user days (tenant id, day,
    user id) of some events, as CTEs for the consumer's one-statement apply: only the events
    in `fresh` (new to this consumer) write anything. Parameters from `$first` on."""
    p = [f"${first + i}" for i in range(9)]
    ctes = [
        "logged AS (INSERT INTO logs (tenant_id, id, key, payload, created_at, event_id)"
        " SELECT tenant_id, id, key, payload::jsonb, created_at, event_id FROM"
        f" unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[], {p[4]}::timestamptz[],"
        f" {p[5]}::text[]) AS t(tenant_id, id, key, payload, created_at, event_id)"
        " WHERE event_id IN (SELECT event_id FROM fresh) ON CONFLICT (event_id) DO NOTHING)",
        "active AS (INSERT INTO dashboard_activity (tenant_id, day, user_id)"
        f" SELECT DISTINCT tenant_id, day, user_id FROM unnest({p[6]}::text[], {p[7]}::date[], {p[8]}::text[],"
        f" {p[5]}::text[]) AS t(tenant_id, day, user_id, event_id)"
        " WHERE user_id IS NOT NULL AND event_id IN (SELECT event_id FROM fresh) ON CONFLICT DO NOTHING)",
    ]
    args = [
        *_log_columns(rows),
        [tenant_id for tenant_id, _, _ in activity],
        [day for _, day, _ in activity],
        [user_id for _, _, user_id in activity],
    ]
    return ctes, args


def _log_filter(tenant_id: str, user_id: str | None, application_id: str | None, key: str | None):
    clauses, args = ["tenant_id = $1"], [tenant_id]
    for column, value in (("payload->>'userId'", user_id), ("payload->>'applicationId'", application_id), ("key", key)):
        if value is not None:
            args.append(value)
            clauses.append(f"{column} = ${len(args)}")
    return " AND ".join(clauses), args


async def find_logs(
    pool: asyncpg.Pool, tenant_id: str, *, user_id: str | None, application_id: str | None,
    key: str | None, limit: int, offset: int,
) -> tuple[int, list[dict[str, Any]]]:
    where, args = _log_filter(tenant_id, user_id, application_id, key)
    async with pool.acquire() as conn:
        total = await conn.fetchval(f"SELECT count(*) FROM logs WHERE {where}", *args)
        rows = await conn.fetch(
            f"SELECT {LOG_COLUMNS} FROM logs WHERE {where}"
            f" ORDER BY created_at DESC, id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
            *args, limit, offset,
        )
    return total, [dict(r) for r in rows]


async def find_log(pool: asyncpg.Pool, tenant_id: str, log_id: str) -> dict[str, Any] | None:
    row = await pool.fetchrow(f"SELECT {LOG_COLUMNS} FROM logs WHERE tenant_id = $1 AND id = $2", tenant_id, log_id)
    return dict(row) if row else None


async def user_created(conn: asyncpg.Connection, tenant_id: str, user_id: str, at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO dashboard_users (tenant_id, user_id, created_at) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, user_id) DO NOTHING",
        tenant_id, user_id, at,
    )


async def user_deleted(conn: asyncpg.Connection, tenant_id: str, user_id: str, at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO dashboard_users (tenant_id, user_id, created_at, deleted_at) VALUES ($1, $2, $3, $3)"
        " ON CONFLICT (tenant_id, user_id) DO UPDATE SET deleted_at = excluded.deleted_at",
        tenant_id, user_id, at,
    )


async def user_active(conn: asyncpg.Connection, tenant_id: str, user_id: str, day: dt.date) -> None:
    await conn.execute(
        "INSERT INTO dashboard_activity (tenant_id, day, user_id) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING",
        tenant_id, day, user_id,
    )


async def count_users(pool: asyncpg.Pool, tenant_id: str) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM dashboard_users WHERE tenant_id = $1 AND deleted_at IS NULL", tenant_id
    )


async def count_new_users(pool: asyncpg.Pool, tenant_id: str, since: dt.datetime, until: dt.datetime) -> int:
    return await pool.fetchval(
        "SELECT count(*) FROM dashboard_users WHERE tenant_id = $1 AND deleted_at IS NULL"
        " AND created_at >= $2 AND created_at < $3",
        tenant_id, since, until,
    )


async def daily_active(pool: asyncpg.Pool, tenant_id: str, first: dt.date, last: dt.date) -> dict[dt.date, int]:
    rows = await pool.fetch(
        "SELECT day, count(*) AS n FROM dashboard_activity WHERE tenant_id = $1 AND day BETWEEN $2 AND $3"
        " GROUP BY day",
        tenant_id, first, last,
    )
    return {r["day"]: r["n"] for r in rows}


async def distinct_active(pool: asyncpg.Pool, tenant_id: str, first: dt.date, last: dt.date) -> int:
    return await pool.fetchval(
        "SELECT count(DISTINCT user_id) FROM dashboard_activity WHERE tenant_id = $1 AND day BETWEEN $2 AND $3",
        tenant_id, first, last,
    )

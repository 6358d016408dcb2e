"""SQL for deliveries and their attempts (parameterised, this schema only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from tessera_kit.ids import new_id

DELIVERY_COLUMNS = (
    'id, hook_id AS "hookId", event, status, attempts, max_attempts AS "maxAttempts",'
    ' (extract(epoch FROM next_attempt_at) * 1000)::bigint AS "nextAttemptAt",'
    ' (extract(epoch FROM created_at) * 1000)::bigint AS "createdAt", body'
)
ATTEMPT_COLUMNS = (
    'id, delivery_id, number, result, status_code AS "statusCode", response, error,'
    ' (extract(epoch FROM created_at) * 1000)::bigint AS "createdAt"'
)


async def insert_delivery(
    conn: asyncpg.Connection, tenant_id: str, *, hook_id: str, event: str, source_event_id: str,
    body: bytes, max_attempts: int, now: dt.datetime,
) -> str | None:
    """A new delivery due now; None if this event was already turned into one for the hook."""
    return await conn.fetchval(
        "INSERT INTO deliveries (tenant_id, id, hook_id, event, source_event_id, body, max_attempts,"
        " next_attempt_at, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8, $8)"
        " ON CONFLICT (hook_id, source_event_id) DO NOTHING RETURNING id",
        tenant_id, new_id(), hook_id, event, source_event_id, body.decode(), max_attempts, now,
    )


async def claim_due(
    conn: asyncpg.Connection, *, now: dt.datetime, busy_hooks: list[str], limit: int, token: str,
    lease_seconds: float,
) -> list[asyncpg.Record]:
    """Lease due deliveries of enabled hooks. SKIP LOCKED and the lease keep replicas apart:
    a row is claimed by one of them until its lease runs out."""
    return await conn.fetch(
        "WITH due AS ("
        " SELECT d.id FROM deliveries d JOIN hooks h ON h.id = d.hook_id"
        " WHERE d.status = 'pending' AND d.next_attempt_at <= $1"
        " AND (d.lease_until IS NULL OR d.lease_until <= $1) AND h.enabled"
        " AND NOT (d.hook_id = ANY($2::text[]))"
        " ORDER BY d.next_attempt_at LIMIT $3 FOR UPDATE OF d SKIP LOCKED)"
        " UPDATE deliveries d SET lease_token = $4, lease_until = $1 + make_interval(secs => $5)"
        " FROM due, hooks h WHERE d.id = due.id AND h.id = d.hook_id"
        " RETURNING d.tenant_id, d.id, d.hook_id, d.event, d.body, d.attempts, d.max_attempts,"
        " h.config, h.signing_key",
        now, busy_hooks, limit, token, lease_seconds,
    )


async def release(conn: asyncpg.Connection, delivery_ids: list[str], token: str) -> None:
    """Give back leases this replica took but will not use now (one statement for all)."""
    if delivery_ids:
        await conn.execute(
            "UPDATE deliveries SET lease_token = NULL, lease_until = NULL"
            " WHERE id = ANY($1::text[]) AND lease_token = $2",
            delivery_ids, token,
        )


async def finish_attempt(
    conn: asyncpg.Connection, delivery_id: str, token: str, *, status: str, next_attempt_at: dt.datetime | None,
    now: dt.datetime,
) -> int | None:
    """Count the attempt and set what follows; None if the lease was lost (another replica
    owns the delivery now, so this outcome is not recorded)."""
    return await conn.fetchval(
        "UPDATE deliveries SET attempts = attempts + 1, status = $3, next_attempt_at = $4,"
        " lease_token = NULL, lease_until = NULL, updated_at = $5"
        " WHERE id = $1 AND lease_token = $2 RETURNING attempts",
        delivery_id, token, status, next_attempt_at, now,
    )


async def insert_attempt(
    conn: asyncpg.Connection, tenant_id: str, *, delivery_id: str, hook_id: str, number: int, event: str,
    result: str, status_code: int | None, response: Any, error: str | None, now: dt.datetime,
) -> str:
    attempt_id = new_id()
    await conn.execute(
        "INSERT INTO delivery_attempts (tenant_id, id, delivery_id, hook_id, number, event, result,"
        " status_code, response, error, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        tenant_id, attempt_id, delivery_id, hook_id, number, event, result, status_code, response, error, now,
    )
    return attempt_id


async def note_success(conn: asyncpg.Connection, hook_id: str) -> None:
    await conn.execute("UPDATE hooks SET failing_since = NULL WHERE id = $1 AND failing_since IS NOT NULL", hook_id)


async def note_failure(
    conn: asyncpg.Connection, hook_id: str, now: dt.datetime, disable_before: dt.datetime,
) -> dt.datetime | None:
    """Remember since when the hook fails; disable it when that is older than `disable_before`.
    Returns the failing-since time when this call disabled the hook."""
    row = await conn.fetchrow("SELECT enabled, failing_since FROM hooks WHERE id = $1 FOR UPDATE", hook_id)
    if row is None:
        return None
    since = row["failing_since"] or now
    disable = row["enabled"] and since <= disable_before
    await conn.execute(
        "UPDATE hooks SET failing_since = $2, enabled = enabled AND NOT $3 WHERE id = $1", hook_id, since, disable)
    return since if disable else None


async def list_deliveries(
    conn: asyncpg.Connection, tenant_id: str, hook_id: str, *, limit: int, offset: int, status: str | None,
) -> tuple[int, list[dict[str, Any]]]:
    where, args = "tenant_id = $1 AND hook_id = $2", [tenant_id, hook_id]
    if status is not None:
        args.append(status)
        where += f" AND status = ${len(args)}"
    total = await conn.fetchval(f"SELECT count(*) FROM deliveries WHERE {where}", *args)
    rows = await conn.fetch(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE {where}"
        f" ORDER BY created_at DESC, id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args, limit, offset,
    )
    deliveries = [dict(r) for r in rows]
    attempts = await conn.fetch(
        f"SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts WHERE delivery_id = ANY($1::text[]) ORDER BY number",
        [d["id"] for d in deliveries],
    )
    by_delivery: dict[str, list[dict[str, Any]]] = {d["id"]: [] for d in deliveries}
    for attempt in attempts:
        row = dict(attempt)
        by_delivery[row.pop("delivery_id")].append(row)
    for delivery in deliveries:
        delivery["attempts"] = by_delivery[delivery["id"]]
    return total, deliveries


async def find_delivery(conn: asyncpg.Connection, tenant_id: str, hook_id: str, delivery_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {DELIVERY_COLUMNS} FROM deliveries WHERE tenant_id = $1 AND hook_id = $2 AND id = $3",
        tenant_id, hook_id, delivery_id,
    )
    if row is None:
        return None
    delivery = dict(row)
    attempts = await conn.fetch(
        f"SELECT {ATTEMPT_COLUMNS} FROM delivery_attempts WHERE delivery_id = $1 ORDER BY number", delivery_id)
    delivery["attempts"] = [{k: v for k, v in dict(a).items() if k != "delivery_id"} for a in attempts]
    return delivery


async def retry_now(conn: asyncpg.Connection, tenant_id: str, hook_id: str, delivery_id: str, now: dt.datetime) -> bool:
    """Make a delivery due now, whatever its state; one more attempt is allowed if it had
    used them all. A delivery in flight (leased) is left alone."""
    return bool(await conn.fetchval(
        "UPDATE deliveries SET status = 'pending', next_attempt_at = $4,"
        " max_attempts = greatest(max_attempts, attempts + 1), updated_at = $4"
        " WHERE tenant_id = $1 AND hook_id = $2 AND id = $3 AND (lease_until IS NULL OR lease_until <= $4)"
        " RETURNING true",
        tenant_id, hook_id, delivery_id, now,
    ))


async def stats(conn: asyncpg.Connection, hook_ids: list[str], since: dt.datetime) -> dict[str, dict[str, int]]:
    """Logto's `executionStats` over the last 24 hours, from the attempts."""
    rows = await conn.fetch(
        "SELECT hook_id, count(*) AS requests, count(*) FILTER (WHERE result = 'Success') AS successes"
        " FROM delivery_attempts WHERE hook_id = ANY($1::text[]) AND created_at > $2 GROUP BY hook_id",
        hook_ids, since,
    )
    found = {r["hook_id"]: {"requestCount": r["requests"], "successCount": r["successes"]} for r in rows}
    return {h: found.get(h, {"requestCount": 0, "successCount": 0}) for h in hook_ids}


async def recent_attempts(
    conn: asyncpg.Connection, tenant_id: str, hook_id: str, *, since: dt.datetime, key: str | None,
    limit: int, offset: int,
) -> tuple[int, list[asyncpg.Record]]:
    where = "a.tenant_id = $1 AND a.hook_id = $2 AND a.created_at > $3"
    args: list[Any] = [tenant_id, hook_id, since]
    if key is not None:
        args.append(key)
        where += f" AND 'TriggerHook.' || a.event = ${len(args)}"
    total = await conn.fetchval(f"SELECT count(*) FROM delivery_attempts a WHERE {where}", *args)
    rows = await conn.fetch(
        "SELECT a.tenant_id, a.id, a.hook_id, a.event, a.result, a.response, a.error, a.created_at, d.body"
        f" FROM delivery_attempts a JOIN deliveries d ON d.id = a.delivery_id WHERE {where}"
        f" ORDER BY a.created_at DESC, a.id DESC LIMIT ${len(args) + 1} OFFSET ${len(args) + 2}",
        *args, limit, offset,
    )
    return total, rows

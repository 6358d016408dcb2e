"""SQL for deliveries and their attempts (parameterised, this schema only)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from tessera_kit.ids import new_id
from tessera_webhook_dispatcher.deliveries.domain import NewDelivery

DELIVERY_COLUMNS = (
    'id, hook_id AS "hookId", event, status, attempts, max_attempts AS "maxAttempts",'
    ' (extract(epoch FROM next_attempt_at) * 1000)::bigint AS "nextAttemptAt",'
    ' (extract(epoch FROM created_at) * 1000)::bigint AS "createdAt", body'
)
ATTEMPT_COLUMNS = (
    'id, delivery_id, number, result, status_code AS "statusCode", response, error,'
    ' (extract(epoch FROM created_at) * 1000)::bigint AS "createdAt"'
)


async def insert_deliveries(
    conn: asyncpg.Connection, new: list[NewDelivery], *, now: dt.datetime, channel: str,
) -> int:
    """New deliveries, due now (one statement for a whole batch of events), skipping any whose
    event was already turned into a delivery for its hook; if any was written, NOTIFY `channel`
    (at commit) so every replica's scheduler wakes. Returns how many were written. Their
    creation times are a microsecond apart in the batch's order, so a hook's deliveries list in
    the order of the events, as when each event was applied alone."""
    return await conn.fetchval(
        "WITH created AS (INSERT INTO deliveries (tenant_id, id, hook_id, event, source_event_id, body,"
        " max_attempts, next_attempt_at, created_at, updated_at)"
        " SELECT tenant_id, id, hook_id, event, source_event_id, body, max_attempts, $8::timestamptz, made, made"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::int[])"
        " WITH ORDINALITY AS n(tenant_id, id, hook_id, event, source_event_id, body, max_attempts, position),"
        " LATERAL (SELECT $8::timestamptz + (position - 1) * interval '1 microsecond' AS made) m"
        " ON CONFLICT (hook_id, source_event_id) DO NOTHING RETURNING 1),"
        " counted AS (SELECT count(*) AS n FROM created)"
        " SELECT n FROM counted, LATERAL (SELECT pg_notify($9, '') WHERE n > 0) notified",
        [d.tenant_id for d in new], [new_id() for _ in new], [d.hook_id for d in new], [d.event for d in new],
        [d.source_event_id for d in new], [d.body.decode() for d in new], [d.max_attempts for d in new],
        now, channel,
    ) or 0


async def claim_due(
    conn: asyncpg.Connection, *, now: dt.datetime, per_hook: int, in_flight: dict[str, int], limit: int,
    token: str, lease_seconds: float,
) -> list[asyncpg.Record]:
    """Lease due deliveries of enabled hooks, each hook's up to its free slots in this replica
    (`per_hook` less what it has in flight), so nothing is claimed that cannot be sent now.
    SKIP LOCKED and the lease keep replicas apart: a row is claimed by one of them until its
    lease runs out. The due conditions sit on the locked rows themselves, so PostgreSQL checks
    them again on a row another replica has just leased (and skips it). The lease is written
    by key (`= ANY(ARRAY(...))`): joined to the claimed rows instead, the planner expected up
    to `limit` of them and read the whole table for the join once a backlog had grown."""
    return await conn.fetch(
        "WITH free AS ("
        " SELECT h.id, greatest($2::int - coalesce(u.used, 0), 0) AS slots FROM hooks h"
        " LEFT JOIN unnest($3::text[], $4::int[]) AS u(hook_id, used) ON u.hook_id = h.id"
        " WHERE h.enabled),"
        " due AS ("
        " SELECT d.id, d.next_attempt_at FROM free, LATERAL ("
        "  SELECT d.id, d.next_attempt_at FROM deliveries d"
        "  WHERE d.hook_id = free.id AND d.status = 'pending' AND d.next_attempt_at <= $1"
        "  AND (d.lease_until IS NULL OR d.lease_until <= $1)"
        "  ORDER BY d.next_attempt_at LIMIT free.slots FOR UPDATE OF d SKIP LOCKED) d"
        " ORDER BY d.next_attempt_at LIMIT $5),"
        " leased AS (UPDATE deliveries d SET lease_token = $6, lease_until = $1 + make_interval(secs => $7)"
        " WHERE d.id = ANY (ARRAY(SELECT id FROM due))"
        " RETURNING d.tenant_id, d.id, d.hook_id, d.event, d.body, d.attempts, d.max_attempts)"
        " SELECT l.*, h.config, h.signing_key FROM leased l JOIN hooks h ON h.id = l.hook_id",
        now, per_hook, list(in_flight), list(in_flight.values()), limit, token, lease_seconds,
    )


async def next_attempt_at(conn: asyncpg.Connection) -> dt.datetime | None:
    """When the earliest delivery of an enabled hook still to be made is due (it may be due
    already, and leased), or None when there is none. A disabled hook's wait until it is
    enabled again (which notifies)."""
    # Hook by hook, one probe each of deliveries_due_per_hook (the order asks for that index), as
    # claim_due: a join or a scan could read a disabled hook's whole backlog at every look.
    return await conn.fetchval(
        "SELECT min(p.next_attempt_at) FROM hooks h, LATERAL (SELECT d.next_attempt_at FROM deliveries d"
        " WHERE d.hook_id = h.id AND d.status = 'pending' ORDER BY d.next_attempt_at LIMIT 1) p"
        " WHERE h.enabled")


async def notify(conn: asyncpg.Connection, channel: str) -> None:
    """Wake every replica's scheduler when the caller's transaction commits."""
    await conn.execute("SELECT pg_notify($1, '')", channel)


async def finish_attempts(
    conn: asyncpg.Connection, delivery_ids: list[str], tokens: list[str], statuses: list[str],
    next_attempts: list[dt.datetime | None], now: dt.datetime,
) -> dict[str, int]:
    """Count each delivery's attempt and set what follows, all in one statement, where the
    lease still holds: {delivery id: attempts}. A delivery missing from the answer lost its
    lease (another replica owns it now), so its outcome is not recorded."""
    rows = await conn.fetch(
        "UPDATE deliveries d SET attempts = d.attempts + 1, status = u.status, next_attempt_at = u.next_at,"
        " lease_token = NULL, lease_until = NULL, updated_at = $5"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[]) AS u(id, token, status, next_at)"
        " WHERE d.id = u.id AND d.lease_token = u.token RETURNING d.id, d.attempts",
        delivery_ids, tokens, statuses, next_attempts, now,
    )
    return {r["id"]: r["attempts"] for r in rows}


async def insert_attempts(conn: asyncpg.Connection, attempts: list[tuple]) -> None:
    """Several attempts in one statement, each (tenant_id, id, delivery_id, hook_id, number,
    event, result, status_code, response, error, created_at)."""
    await conn.execute(
        "INSERT INTO delivery_attempts (tenant_id, id, delivery_id, hook_id, number, event, result,"
        " status_code, response, error, created_at)"
        " SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::text[],"
        " $7::text[], $8::int[], $9::jsonb[], $10::text[], $11::timestamptz[])",
        *(list(column) for column in zip(*attempts)),
    )


async def note_successes(conn: asyncpg.Connection, hook_ids: list[str]) -> None:
    await conn.execute(
        "UPDATE hooks SET failing_since = NULL WHERE id = ANY($1::text[]) AND failing_since IS NOT NULL", hook_ids)


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

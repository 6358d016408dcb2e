"""SQL for hooks (parameterised, this schema only)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import asyncpg

from tessera_events.epoch_ms import from_ms
from tessera_kit.ids import new_id

HOOK_COLUMNS = (
    'tenant_id AS "tenantId", id, name, event, events, config, signing_key AS "signingKey", enabled,'
    ' (extract(epoch FROM created_at) * 1000)::bigint AS "createdAt"'
)
# Request field -> column, for the fields a PATCH may set.
COLUMNS = {"name": "name", "event": "event", "events": "events", "config": "config", "enabled": "enabled",
           "createdAt": "created_at"}


async def any_hook(conn: asyncpg.Connection) -> bool:
    """Whether any tenant has a hook (the dispatcher then needs its HTTP client)."""
    return await conn.fetchval("SELECT EXISTS (SELECT FROM hooks)")


async def insert_hook(conn: asyncpg.Connection, tenant_id: str, fields: dict[str, Any]) -> dict[str, Any]:
    row = await conn.fetchrow(
        "INSERT INTO hooks (tenant_id, id, name, event, events, config, signing_key, enabled, created_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, coalesce($9, now())) RETURNING " + HOOK_COLUMNS,
        tenant_id, new_id(), fields["name"], fields["event"], fields["events"], fields["config"], new_id(),
        fields["enabled"], fields.get("created_at"),
    )
    return dict(row)


async def find_hook(conn: asyncpg.Connection, tenant_id: str, hook_id: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {HOOK_COLUMNS} FROM hooks WHERE tenant_id = $1 AND id = $2" + (" FOR UPDATE" if lock else ""),
        tenant_id, hook_id,
    )
    return dict(row) if row else None


async def list_hooks(conn: asyncpg.Connection, tenant_id: str, *, limit: int | None, offset: int) -> tuple[int, list[dict[str, Any]]]:
    total = await conn.fetchval("SELECT count(*) FROM hooks WHERE tenant_id = $1", tenant_id)
    rows = await conn.fetch(
        f"SELECT {HOOK_COLUMNS} FROM hooks WHERE tenant_id = $1 ORDER BY created_at DESC, id DESC"
        " LIMIT $2 OFFSET $3",
        tenant_id, limit, offset,
    )
    return total, [dict(r) for r in rows]


async def update_hook(conn: asyncpg.Connection, tenant_id: str, hook_id: str, changes: dict[str, Any]) -> dict[str, Any] | None:
    """Set the given columns (names from COLUMNS only); None when there is no such hook."""
    sets, args = [], [tenant_id, hook_id]
    for field, value in changes.items():
        args.append(from_ms(value) if field == "createdAt" else value)
        sets.append(f"{COLUMNS[field]} = ${len(args)}")
    if "enabled" in changes and changes["enabled"]:
        sets.append("failing_since = NULL")  # re-enabled: its failures start over
    if not sets:
        return await find_hook(conn, tenant_id, hook_id)
    row = await conn.fetchrow(
        f"UPDATE hooks SET {', '.join(sets)} WHERE tenant_id = $1 AND id = $2 RETURNING {HOOK_COLUMNS}", *args)
    return dict(row) if row else None


async def replace_signing_key(conn: asyncpg.Connection, tenant_id: str, hook_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"UPDATE hooks SET signing_key = $3 WHERE tenant_id = $1 AND id = $2 RETURNING {HOOK_COLUMNS}",
        tenant_id, hook_id, new_id(),
    )
    return dict(row) if row else None


async def delete_hook(conn: asyncpg.Connection, tenant_id: str, hook_id: str) -> bool:
    return bool(await conn.fetchval(
        "DELETE FROM hooks WHERE tenant_id = $1 AND id = $2 RETURNING true", tenant_id, hook_id))


# Logto §6.1: an enabled hook selects an event named in its `events`, or, with none there, in
# its legacy `event`. The one rule for a single event and for many at once.
def _selects(hook: str, event: str) -> str:
    return f"{hook}.enabled AND ({hook}.events ? {event} OR ({hook}.events = '[]'::jsonb AND {hook}.event = {event}))"


# True when no enabled hook selects any of (tenant, hook event) in two parallel arrays (their
# parameters named by the caller).
NO_HOOK_SELECTS = (
    "NOT EXISTS (SELECT FROM unnest({tenants}::text[], {events}::text[]) AS t(tenant_id, event)"
    f" JOIN hooks h ON h.tenant_id = t.tenant_id AND {_selects('h', 't.event')})"
)
_HOOKS_SELECTING = (
    "SELECT t.tenant_id, t.event, h.id, h.config FROM unnest($1::text[], $2::text[]) AS t(tenant_id, event)"
    f" JOIN hooks h ON h.tenant_id = t.tenant_id AND {_selects('h', 't.event')}"
)


async def hooks_selecting(
    conn: asyncpg.Connection, wanted: Iterable[tuple[str, str]],
) -> dict[tuple[str, str], list[asyncpg.Record]]:
    """Enabled hooks that each (tenant, hook event) selects, for many at once (one statement
    for a consumer's whole batch); a pair no hook selects is absent."""
    pairs = sorted(set(wanted))
    selected: dict[tuple[str, str], list[asyncpg.Record]] = {}
    for row in await conn.fetch(_HOOKS_SELECTING, [t for t, _ in pairs], [e for _, e in pairs]):
        selected.setdefault((row["tenant_id"], row["event"]), []).append(row)
    return selected

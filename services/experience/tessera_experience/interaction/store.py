"""SQL for interactions (this schema only); their verification codes are in
`verification_codes/store.py`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from tessera_experience.verification_codes.domain import CODE_TTL

Executor = asyncpg.Connection | asyncpg.Pool


def _storage(row: asyncpg.Record) -> dict[str, Any]:
    """The stored interaction as Logto's `interaction.result` (camelCase, optional keys left out)."""
    storage: dict[str, Any] = {"event": row["event"], "identifiers": row["identifiers"] or []}
    if row["profile"] is not None:
        storage["profile"] = row["profile"]
    if row["account_id"] is not None:
        storage["accountId"] = row["account_id"]
    if row["connector_session"] is not None:
        storage["connectorSession"] = row["connector_session"]
    if row["registered"] is not None:
        storage["registered"] = row["registered"]
    return storage


async def find(conn: Executor, tenant_id: str, uid: str, *, lock: bool = False) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        "SELECT event, identifiers, profile, account_id, connector_session, registered FROM interactions"
        " WHERE tenant_id = $1 AND uid = $2 AND expires_at > now()" + (" FOR UPDATE" if lock else ""),
        tenant_id, uid,
    )
    return _storage(row) if row else None


async def save(conn: Executor, tenant_id: str, uid: str, storage: dict[str, Any],
               expires_at: dt.datetime) -> None:
    """Replace the stored interaction (Logto stores the whole result each time)."""
    await conn.execute(
        "INSERT INTO interactions (tenant_id, uid, event, identifiers, profile, account_id, connector_session,"
        " registered, updated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9)"
        " ON CONFLICT (tenant_id, uid) DO UPDATE SET event = excluded.event, identifiers = excluded.identifiers,"
        " profile = excluded.profile, account_id = excluded.account_id,"
        " connector_session = excluded.connector_session, registered = excluded.registered,"
        " updated_at = now(), expires_at = excluded.expires_at",
        tenant_id, uid, storage["event"], storage.get("identifiers") or [], storage.get("profile"),
        storage.get("accountId"), storage.get("connectorSession"), storage.get("registered"), expires_at,
    )


async def delete(conn: Executor, tenant_id: str, uid: str) -> None:
    await conn.execute("DELETE FROM interactions WHERE tenant_id = $1 AND uid = $2", tenant_id, uid)
    await conn.execute("DELETE FROM verification_codes WHERE tenant_id = $1 AND interaction_uid = $2",
                       tenant_id, uid)


async def purge_expired(conn: Executor) -> None:
    """Interactions outlive identity's by nothing: their rows go (see `purge.py`)."""
    await conn.execute("DELETE FROM interactions WHERE expires_at < now()")
    await conn.execute("DELETE FROM verification_codes WHERE created_at < now() - $1::interval", CODE_TTL * 2)


# ------------------------------------------------------------------ verification codes


async def latest_code_target(conn: Executor, tenant_id: str, uid: str, type_: str) -> tuple[str, str] | None:
    """("email" | "phone", address) the latest unconsumed code of (interaction, type) went to."""
    row = await conn.fetchrow(
        "SELECT email, phone FROM verification_codes WHERE tenant_id = $1 AND interaction_uid = $2 AND type = $3"
        " AND NOT consumed ORDER BY created_at DESC LIMIT 1",
        tenant_id, uid, type_,
    )
    if row is None:
        return None
    return ("email", row["email"]) if row["email"] else ("phone", row["phone"])

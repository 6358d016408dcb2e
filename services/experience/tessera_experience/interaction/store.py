"""SQL for interactions (this schema only); their verification codes are in
`verification_codes/store.py`."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from tessera_experience.verification_codes import store as codes

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


async def find_with_sign_in_experience(conn: Executor, tenant_id: str, uid: str
                                       ) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """(the interaction's storage, the tenant's sign-in experience): one round trip for what a
    submit reads; (None, None) when there is no live interaction."""
    from tessera_experience.config.store import SIE_SELECT_JSON

    row = await conn.fetchrow(
        "SELECT event, identifiers, profile, account_id, connector_session, registered,"
        f" ({SIE_SELECT_JSON}) AS sie FROM interactions"
        " WHERE tenant_id = $1 AND uid = $2 AND expires_at > now()",
        tenant_id, uid,
    )
    return (_storage(row), row["sie"]) if row else (None, None)


SAVE = (
    "INSERT INTO interactions (tenant_id, uid, event, identifiers, profile, account_id, connector_session,"
    " registered, updated_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, now(), $9)"
    " ON CONFLICT (tenant_id, uid) DO UPDATE SET event = excluded.event, identifiers = excluded.identifiers,"
    " profile = excluded.profile, account_id = excluded.account_id,"
    " connector_session = excluded.connector_session, registered = excluded.registered,"
    " updated_at = now(), expires_at = excluded.expires_at"
)


def save_args(tenant_id: str, uid: str, storage: dict[str, Any], expires_at: dt.datetime) -> tuple:
    """`SAVE`'s arguments, for a caller that sends it with its events in one statement."""
    return (tenant_id, uid, storage["event"], storage.get("identifiers") or [], storage.get("profile"),
            storage.get("accountId"), storage.get("connectorSession"), storage.get("registered"), expires_at)


async def save(conn: Executor, tenant_id: str, uid: str, storage: dict[str, Any],
               expires_at: dt.datetime) -> None:
    """Replace the stored interaction (Logto stores the whole result each time)."""
    await conn.execute(SAVE, *save_args(tenant_id, uid, storage, expires_at))


async def delete(conn: Executor, tenant_id: str, uid: str) -> None:
    """The interaction and its verification codes."""
    await conn.execute("DELETE FROM interactions WHERE tenant_id = $1 AND uid = $2", tenant_id, uid)
    await codes.delete_of_interaction(conn, tenant_id, uid)


async def purge_expired(conn: Executor) -> None:
    """Interactions outlive identity's by nothing: their rows go (see `purge.py`)."""
    await conn.execute("DELETE FROM interactions WHERE expires_at < now()")


"""SQL for verification codes (this schema only). A code belongs to an interaction and a
type (Logto §4.6), or, for the management API's Generic codes, to its recipient alone."""

from __future__ import annotations

from typing import Any

import asyncpg

from tessera_experience.verification_codes.domain import CODE_TTL

Executor = asyncpg.Connection | asyncpg.Pool

# The codes of one owner: (interaction, type), or (recipient, type) without an interaction.
_OWNER = (
    "tenant_id = $1 AND type = $2 AND ("
    " ($3::text IS NOT NULL AND interaction_uid = $3)"
    " OR ($3::text IS NULL AND interaction_uid IS NULL"
    "     AND email IS NOT DISTINCT FROM $4 AND phone IS NOT DISTINCT FROM $5))"
)


async def replace(conn: asyncpg.Connection, tenant_id: str, code_id: str, interaction_uid: str | None, type_: str,
                  email: str | None, phone: str | None, code_digest: str) -> None:
    """A new code; the owner's earlier unconsumed ones go (Logto §4.6)."""
    await conn.execute(f"DELETE FROM verification_codes WHERE {_OWNER} AND NOT consumed",
                       tenant_id, type_, interaction_uid, email, phone)
    await conn.execute(
        "INSERT INTO verification_codes (tenant_id, id, interaction_uid, type, email, phone, code_digest)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        tenant_id, code_id, interaction_uid, type_, email, phone, code_digest,
    )


async def delete(conn: Executor, tenant_id: str, code_id: str) -> None:
    await conn.execute("DELETE FROM verification_codes WHERE tenant_id = $1 AND id = $2", tenant_id, code_id)


async def latest(conn: asyncpg.Connection, tenant_id: str, interaction_uid: str | None, type_: str,
                 email: str | None, phone: str | None) -> dict[str, Any] | None:
    """The owner's latest unconsumed code, locked; `expired` after ten minutes."""
    row = await conn.fetchrow(
        "SELECT id, email, phone, code_digest, try_count, created_at < now() - $6::interval AS expired"
        f" FROM verification_codes WHERE {_OWNER} AND NOT consumed"
        " ORDER BY created_at DESC LIMIT 1 FOR UPDATE",
        tenant_id, type_, interaction_uid, email, phone, CODE_TTL,
    )
    return dict(row) if row else None


async def count_failed_try(conn: asyncpg.Connection, tenant_id: str, code_id: str) -> None:
    await conn.execute(
        "UPDATE verification_codes SET try_count = try_count + 1 WHERE tenant_id = $1 AND id = $2", tenant_id, code_id
    )


async def consume(conn: asyncpg.Connection, tenant_id: str, code_id: str) -> None:
    await conn.execute("UPDATE verification_codes SET consumed = true WHERE tenant_id = $1 AND id = $2",
                       tenant_id, code_id)


async def delete_of_interaction(conn: Executor, tenant_id: str, interaction_uid: str) -> None:
    await conn.execute("DELETE FROM verification_codes WHERE tenant_id = $1 AND interaction_uid = $2",
                       tenant_id, interaction_uid)


async def purge_old(conn: Executor) -> None:
    """Codes well past their expiry, used or not (see `interaction/purge.py`)."""
    await conn.execute("DELETE FROM verification_codes WHERE created_at < now() - $1::interval", CODE_TTL * 2)


async def latest_target(conn: Executor, tenant_id: str, interaction_uid: str, type_: str) -> tuple[str, str] | None:
    """("email" | "phone", address) the latest unconsumed code of (interaction, type) went to."""
    row = await conn.fetchrow(
        "SELECT email, phone FROM verification_codes WHERE tenant_id = $1 AND interaction_uid = $2 AND type = $3"
        " AND NOT consumed ORDER BY created_at DESC LIMIT 1",
        tenant_id, interaction_uid, type_,
    )
    if row is None:
        return None
    return ("email", row["email"]) if row["email"] else ("phone", row["phone"])

"""SQL for the read models of identity's users and applications (rbac schema only).

Every write is guarded by the occurred_at of the identity event that caused it, so an older
event applied late (a retry after a newer one went through) changes nothing, and a deleted
user or application stays deleted: its row is a tombstone with the profile fields cleared.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tessera_events.identity import ApplicationSnapshot, UserSnapshot
from tessera_rbac.http import fetch_searched
from tessera_rbac.search import USER_FIELDS, Search
from tessera_rbac.sql import Filters, epoch_ms

MACHINE_TO_MACHINE = "MachineToMachine"


def public_user_columns(alias: str) -> str:
    """Logto's public user shape (§2). Identity's events do not carry a user's social
    `identities` (their details may hold provider tokens): answered `{}` (services/rbac/README.md)."""
    a = f"{alias}."
    return (
        f'{a}id, {a}username, {a}primary_email AS "primaryEmail", {a}primary_phone AS "primaryPhone",'
        f' {a}name, {a}avatar, {a}custom_data AS "customData", \'{{}}\'::jsonb AS identities,'
        f' {a}last_sign_in_at AS "lastSignInAt", {epoch_ms(a + "created_at")} AS "createdAt",'
        f' {a}application_id AS "applicationId", {a}is_suspended AS "isSuspended"'
    )


def application_columns(alias: str) -> str:
    a = f"{alias}."
    return (
        f'{a}tenant_id AS "tenantId", {a}id, {a}name, {a}description, {a}type,'
        f' {epoch_ms(a + "created_at")} AS "createdAt"'
    )


# --- applying identity's events ------------------------------------------------------------


async def save_user(
    conn: asyncpg.Connection, tenant_id: str, user: UserSnapshot, occurred_at: int,
    *, application_id: str | None = None,
) -> None:
    application_id = user.application_id or application_id
    await conn.execute(
        """INSERT INTO directory_users AS d (tenant_id, id, username, primary_email, primary_phone, name, avatar,
                                             application_id, custom_data, is_suspended, last_sign_in_at,
                                             created_at, last_event_at)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, to_timestamp($12::bigint / 1000.0), $13)
           ON CONFLICT (tenant_id, id) DO UPDATE SET
             username = excluded.username, primary_email = excluded.primary_email,
             primary_phone = excluded.primary_phone, name = excluded.name, avatar = excluded.avatar,
             custom_data = excluded.custom_data, is_suspended = excluded.is_suspended,
             last_sign_in_at = excluded.last_sign_in_at,
             application_id = coalesce(excluded.application_id, d.application_id),
             last_event_at = excluded.last_event_at
           WHERE d.deleted_at IS NULL AND d.last_event_at <= excluded.last_event_at""",
        tenant_id, user.id, user.username, user.primary_email, user.primary_phone, user.name, user.avatar,
        application_id, user.custom_data, user.is_suspended, user.last_sign_in_at,
        user.created_at or occurred_at, occurred_at,
    )
    if application_id is not None:
        # The created event may be applied after a newer update (a retry): keep its application.
        await conn.execute(
            "UPDATE directory_users SET application_id = $3 WHERE tenant_id = $1 AND id = $2"
            " AND application_id IS NULL AND deleted_at IS NULL",
            tenant_id, user.id, application_id,
        )


async def set_user_suspended(
    conn: asyncpg.Connection, tenant_id: str, user_id: str, suspended: bool, occurred_at: int
) -> None:
    await conn.execute(
        "UPDATE directory_users SET is_suspended = $3, last_event_at = $4"
        " WHERE tenant_id = $1 AND id = $2 AND deleted_at IS NULL AND last_event_at <= $4",
        tenant_id, user_id, suspended, occurred_at,
    )


async def delete_user(conn: asyncpg.Connection, tenant_id: str, user_id: str, occurred_at: int) -> list[str]:
    """Tombstone the user and drop their role links; returns the roles they held."""
    await conn.execute(
        """INSERT INTO directory_users AS d (tenant_id, id, created_at, deleted_at, last_event_at)
           VALUES ($1, $2, to_timestamp($3::bigint / 1000.0), now(), $3)
           ON CONFLICT (tenant_id, id) DO UPDATE SET
             deleted_at = coalesce(d.deleted_at, now()), username = NULL, primary_email = NULL,
             primary_phone = NULL, name = NULL, avatar = NULL, custom_data = '{}',
             last_event_at = greatest(d.last_event_at, excluded.last_event_at)""",
        tenant_id, user_id, occurred_at,
    )
    rows = await conn.fetch(
        "DELETE FROM users_roles WHERE tenant_id = $1 AND user_id = $2 RETURNING role_id", tenant_id, user_id
    )
    return sorted(r["role_id"] for r in rows)


async def save_application(
    conn: asyncpg.Connection, tenant_id: str, application: ApplicationSnapshot, occurred_at: int
) -> None:
    await conn.execute(
        """INSERT INTO directory_applications AS d (tenant_id, id, name, description, type, created_at, last_event_at)
           VALUES ($1, $2, $3, $4, $5, to_timestamp($6::bigint / 1000.0), $7)
           ON CONFLICT (tenant_id, id) DO UPDATE SET
             name = excluded.name, description = excluded.description, type = excluded.type,
             last_event_at = excluded.last_event_at
           WHERE d.deleted_at IS NULL AND d.last_event_at <= excluded.last_event_at""",
        tenant_id, application.id, application.name, application.description, application.type,
        application.created_at or occurred_at, occurred_at,
    )


async def delete_application(
    conn: asyncpg.Connection, tenant_id: str, application_id: str, occurred_at: int
) -> list[str]:
    """Tombstone the application and drop its role links; returns the roles it held.
    Links exist even for applications rbac never saw created (identity's admin flag)."""
    await conn.execute(
        """INSERT INTO directory_applications AS d (tenant_id, id, name, type, created_at, deleted_at, last_event_at)
           VALUES ($1, $2, '', '', to_timestamp($3::bigint / 1000.0), now(), $3)
           ON CONFLICT (tenant_id, id) DO UPDATE SET
             deleted_at = coalesce(d.deleted_at, now()),
             last_event_at = greatest(d.last_event_at, excluded.last_event_at)""",
        tenant_id, application_id, occurred_at,
    )
    rows = await conn.fetch(
        "DELETE FROM applications_roles WHERE tenant_id = $1 AND application_id = $2 RETURNING role_id",
        tenant_id, application_id,
    )
    return sorted(r["role_id"] for r in rows)


async def record_progress(
    conn: asyncpg.Connection, source: str, event_id: str, occurred_at: int, applied_at: int
) -> None:
    await conn.execute(
        """INSERT INTO read_model_progress AS p (source, events_applied, last_event_id, last_occurred_at, last_applied_at)
           VALUES ($1, 1, $2, $3, $4)
           ON CONFLICT (source) DO UPDATE SET
             events_applied = p.events_applied + 1, last_event_id = excluded.last_event_id,
             last_occurred_at = greatest(p.last_occurred_at, excluded.last_occurred_at),
             last_applied_at = excluded.last_applied_at""",
        source, event_id, occurred_at, applied_at,
    )


async def progress(conn: asyncpg.Connection, source: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        'SELECT events_applied AS "eventsApplied", last_event_id AS "lastEventId",'
        ' last_occurred_at AS "lastOccurredAt", last_applied_at AS "lastAppliedAt"'
        " FROM read_model_progress WHERE source = $1",
        source,
    )
    return dict(row) if row else None


# --- reading -------------------------------------------------------------------------------


async def unknown_user_ids(conn: asyncpg.Connection, tenant_id: str, user_ids: list[str]) -> list[str]:
    """The given ids the read model has no live user for, in the order given. Known users are
    share-locked: their deletion, applied concurrently, waits for this transaction and then
    removes the links it wrote."""
    rows = await conn.fetch(
        "SELECT id FROM directory_users WHERE tenant_id = $1 AND id = ANY($2::varchar[]) AND deleted_at IS NULL"
        " ORDER BY id FOR SHARE",
        tenant_id, user_ids,
    )
    known = {r["id"] for r in rows}
    return [user_id for user_id in user_ids if user_id not in known]


async def find_application(conn: asyncpg.Connection, tenant_id: str, application_id: str) -> dict[str, Any] | None:
    row = await conn.fetchrow(
        f"SELECT {application_columns('a')} FROM directory_applications a"
        " WHERE a.tenant_id = $1 AND a.id = $2 AND a.deleted_at IS NULL FOR SHARE",
        tenant_id, application_id,
    )
    return dict(row) if row else None


async def find_applications(
    conn: asyncpg.Connection, tenant_id: str, application_ids: list[str]
) -> dict[str, dict[str, Any]]:
    rows = await conn.fetch(
        f"SELECT {application_columns('a')} FROM directory_applications a"
        " WHERE a.tenant_id = $1 AND a.id = ANY($2::varchar[]) AND a.deleted_at IS NULL ORDER BY a.id FOR SHARE",
        tenant_id, application_ids,
    )
    return {r["id"]: dict(r) for r in rows}


async def search_role_users(
    conn: asyncpg.Connection, tenant_id: str, role_id: str, search: Search, *, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """Users holding a role, newest first, with Logto's user search.

    The role's links are read first (their index) and each holder's user looked up by key, so
    the cost follows the role's holders, not the table: walking every user newest first and
    probing each for the role (the plan PostgreSQL picks for `EXISTS`) scans most of a million
    users when the holders are few or old. One pass gives the page and the total (a window count); a page
    past the end runs the count alone."""
    filters = Filters(tenant_id, alias="u").where("u.deleted_at IS NULL").search(search, USER_FIELDS)
    holders = (
        "WITH holders AS MATERIALIZED (SELECT ur.user_id FROM users_roles ur"
        f" WHERE ur.tenant_id = $1 AND ur.role_id = {filters.param(role_id)})"
    )
    # Each holder's row by its key (LIMIT 1 keeps the subquery a per-holder index lookup: as a
    # plain join PostgreSQL reads the whole table into a hash once the holders are ~1 % of it).
    source = (f"{holders} SELECT {{}} FROM holders h CROSS JOIN LATERAL (SELECT * FROM directory_users d"
              " WHERE d.tenant_id = $1 AND d.id = h.user_id LIMIT 1) u")
    where, count_args = f" WHERE {filters.sql}", list(filters.args)  # before the page adds its own
    rows = await fetch_searched(
        conn,
        source.format(f'{public_user_columns("u")}, count(*) OVER () AS "total"')
        + f"{where} ORDER BY u.created_at DESC, u.id DESC{filters.page(limit, offset)}",
        *filters.args,
    )
    if rows:
        total = rows[0]["total"]
    else:
        total = (await fetch_searched(conn, source.format('count(*) AS "total"') + where, *count_args))[0]["total"]
    return total, [{k: v for k, v in r.items() if k != "total"} for r in rows]


async def role_applications(
    conn: asyncpg.Connection, tenant_id: str, role_id: str, *, limit: int, offset: int
) -> tuple[int, list[dict[str, Any]]]:
    """Machine-to-machine applications holding a role, newest first."""
    where = (
        "a.tenant_id = $1 AND a.deleted_at IS NULL AND a.type = 'MachineToMachine' AND EXISTS"
        " (SELECT 1 FROM applications_roles ar WHERE ar.tenant_id = a.tenant_id AND ar.application_id = a.id"
        " AND ar.role_id = $2)"
    )
    total = await conn.fetchval(f"SELECT count(*) FROM directory_applications a WHERE {where}", tenant_id, role_id)
    rows = await conn.fetch(
        f"SELECT {application_columns('a')} FROM directory_applications a WHERE {where}"
        " ORDER BY a.created_at DESC, a.id DESC LIMIT $3 OFFSET $4",
        tenant_id, role_id, limit, offset,
    )
    return total, [dict(r) for r in rows]

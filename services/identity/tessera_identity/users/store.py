"""SQL on identity's `users` table (parameterised; column names only from constants)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import asyncpg

from tessera_events.epoch_ms import from_ms
from tessera_identity.users.search import NEVER_UPPER_CASE, USER_SEARCH_FIELDS, frequent_trigrams, like_narrowing
from tessera_kit.search import Search, build_conditions

# The public user (Logto's userInfoSelectFields) plus hasPassword, timestamps in ms.
USER_COLUMNS = (
    "id, username, primary_email, primary_phone, name, avatar, custom_data, identities,"
    " (extract(epoch FROM last_sign_in_at) * 1000)::bigint AS last_sign_in_at,"
    " (extract(epoch FROM created_at) * 1000)::bigint AS created_at,"
    " application_id, is_suspended,"
    " coalesce(password_encrypted, '') <> '' AS has_password"
)
# What a password check needs besides the public user.
SECRET_COLUMNS = USER_COLUMNS + ", password_encrypted, password_encryption_method"

# Columns a change may set, by their snake_case names (also the names events use).
WRITABLE = frozenset({
    "username", "primary_email", "primary_phone", "name", "avatar", "custom_data", "identities",
    "application_id", "is_suspended", "last_sign_in_at", "password_encrypted",
    "password_encryption_method",
})
UNIQUE_INDEX_CODES = {
    "users_username": "user.username_already_in_use",
    "users_primary_email": "user.email_already_in_use",
    "users_primary_phone": "user.phone_already_in_use",
}
IDENTIFIER_WHERE = {
    "id": "id = $2",
    "username": "username = $2",  # case-sensitive, as in Logto
    "email": "lower(primary_email) = lower($2)",
    "phone": "primary_phone = $2",
}


def from_ms_or_none(ms: int | None) -> dt.datetime | None:
    return None if ms is None else from_ms(ms)


async def find_user(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(f"SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2",
                               tenant_id, user_id)


async def user_created_with_key(conn: asyncpg.Connection | asyncpg.Pool, tenant_id: str, key: str) -> asyncpg.Record | None:
    """The user a create_user call with this idempotency key made (a deleted user's keys
    went with it)."""
    return await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1"
        " AND id = (SELECT user_id FROM user_creation_keys WHERE tenant_id = $1 AND key = $2)",
        tenant_id, key,
    )


async def remember_creation_key(conn: asyncpg.Connection, tenant_id: str, key: str, user_id: str) -> None:
    await conn.execute("INSERT INTO user_creation_keys (tenant_id, key, user_id) VALUES ($1, $2, $3)",
                       tenant_id, key, user_id)


async def find_user_for_update(conn: asyncpg.Connection, tenant_id: str, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        f"SELECT {SECRET_COLUMNS} FROM users WHERE tenant_id = $1 AND id = $2 FOR UPDATE", tenant_id, user_id
    )


async def find_user_by(conn, tenant_id: str, by: str, value: str, *, with_secret: bool = False):
    columns = SECRET_COLUMNS if with_secret else USER_COLUMNS
    return await conn.fetchrow(
        f"SELECT {columns} FROM users WHERE tenant_id = $1 AND {IDENTIFIER_WHERE[by]} LIMIT 1", tenant_id, value
    )


async def find_user_by_identity(conn, tenant_id: str, target: str, identity_user_id: str,
                                exclude_user_id: str | None = None) -> asyncpg.Record | None:
    # `@>` on the jsonb_path_ops index; the containment object is built by PostgreSQL.
    return await conn.fetchrow(
        f"SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1"
        " AND identities @> jsonb_build_object($2::text, jsonb_build_object('userId', $3::text))"
        " AND ($4::text IS NULL OR id <> $4) LIMIT 1",
        tenant_id, target, identity_user_id, exclude_user_id,
    )


async def identifier_in_use(
    conn, tenant_id: str, *, username: str | None, email: str | None, phone: str | None,
    exclude_user_id: str | None = None,
) -> str | None:
    """The Logto error code of the first identifier (username, email, phone) another user has.
    Empty values are not checked (Logto skips falsy ones)."""
    row = await conn.fetchrow(
        "SELECT bool_or(username = $2) AS username, bool_or(lower(primary_email) = lower($3)) AS email,"
        " bool_or(primary_phone = $4) AS phone FROM users WHERE tenant_id = $1"
        " AND (username = $2 OR lower(primary_email) = lower($3) OR primary_phone = $4)"
        " AND ($5::text IS NULL OR id <> $5)",
        tenant_id, username or None, email or None, phone or None, exclude_user_id,
    )
    for field, code in (("username", "user.username_already_in_use"), ("email", "user.email_already_in_use"),
                        ("phone", "user.phone_already_in_use")):
        if row[field]:
            return code
    return None


async def insert_user(conn: asyncpg.Connection, tenant_id: str, user_id: str,
                      values: dict[str, Any]) -> asyncpg.Record | None:
    """The new user, or None when `user_id` is taken."""
    columns = [c for c in values if c in WRITABLE]
    placeholders = "".join(f", ${i + 3}" for i in range(len(columns)))
    names = ", ".join(["tenant_id", "id", *columns])
    return await conn.fetchrow(
        f"INSERT INTO users ({names}) VALUES ($1, $2{placeholders})"
        f" ON CONFLICT (id) DO NOTHING RETURNING {USER_COLUMNS}",
        tenant_id, user_id, *[values[c] for c in columns],
    )


async def update_user(conn: asyncpg.Connection, tenant_id: str, user_id: str, values: dict[str, Any]) -> asyncpg.Record | None:
    """Set `values` (replacing jsonb columns as a whole); None when there is no such user."""
    columns = [c for c in values if c in WRITABLE]
    if not columns:
        return await find_user(conn, tenant_id, user_id)
    assignments = ", ".join(f"{c} = ${i + 3}" for i, c in enumerate(columns))
    return await conn.fetchrow(
        f"UPDATE users SET {assignments} WHERE tenant_id = $1 AND id = $2 RETURNING {USER_COLUMNS}",
        tenant_id, user_id, *[values[c] for c in columns],
    )


async def merge_custom_data(conn: asyncpg.Connection, tenant_id: str, user_id: str,
                            custom_data: dict[str, Any]) -> asyncpg.Record | None:
    """Logto's jsonb merge: top-level keys of `custom_data` replace the stored ones."""
    return await conn.fetchrow(
        f"UPDATE users SET custom_data = custom_data || $3::jsonb WHERE tenant_id = $1 AND id = $2"
        f" RETURNING {USER_COLUMNS}",
        tenant_id, user_id, custom_data,
    )


async def replace_password_hash(conn, tenant_id: str, user_id: str, old_hash: str, new_hash: str,
                                method: str) -> bool:
    """Swap the hash only if it is still the one verified (a concurrent change wins)."""
    result = await conn.execute(
        "UPDATE users SET password_encrypted = $4, password_encryption_method = $5"
        " WHERE tenant_id = $1 AND id = $2 AND password_encrypted = $3",
        tenant_id, user_id, old_hash, new_hash, method,
    )
    return result.endswith(" 1")


async def delete_user(conn: asyncpg.Connection, tenant_id: str, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "DELETE FROM users WHERE tenant_id = $1 AND id = $2 RETURNING username, primary_email, primary_phone",
        tenant_id, user_id,
    )


async def find_users(conn, tenant_id: str, search: Search, exclude_ids: list[str] | None,
                     limit: int, offset: int, *, frequent: dict[str, frozenset[str]] | None = None,
                     ) -> tuple[int, list[asyncpg.Record]]:
    """A page of users, newest first, and how many match (a bad search is a RequestError).
    `frequent`: each column's common trigrams (see `trigram_statistics`)."""
    params: list[Any] = [tenant_id]
    clauses = ["tenant_id = $1"]
    where = build_conditions(search, USER_SEARCH_FIELDS, first_arg=2, never_upper_case=NEVER_UPPER_CASE,
                             narrow_like=like_narrowing(frequent) if frequent else None)
    if where.sql:
        clauses.append(where.sql)
        params.extend(where.args)
    if exclude_ids:
        params.append(exclude_ids)
        clauses.append(f"id <> ALL(${len(params)}::text[])")
    condition = " AND ".join(clauses)
    # The page's ids first (off the (tenant_id, created_at, id) index alone when unfiltered), then
    # their rows: a deep page skips index entries, not whole rows. The order names the table's
    # columns: a bare `created_at` would be USER_COLUMNS' millisecond alias, which no index
    # holds (a sort of every row) and which ties users created in the same millisecond.
    page = (f" ORDER BY created_at DESC, id DESC LIMIT ${len(params) + 1} OFFSET ${len(params) + 2}")
    if len(clauses) == 1:  # every user of the tenant: the trigger-kept counter, not count(*)
        total = await conn.fetchval("SELECT coalesce(sum(total), 0)::bigint FROM user_counts WHERE tenant_id = $1",
                                    tenant_id)
        if total <= offset:
            return total, []
        ids = [r["id"] for r in await conn.fetch(f"SELECT id FROM users WHERE {condition}{page}",
                                                 *params, limit, offset)]
    else:
        # A search finds its rows once: the page's ids and how many match in one pass.
        found = await conn.fetch(f"SELECT id, count(*) OVER () AS total FROM users WHERE {condition}{page}",
                                 *params, limit, offset)
        if not found:  # no match, or a page past the last: only the count is left to tell
            total = await conn.fetchval(f"SELECT count(*) FROM users WHERE {condition}", *params) if offset else 0
            return total, []
        total, ids = found[0]["total"], [r["id"] for r in found]
    rows = await conn.fetch(
        f"SELECT {USER_COLUMNS} FROM users WHERE tenant_id = $1 AND id = ANY($2::varchar[])"
        " ORDER BY users.created_at DESC, users.id DESC",
        tenant_id, ids,
    )
    return total, rows


# Trigram statistics change only when ANALYZE runs (autovacuum, after a tenth of the table
# changed): read them again after this many seconds.
TRIGRAM_STATISTICS_TTL = 300.0


async def trigram_statistics(conn, cache: dict[str, Any]) -> dict[str, frozenset[str]]:
    """Each searchable column's common trigrams, from the `users_<column>_trigrams` statistics
    (migration 0005; empty until the table is first analysed), kept in `cache` for a while."""
    cached = cache.get("user_trigrams")
    if cached is not None and time.monotonic() - cached[0] < TRIGRAM_STATISTICS_TTL:
        return cached[1]
    rows = await conn.fetch(
        "SELECT statistics_name, most_common_elems::text::text[] AS elements,"
        " most_common_elem_freqs AS frequencies FROM pg_stats_ext_exprs"
        " WHERE statistics_schemaname = current_schema() AND tablename = 'users'"
        " AND statistics_name LIKE 'users\\_%\\_trigrams' AND most_common_elems IS NOT NULL"
    )
    statistics = {r["statistics_name"][len("users_"):-len("_trigrams")]: (r["elements"], r["frequencies"])
                  for r in rows}
    frequent = frequent_trigrams({c: s for c, s in statistics.items() if c in USER_SEARCH_FIELDS})
    cache["user_trigrams"] = (time.monotonic(), frequent)
    return frequent


_COUNT_USERS = (
    "SELECT (SELECT coalesce(sum(total), 0)::bigint FROM user_counts WHERE tenant_id = $1) AS total,"
    " ARRAY(SELECT (SELECT count(*) FROM users WHERE tenant_id = $1"
    "               AND created_at >= w.since AND created_at < w.until)"
    "       FROM unnest($2::timestamptz[], $3::timestamptz[]) WITH ORDINALITY AS w(since, until, n)"
    "       ORDER BY w.n) AS created"
)


async def count_users(pool: asyncpg.Pool, tenant_id: str, windows: list[tuple[int, int]]) -> tuple[int, list[int]]:
    """The tenant's users (the trigger-kept counter), and those created in each `[since, until)`
    window of epoch milliseconds (off the (tenant_id, created_at) index)."""
    since = [from_ms(s) for s, _ in windows]
    until = [from_ms(u) for _, u in windows]
    row = await pool.fetchrow(_COUNT_USERS, tenant_id, since, until)
    return row["total"], list(row["created"])

"""SQL of the OpenID Provider, on identity's schema (parameterised, asyncpg).

It reads `users` and `applications` (same service, same schema), and writes only its own
`oidc_*` tables. Codes and tokens are looked up by their SHA-256 digest.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from tessera_identity.applications.store import APP_COLUMNS
from tessera_identity.users.store import USER_COLUMNS

Conn = asyncpg.Connection | asyncpg.Pool

# ------------------------------------------------------------------ users and applications


async def find_application(conn: Conn, tenant_id: str, client_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, name, secret, type, oidc_client_metadata, custom_client_metadata"
        " FROM applications WHERE tenant_id = $1 AND id = $2",
        tenant_id, client_id,
    )


async def find_user(conn: Conn, tenant_id: str, user_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, username, primary_email, primary_phone, name, avatar, custom_data,"
        " identities, is_suspended FROM users WHERE tenant_id = $1 AND id = $2",
        tenant_id, user_id,
    )


async def user_is_active(conn: Conn, tenant_id: str, user_id: str) -> bool:
    return bool(await conn.fetchval(
        "SELECT NOT is_suspended FROM users WHERE tenant_id = $1 AND id = $2", tenant_id, user_id,
    ))


# ------------------------------------------------------------------ interactions


INSERT_INTERACTION = (
    "INSERT INTO oidc_interactions (tenant_id, uid, client_id, params, prompt, session_id,"
    " session_account_id, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
)


def interaction_row(*, tenant_id: str, uid: str, client_id: str, params: dict[str, Any],
                    prompt: dict[str, Any], session_id: str | None, session_account_id: str | None,
                    expires_at: dt.datetime) -> tuple:
    """`INSERT_INTERACTION`'s arguments (sent with its event in one statement)."""
    return (tenant_id, uid, client_id, params, prompt, session_id, session_account_id, expires_at)


async def find_interaction(conn: Conn, tenant_id: str, uid: str, *, lock: bool = False) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT uid, client_id, params, prompt, session_id, session_account_id, result, expires_at"
        " FROM oidc_interactions WHERE tenant_id = $1 AND uid = $2 AND expires_at > now()"
        + (" FOR UPDATE" if lock else ""),
        tenant_id, uid,
    )


async def set_interaction_result(conn: Conn, uid: str, result: dict[str, Any]) -> None:
    await conn.execute("UPDATE oidc_interactions SET result = $2 WHERE uid = $1", uid, result)


# The interaction's result as an object ({} for none yet), the base of a change to it.
_RESULT = "(CASE WHEN jsonb_typeof(o.result) = 'object' THEN o.result ELSE '{}'::jsonb END)"
# Who an interaction is for: the user who signed in during it, else its session's user.
_INTERACTION_ACCOUNT = "coalesce(nullif(o.result->'login'->>'account_id', ''), nullif(o.session_account_id, ''))"


# A login in ONE statement: the live interaction locked, the user's sign-in time set ($4; NULL
# keeps it) unless they are suspended, and only then the login put into the interaction's
# result (its error dropped).
FINISH_LOGIN = (
    "WITH i AS (SELECT uid, client_id FROM oidc_interactions"
    " WHERE tenant_id = $1 AND uid = $2 AND expires_at > now() FOR UPDATE),"
    " u AS (UPDATE users SET last_sign_in_at = coalesce($4::timestamptz, last_sign_in_at)"
    " WHERE tenant_id = $1 AND id = $3 AND NOT is_suspended"
    f" AND EXISTS (SELECT FROM i) RETURNING {USER_COLUMNS}),"
    f" r AS (UPDATE oidc_interactions o SET result = ({_RESULT} - 'error') || jsonb_build_object('login', $5::jsonb)"
    " FROM i WHERE o.uid = i.uid AND EXISTS (SELECT FROM u) RETURNING 1)"
    " SELECT EXISTS (SELECT FROM i) AS found,"
    " (SELECT is_suspended FROM users WHERE tenant_id = $1 AND id = $3) AS suspended,"
    " (SELECT to_jsonb(u) FROM u) AS user,"
    f" (SELECT to_jsonb(a) FROM (SELECT {APP_COLUMNS} FROM applications"
    " WHERE tenant_id = $1 AND id = (SELECT client_id FROM i)) a) AS application"
)


async def finish_login(conn: Conn, tenant_id: str, uid: str, account_id: str,
                       last_sign_in_at: dt.datetime | None, login: dict[str, Any]) -> asyncpg.Record:
    """FINISH_LOGIN. Answers `found` (the interaction), `suspended` (NULL: no such user), the
    user as changed and the interaction's application, as JSON."""
    return await conn.fetchrow(FINISH_LOGIN, tenant_id, uid, account_id, last_sign_in_at, login)


GRANT_CONSENT = (
    f"UPDATE oidc_interactions o SET result = {_RESULT} || '{{\"consent\": true}}'::jsonb"
    f" WHERE o.tenant_id = $1 AND o.uid = $2 AND o.expires_at > now() AND {_INTERACTION_ACCOUNT} IS NOT NULL"
    f" RETURNING o.client_id, {_INTERACTION_ACCOUNT} AS account_id,"
    f" (SELECT u.application_id IS NULL FROM users u WHERE u.tenant_id = o.tenant_id AND u.id = {_INTERACTION_ACCOUNT})"
    " AS first_application"
)


async def grant_consent(conn: Conn, tenant_id: str, uid: str) -> asyncpg.Record | None:
    """Consent recorded in ONE statement on a live interaction someone signed in to (by it,
    or before it: its session); None when there is no such interaction. Answers whose consent
    it is, the client, and whether it is the user's first application."""
    return await conn.fetchrow(GRANT_CONSENT, tenant_id, uid)


async def take_interaction(conn: Conn, tenant_id: str, uid: str) -> asyncpg.Record | None:
    """Remove a live interaction and return it: one statement, so it resumes exactly once
    (an expired one goes too, and is not returned)."""
    row = await conn.fetchrow(
        "DELETE FROM oidc_interactions WHERE tenant_id = $1 AND uid = $2"
        " RETURNING uid, client_id, params, prompt, session_id, session_account_id, result, expires_at,"
        " expires_at > now() AS live",
        tenant_id, uid,
    )
    return row if row is not None and row["live"] else None


async def delete_interaction(conn: Conn, uid: str) -> None:
    await conn.execute("DELETE FROM oidc_interactions WHERE uid = $1", uid)


# ------------------------------------------------------------------ sessions


# A new session for a user who may sign in (not suspended), else nothing: its row (RETURNING)
# is what Outbox.execute_with_events(if_changed=True) announces.
INSERT_SESSION_IF_ACTIVE = (
    "INSERT INTO oidc_sessions (tenant_id, id, account_id, login_at, amr, expires_at)"
    " SELECT $1::text, $2::text, $3::text, $4::timestamptz, $5::jsonb, $6::timestamptz"
    " WHERE EXISTS (SELECT FROM users WHERE tenant_id = $1 AND id = $3 AND NOT is_suspended) RETURNING 1"
)


async def refresh_session_login(conn: Conn, session_id: str, login_at: dt.datetime, amr: list[str]) -> None:
    await conn.execute(
        "UPDATE oidc_sessions SET login_at = $2, amr = $3 WHERE id = $1", session_id, login_at, amr,
    )


async def find_session(conn: Conn, tenant_id: str, session_id: str) -> asyncpg.Record | None:
    """A live session of a user who may still sign in."""
    return await conn.fetchrow(
        "SELECT s.id, s.account_id, s.login_at, s.amr, s.expires_at FROM oidc_sessions s"
        " JOIN users u ON u.tenant_id = s.tenant_id AND u.id = s.account_id"
        " WHERE s.tenant_id = $1 AND s.id = $2 AND s.expires_at > now() AND NOT u.is_suspended",
        tenant_id, session_id,
    )


async def delete_session(conn: Conn, tenant_id: str, session_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "DELETE FROM oidc_sessions WHERE tenant_id = $1 AND id = $2 RETURNING id, account_id",
        tenant_id, session_id,
    )


# ------------------------------------------------------------------ grants


async def find_grant_for(conn: Conn, tenant_id: str, session_id: str, client_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, account_id, client_id, session_id, oidc_scopes, resource_scopes FROM oidc_grants"
        " WHERE tenant_id = $1 AND session_id = $2 AND client_id = $3 AND expires_at > now()"
        " ORDER BY created_at DESC LIMIT 1",
        tenant_id, session_id, client_id,
    )


async def find_grant(conn: Conn, tenant_id: str, grant_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT id, account_id, client_id, session_id, oidc_scopes, resource_scopes FROM oidc_grants"
        " WHERE tenant_id = $1 AND id = $2 AND expires_at > now()",
        tenant_id, grant_id,
    )


async def insert_grant(
    conn: Conn, *, tenant_id: str, grant_id: str, account_id: str, client_id: str,
    session_id: str | None, oidc_scopes: list[str], resource_scopes: dict[str, list[str]],
    expires_at: dt.datetime,
) -> None:
    await conn.execute(
        "INSERT INTO oidc_grants (tenant_id, id, account_id, client_id, session_id, oidc_scopes,"
        " resource_scopes, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        tenant_id, grant_id, account_id, client_id, session_id, oidc_scopes, resource_scopes, expires_at,
    )


async def update_grant_scopes(
    conn: Conn, grant_id: str, oidc_scopes: list[str], resource_scopes: dict[str, list[str]],
) -> None:
    await conn.execute(
        "UPDATE oidc_grants SET oidc_scopes = $2, resource_scopes = $3 WHERE id = $1",
        grant_id, oidc_scopes, resource_scopes,
    )


async def grants_of_session(conn: Conn, tenant_id: str, session_id: str) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT id, client_id, account_id, oidc_scopes FROM oidc_grants"
        " WHERE tenant_id = $1 AND session_id = $2", tenant_id, session_id,
    )


async def delete_grant_and_tokens(conn: Conn, grant_id: str) -> None:
    await conn.execute("DELETE FROM oidc_refresh_tokens WHERE grant_id = $1", grant_id)
    await conn.execute("DELETE FROM oidc_access_tokens WHERE grant_id = $1", grant_id)
    await conn.execute("DELETE FROM oidc_authorization_codes WHERE grant_id = $1", grant_id)
    await conn.execute("DELETE FROM oidc_grants WHERE id = $1", grant_id)


# ------------------------------------------------------------------ authorization codes


INSERT_CODE = (
    "INSERT INTO oidc_authorization_codes (code_hash, tenant_id, grant_id, client_id, account_id,"
    " session_id, interaction_id, redirect_uri, scope, resources, code_challenge, nonce,"
    " auth_time, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
)


def code_args(*, code_hash: bytes, **row: Any) -> tuple:
    """`INSERT_CODE`'s arguments (sent with events in one statement)."""
    return (code_hash, row["tenant_id"], row["grant_id"], row["client_id"], row["account_id"],
            row["session_id"], row["interaction_id"], row["redirect_uri"], row["scope"],
            row["resources"], row["code_challenge"], row["nonce"], row["auth_time"], row["expires_at"])


# A code and, for its exchange, its live grant and its user (as JSON; NULL when gone): one
# round trip where there were three. Only the code's row is locked.
LOCK_CODE_WITH_GRANT_AND_USER = (
    "SELECT c.*,"
    " (SELECT to_jsonb(g) FROM (SELECT id, account_id, client_id, session_id, oidc_scopes, resource_scopes"
    "  FROM oidc_grants WHERE tenant_id = c.tenant_id AND id = c.grant_id AND expires_at > now()) g) AS grant_row,"
    " (SELECT to_jsonb(u) FROM (SELECT id, username, primary_email, primary_phone, name, avatar, custom_data,"
    "  identities, is_suspended FROM users WHERE tenant_id = c.tenant_id AND id = c.account_id) u) AS user_row"
    " FROM oidc_authorization_codes c WHERE c.tenant_id = $1 AND c.code_hash = $2 FOR UPDATE OF c"
)


async def lock_code_with_grant_and_user(conn: asyncpg.Connection, tenant_id: str,
                                        code_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(LOCK_CODE_WITH_GRANT_AND_USER, tenant_id, code_hash)


CONSUME_CODE = "UPDATE oidc_authorization_codes SET consumed_at = now(), family_id = $2 WHERE code_hash = $1"
# With CONSUME_CODE in one statement (its $2, and the tenant as $3): the family the exchange's
# tokens belong to. Nothing reads it before the exchange commits.
OPEN_FAMILY = "INSERT INTO oidc_token_families (family_id, tenant_id) VALUES ($2, $3)"


# ------------------------------------------------------------------ token families


async def lock_family_of_refresh_token(conn: asyncpg.Connection, tenant_id: str,
                                      token_hash: bytes) -> asyncpg.Record | None:
    """The family of a refresh token, locked (one round trip): taken before any token row of
    the family, by rotation and revocation alike."""
    return await conn.fetchrow(
        "SELECT family_id, revoked_at FROM oidc_token_families WHERE tenant_id = $1 AND family_id ="
        " (SELECT family_id FROM oidc_refresh_tokens WHERE tenant_id = $1 AND token_hash = $2)"
        " FOR UPDATE", tenant_id, token_hash,
    )


# ------------------------------------------------------------------ refresh tokens


async def insert_refresh_token(conn: Conn, *, token_hash: bytes, **row: Any) -> None:
    await conn.execute(
        "INSERT INTO oidc_refresh_tokens (token_hash, id, tenant_id, family_id, grant_id, client_id,"
        " account_id, session_id, scope, nonce, auth_time, family_created_at, expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
        token_hash, row["id"], row["tenant_id"], row["family_id"], row["grant_id"], row["client_id"],
        row["account_id"], row["session_id"], row["scope"], row["nonce"], row["auth_time"],
        row["family_created_at"], row["expires_at"],
    )


async def lock_refresh_token(conn: asyncpg.Connection, tenant_id: str, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT *, extract(epoch FROM now() - consumed_at) AS consumed_seconds_ago"
        " FROM oidc_refresh_tokens WHERE tenant_id = $1 AND token_hash = $2 FOR UPDATE",
        tenant_id, token_hash,
    )


async def find_refresh_token(conn: Conn, tenant_id: str, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM oidc_refresh_tokens WHERE tenant_id = $1 AND token_hash = $2",
        tenant_id, token_hash,
    )


async def mark_refresh_token_consumed(conn: Conn, token_hash: bytes) -> None:
    # The first consumption time counts: the reuse interval starts there.
    await conn.execute(
        "UPDATE oidc_refresh_tokens SET consumed_at = COALESCE(consumed_at, now()) WHERE token_hash = $1",
        token_hash,
    )


async def delete_family(conn: Conn, family_id: str) -> int:
    """Revoke every refresh and opaque access token descending from one code exchange. The
    family row is marked first: that waits for a rotation holding it, so the DELETEs below
    (each a new snapshot) see the tokens it committed, and a later rotation sees the mark."""
    await conn.execute(
        "UPDATE oidc_token_families SET revoked_at = COALESCE(revoked_at, now()) WHERE family_id = $1",
        family_id,
    )
    refresh = await conn.execute("DELETE FROM oidc_refresh_tokens WHERE family_id = $1", family_id)
    access = await conn.execute("DELETE FROM oidc_access_tokens WHERE family_id = $1", family_id)
    return int(refresh.split()[-1]) + int(access.split()[-1])


# ------------------------------------------------------------------ opaque access tokens


async def insert_access_token(conn: Conn, *, token_hash: bytes, **row: Any) -> None:
    await conn.execute(
        "INSERT INTO oidc_access_tokens (token_hash, id, tenant_id, family_id, grant_id, client_id,"
        " account_id, scope, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        token_hash, row["id"], row["tenant_id"], row["family_id"], row["grant_id"], row["client_id"],
        row["account_id"], row["scope"], row["expires_at"],
    )


async def find_access_token(conn: Conn, tenant_id: str, token_hash: bytes) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT * FROM oidc_access_tokens WHERE tenant_id = $1 AND token_hash = $2 AND expires_at > now()",
        tenant_id, token_hash,
    )


async def delete_access_token(conn: Conn, token_hash: bytes) -> None:
    await conn.execute("DELETE FROM oidc_access_tokens WHERE token_hash = $1", token_hash)


# ------------------------------------------------------------------ a user's everything


async def revoke_account(conn: asyncpg.Connection, tenant_id: str, account_id: str, *,
                         keep_interactions: bool = False) -> dict[str, list]:
    """Delete every session, grant, code and token of one user; what was there is returned
    (for the events). Interactions begun on one of the user's sessions are deleted too, or,
    with `keep_interactions`, detached from it: they go on, but only after a new login (the
    sign-in that is setting a password may be one of them)."""
    # The codes first: an exchange under way holds its code's row, so this waits for it to
    # commit, and the statements below (each a new snapshot) see the tokens it issued.
    await conn.execute("DELETE FROM oidc_authorization_codes WHERE tenant_id = $1 AND account_id = $2",
                       tenant_id, account_id)
    # Then the user's token families, as delete_family does: a rotation under way commits
    # before the DELETEs below look, and none starts after them.
    await conn.execute(
        "UPDATE oidc_token_families SET revoked_at = COALESCE(revoked_at, now())"
        " WHERE tenant_id = $1 AND family_id IN ("
        " SELECT family_id FROM oidc_refresh_tokens WHERE tenant_id = $1 AND account_id = $2"
        " UNION SELECT family_id FROM oidc_access_tokens WHERE tenant_id = $1 AND account_id = $2)",
        tenant_id, account_id,
    )
    sessions = await conn.fetch(
        "DELETE FROM oidc_sessions WHERE tenant_id = $1 AND account_id = $2 RETURNING id",
        tenant_id, account_id,
    )
    grants = await conn.fetch(
        "DELETE FROM oidc_grants WHERE tenant_id = $1 AND account_id = $2 RETURNING id, client_id",
        tenant_id, account_id,
    )
    for table in ("oidc_refresh_tokens", "oidc_access_tokens"):
        await conn.execute(f"DELETE FROM {table} WHERE tenant_id = $1 AND account_id = $2", tenant_id, account_id)
    if keep_interactions:
        await conn.execute(
            "UPDATE oidc_interactions SET session_id = NULL, session_account_id = NULL"
            " WHERE tenant_id = $1 AND session_account_id = $2",
            tenant_id, account_id,
        )
    else:
        await conn.execute(
            "DELETE FROM oidc_interactions WHERE tenant_id = $1 AND session_account_id = $2",
            tenant_id, account_id,
        )
    return {"sessions": [r["id"] for r in sessions], "grants": [(r["id"], r["client_id"]) for r in grants]}


# ------------------------------------------------------------------ housekeeping


async def purge_expired(conn: Conn) -> None:
    """Rows past their expiry are useless (every lookup filters on expiry); consumed refresh
    tokens stay until they expire so a replay is still recognised."""
    for table in ("oidc_interactions", "oidc_authorization_codes", "oidc_access_tokens",
                  "oidc_refresh_tokens", "oidc_sessions", "oidc_grants"):
        await conn.execute(f"DELETE FROM {table} WHERE expires_at < now() - interval '1 hour'")
    # A family with no token left has nothing to guard (a code replay finds its code gone).
    await conn.execute(
        "DELETE FROM oidc_token_families f WHERE f.created_at < now() - interval '1 day'"
        " AND NOT EXISTS (SELECT 1 FROM oidc_refresh_tokens r WHERE r.family_id = f.family_id)"
        " AND NOT EXISTS (SELECT 1 FROM oidc_access_tokens a WHERE a.family_id = f.family_id)"
        " AND NOT EXISTS (SELECT 1 FROM oidc_authorization_codes c WHERE c.family_id = f.family_id)"
    )


async def get_seed_state(conn: Conn, tenant_id: str, key: str) -> Any:
    return await conn.fetchval(
        "SELECT value FROM oidc_seed_state WHERE tenant_id = $1 AND key = $2", tenant_id, key,
    )


async def set_seed_state(conn: Conn, tenant_id: str, key: str, value: Any) -> None:
    await conn.execute(
        "INSERT INTO oidc_seed_state (tenant_id, key, value) VALUES ($1, $2, $3)"
        " ON CONFLICT (tenant_id, key) DO UPDATE SET value = EXCLUDED.value",
        tenant_id, key, value,
    )

"""A lookup by tenant and unique key (a code, a token, a session or grant id) uses the primary
key, also on a table PostgreSQL has not analysed yet (a new deployment's first minutes). With
the tenant leading the account indexes, the planner chose those for such lookups and read every
row of the tenant: the bench's code exchanges read ~565 codes each until autovacuum analysed
the table."""

import pytest

LOOKUPS = [
    ("oidc_authorization_codes", "code_hash = $2", b"\x00" * 32),
    ("oidc_refresh_tokens", "token_hash = $2", b"\x00" * 32),
    ("oidc_access_tokens", "token_hash = $2", b"\x00" * 32),
    ("oidc_sessions", "id = $2", "session-id"),
    ("oidc_grants", "id = $2", "grant-id"),
]


@pytest.mark.parametrize("table, condition, key", LOOKUPS, ids=[table for table, _, _ in LOOKUPS])
async def test_a_lookup_by_tenant_and_key_uses_the_primary_key_before_any_analyse(identity, table, condition, key):
    analysed = await identity.ctx.pool.fetchval(
        "SELECT coalesce(last_analyze, last_autoanalyze) FROM pg_stat_user_tables"
        " WHERE schemaname = current_schema() AND relname = $1", table)
    assert analysed is None  # the case that went wrong
    rows = await identity.ctx.pool.fetch(
        f"EXPLAIN SELECT * FROM {table} WHERE tenant_id = $1 AND {condition}", "default", key)
    plan = "\n".join(row[0] for row in rows)
    assert f"{table}_pkey" in plan, plan


async def test_revoking_a_users_grants_still_reads_by_the_account(identity):
    for table in ("oidc_authorization_codes", "oidc_refresh_tokens", "oidc_access_tokens",
                  "oidc_sessions", "oidc_grants"):
        rows = await identity.ctx.pool.fetch(
            f"EXPLAIN DELETE FROM {table} WHERE tenant_id = $1 AND account_id = $2", "default", "user-id")
        plan = "\n".join(row[0] for row in rows)
        assert f"{table}_account" in plan, plan

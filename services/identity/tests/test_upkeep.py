"""identity's timed purges as their timers run them (ServiceContext.upkeep: in the replica whose
relay leads, each run on a connection of its own): what expired goes, what still counts stays."""

from __future__ import annotations

from tessera_identity.oidc.provider import providers
from tessera_identity.users.housekeeping import _JOB as LOCKOUT_PURGE


async def test_the_oidc_purge_removes_what_expired_over_an_hour_ago_and_keeps_the_rest(identity):
    pool = identity.ctx.pool
    purge = providers(identity.ctx)["default"]._purge
    assert purge.leader is identity.ctx.relay  # one replica purges
    await pool.execute(
        "INSERT INTO oidc_interactions (tenant_id, uid, client_id, params, prompt, expires_at) VALUES"
        " ('default', 'long-gone', 'app', '{}', '{}', now() - interval '2 hours'),"
        " ('default', 'just-expired', 'app', '{}', '{}', now() - interval '1 minute'),"
        " ('default', 'live', 'app', '{}', '{}', now() + interval '1 hour')")
    await purge.job()  # one run, as the timer makes it
    left = {r["uid"] for r in await pool.fetch(
        "SELECT uid FROM oidc_interactions WHERE uid IN ('long-gone', 'just-expired', 'live')")}
    assert left == {"just-expired", "live"}


async def test_the_lockout_purge_removes_counters_whose_window_and_lock_are_over(identity):
    pool = identity.ctx.pool
    purge = identity.ctx.extras[LOCKOUT_PURGE]
    assert purge.leader is identity.ctx.relay
    await pool.execute(
        "INSERT INTO password_attempts (identifier_hash, window_started_at, failures, in_flight, locked_until)"
        " VALUES ('window-over', now() - interval '2 hours', 3, 0, NULL),"
        " ('lock-over', now() - interval '3 hours', 5, 0, now() - interval '1 minute'),"
        " ('in-window', now() - interval '5 minutes', 2, 0, NULL),"
        " ('locked', now() - interval '3 hours', 5, 0, now() + interval '10 minutes'),"
        " ('checking', now() - interval '2 hours', 1, 1, NULL)")  # a check in flight settles into it
    await purge.job()
    left = {r["identifier_hash"] for r in await pool.fetch(
        "SELECT identifier_hash FROM password_attempts WHERE identifier_hash IN"
        " ('window-over', 'lock-over', 'in-window', 'locked', 'checking')")}
    assert left == {"in-window", "locked", "checking"}

"""Identifier lockout (ASVS V2.2.1; Logto's sentinel defaults): after 100 failed password
verifications for one identifier within an hour, every further attempt fails for 60 minutes.

An attempt takes an in-flight slot *before* its hash is checked (`take_attempt`) and settles
it afterwards (`settle`): a wrong password turns the slot into a failure, a right one gives
it back. Slots are only handed out while failures + slots in flight stay under the limit,
under the counter row's lock, so 150 parallel guesses get exactly 100 checks. The lock
starts when the 100th failure is settled. The rules are the pure functions below;
`take_attempt` and `settle` apply them in one short transaction each (never across the
~20 ms hash check).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
from dataclasses import dataclass, replace

import asyncpg

from tessera_kit.errors import RequestError
from tessera_kit.ratelimit import ADMITTED


@dataclass(frozen=True)
class Policy:
    max_failures: int = 100
    window: dt.timedelta = dt.timedelta(hours=1)
    block: dt.timedelta = dt.timedelta(minutes=60)


DEFAULT_POLICY = Policy()


@dataclass(frozen=True)
class Counter:
    window_started_at: dt.datetime
    failures: int = 0  # wrong passwords in the window
    in_flight: int = 0  # attempts whose hash is being checked
    locked_until: dt.datetime | None = None


@dataclass(frozen=True)
class Decision:
    allowed: bool
    counter: Counter
    retry_after: dt.timedelta | None = None


def decide_attempt(counter: Counter | None, now: dt.datetime, policy: Policy) -> Decision:
    """May one more attempt be checked? If so, it holds a slot in the returned counter."""
    if counter is None:
        return Decision(True, Counter(now, 0, 1))
    if counter.locked_until is not None and counter.locked_until > now:
        return Decision(False, counter, counter.locked_until - now)
    if counter.locked_until is not None or counter.window_started_at + policy.window <= now:
        # The lock or the window is over: start afresh (slots still in flight settle into
        # the new window; see settle_attempt).
        counter = Counter(now, 0, counter.in_flight)
    if counter.failures + counter.in_flight >= policy.max_failures:
        # Attempts in flight could still reach the limit: refuse until they settle.
        return Decision(False, counter, policy.block)
    return Decision(True, replace(counter, in_flight=counter.in_flight + 1))


def settle_attempt(counter: Counter, now: dt.datetime, succeeded: bool, policy: Policy) -> Counter:
    """Give the slot back; a wrong password counts, and the limit's failure starts the lock."""
    counter = replace(counter, in_flight=max(counter.in_flight - 1, 0))
    if succeeded:
        return counter
    counter = replace(counter, failures=counter.failures + 1)
    if counter.failures >= policy.max_failures and counter.locked_until is None:
        counter = replace(counter, locked_until=now + policy.block)
    return counter


def identifier_key(kind: str, value: str) -> str:
    """What the counter is keyed by: a digest, so no address or number is stored here.
    E-mail addresses are case-insensitive (as their lookup), the rest exact."""
    normalised = value.lower() if kind == "email" else value
    return hashlib.sha256(f"{kind}:{normalised}".encode()).hexdigest()


def blocked(retry_after: dt.timedelta) -> RequestError:
    seconds = max(1, math.ceil(retry_after.total_seconds()))
    minutes = math.ceil(seconds / 60)
    relative = f"in {minutes} minute{'s' if minutes != 1 else ''}" if seconds >= 60 else f"in {seconds} seconds"
    error = RequestError(
        "session.verification_blocked_too_many_attempts", 400, data={"retry_after_seconds": seconds}
    )
    # Logto's later phrase; this code is not in the 1.5 phrase table the kit carries.
    error.message = f"Too many attempts in a short time. Please try again {relative}."
    return error


_LOCK_ROW = (
    "INSERT INTO password_attempts AS a (tenant_id, identifier_hash, window_started_at)"
    " VALUES ($1, $2, clock_timestamp())"
    # A no-op update on conflict: the row is locked and returned either way.
    " ON CONFLICT (tenant_id, identifier_hash) DO UPDATE SET tenant_id = a.tenant_id"
    " RETURNING window_started_at, failures, in_flight, locked_until, clock_timestamp() AS now,"
    " (xmax = 0) AS created"
)
_SAVE_ROW = (
    "UPDATE password_attempts SET window_started_at = $3, failures = $4, in_flight = $5, locked_until = $6"
    " WHERE tenant_id = $1 AND identifier_hash = $2"
)

# decide_attempt's common case as one atomic statement: a counter in its window, not locked,
# with room under the limit, takes a slot. UPDATE rechecks its WHERE on the row it locks, so
# parallel attempts still get exactly the slots there are. Any other state (no row yet, a
# lock, a window over, the limit reached) takes the transaction below.
_TAKE_SLOT = (
    "UPDATE password_attempts SET in_flight = in_flight + 1"
    " WHERE tenant_id = $1 AND identifier_hash = $2 AND locked_until IS NULL"
    " AND window_started_at + $3::interval > clock_timestamp() AND failures + in_flight < $4"
    " RETURNING true"
)

# _TAKE_SLOT run with the sign-in rate limits' count (RateLimiter.hit's `then`): parameters
# from $4, and only if the limits admitted the request.
_TAKE_SLOT_IF_ADMITTED = (
    "UPDATE password_attempts SET in_flight = in_flight + 1"
    " WHERE tenant_id = $4 AND identifier_hash = $5 AND locked_until IS NULL"
    " AND window_started_at + $6::interval > clock_timestamp() AND failures + in_flight < $7"
    f" AND {ADMITTED} RETURNING true"
)


def take_slot_statement(tenant_id: str, key: str, policy: Policy = DEFAULT_POLICY) -> tuple[str, tuple]:
    """decide_attempt's common case (see _TAKE_SLOT) as the statement a rate limit hit runs
    with it: one round trip for the limits and the slot. Whether it took the slot is the
    hit's answer; if not, `take_attempt(..., slot_taken=False)` decides in its transaction."""
    return _TAKE_SLOT_IF_ADMITTED, (tenant_id, key, policy.window, policy.max_failures)


_GIVE_BACK_SLOT = (
    "UPDATE password_attempts SET in_flight = greatest(in_flight - 1, 0)"
    " WHERE tenant_id = $1 AND identifier_hash = $2"
)


def _counter(row: asyncpg.Record) -> Counter | None:
    if row["created"]:
        return None
    return Counter(row["window_started_at"], row["failures"], row["in_flight"], row["locked_until"])


async def _save(conn: asyncpg.Connection, tenant_id: str, key: str, counter: Counter) -> None:
    await conn.execute(_SAVE_ROW, tenant_id, key, counter.window_started_at, counter.failures,
                       counter.in_flight, counter.locked_until)


async def take_attempt(pool: asyncpg.Pool, tenant_id: str, key: str, policy: Policy = DEFAULT_POLICY, *,
                       slot_taken: bool | None = None) -> None:
    """Take a slot for one verification, or raise 400 `verification_blocked_too_many_attempts`.
    `slot_taken`: what take_slot_statement already answered (None: not tried)."""
    if slot_taken:
        return
    if slot_taken is None and await pool.fetchval(_TAKE_SLOT, tenant_id, key, policy.window, policy.max_failures):
        return  # one round trip instead of four (BEGIN, lock, save, COMMIT)
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_LOCK_ROW, tenant_id, key)
        decision = decide_attempt(_counter(row), row["now"], policy)
        if decision.allowed or decision.counter != _counter(row):
            await _save(conn, tenant_id, key, decision.counter)
    if not decision.allowed:
        raise blocked(decision.retry_after or policy.block)


async def settle(pool: asyncpg.Pool, tenant_id: str, key: str, succeeded: bool,
                 policy: Policy = DEFAULT_POLICY) -> None:
    if succeeded:
        # settle_attempt's rule for a right password (the slot goes back, nothing else
        # changes) as one atomic statement: the common case costs one round trip. A row
        # purged meanwhile needs nothing: a fresh counter with no slot is no row at all.
        await pool.execute(_GIVE_BACK_SLOT, tenant_id, key)
        return
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(_LOCK_ROW, tenant_id, key)
        # A row purged meanwhile comes back new: it starts with the slot this attempt held.
        counter = _counter(row) or Counter(row["window_started_at"], 0, 1)
        settled = settle_attempt(counter, row["now"], succeeded, policy)
        if settled != counter or row["created"]:
            await _save(conn, tenant_id, key, settled)


async def forget(conn: asyncpg.Connection, tenant_id: str, keys: list[str]) -> None:
    await conn.execute(
        "DELETE FROM password_attempts WHERE tenant_id = $1 AND identifier_hash = ANY($2::text[])",
        tenant_id, keys,
    )


async def purge_expired(conn: asyncpg.Connection, policy: Policy = DEFAULT_POLICY) -> int:
    """Counters whose window and lock are both over carry no information any more."""
    result = await conn.execute(
        "DELETE FROM password_attempts WHERE in_flight = 0 AND ("
        " (locked_until IS NULL AND window_started_at < clock_timestamp() - $1::interval)"
        " OR locked_until < clock_timestamp())",
        policy.window,
    )
    return int(result.split()[-1])

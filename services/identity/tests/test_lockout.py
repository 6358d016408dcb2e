"""Identifier lockout: 100 failures within an hour lock the identifier for 60 minutes; the
count is atomic under parallel guesses. Rules without I/O first, then on the real service."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter as Tally

from tessera_events.contracts.identity import VERIFY_PASSWORD, VerifyPasswordRequest
from tessera_identity.users.lockout import Counter, Policy, blocked, decide_attempt, settle_attempt
from tessera_kit import rpc
from tessera_kit.errors import RequestError

T0 = dt.datetime(2026, 1, 1, 12, 0, tzinfo=dt.timezone.utc)
POLICY = Policy(max_failures=3, window=dt.timedelta(hours=1), block=dt.timedelta(minutes=60))


# ---------------------------------------------------------------- the rules


def test_attempts_take_slots_until_the_limit():
    decision = decide_attempt(None, T0, POLICY)
    assert decision.allowed and decision.counter == Counter(T0, failures=0, in_flight=1)
    for counter in (Counter(T0, failures=3), Counter(T0, failures=1, in_flight=2)):
        refused = decide_attempt(counter, T0, POLICY)
        assert not refused.allowed and refused.counter == counter


def test_a_right_password_gives_its_slot_back_a_wrong_one_counts_and_locks_at_the_limit():
    assert settle_attempt(Counter(T0, 1, 2), T0, True, POLICY) == Counter(T0, 1, 1)
    assert settle_attempt(Counter(T0, 1, 2), T0, False, POLICY) == Counter(T0, 2, 1)
    # Two failures and one in flight: the lock waits for the third to be a failure.
    assert decide_attempt(Counter(T0, 2, 1), T0, POLICY).allowed is False
    locked = settle_attempt(Counter(T0, 2, 1), T0 + dt.timedelta(minutes=5), False, POLICY)
    assert locked == Counter(T0, 3, 0, T0 + dt.timedelta(minutes=65))
    assert settle_attempt(Counter(T0, 2, 1), T0, True, POLICY) == Counter(T0, 2, 0)


def test_the_lock_holds_for_its_duration_then_everything_starts_afresh():
    locked = Counter(T0, 3, 0, T0 + dt.timedelta(minutes=60))
    during = decide_attempt(locked, T0 + dt.timedelta(minutes=59), POLICY)
    assert not during.allowed and during.retry_after == dt.timedelta(minutes=1)
    after = decide_attempt(locked, T0 + dt.timedelta(minutes=60), POLICY)
    assert after.allowed and after.counter == Counter(T0 + dt.timedelta(minutes=60), 0, 1)


def test_failures_older_than_the_window_are_forgotten():
    counter = Counter(T0, 2)
    inside = decide_attempt(counter, T0 + dt.timedelta(minutes=59), POLICY)
    assert inside.counter == Counter(T0, 2, 1)
    later = T0 + dt.timedelta(hours=1)
    assert decide_attempt(counter, later, POLICY).counter == Counter(later, 0, 1)


def test_blocked_error_is_logtos_sentinel_error():
    error = blocked(dt.timedelta(minutes=59, seconds=30))
    assert (error.status, error.code) == (400, "session.verification_blocked_too_many_attempts")
    assert error.message == "Too many attempts in a short time. Please try again in 60 minutes."
    assert error.data == {"retry_after_seconds": 3570}


# ---------------------------------------------------------------- on the service


async def verify(identity, user_id: str, password: str):
    return await identity.client.post(f"/api/users/{user_id}/password/verify", json={"password": password})


async def test_parallel_wrong_guesses_never_get_a_101st_check(identity, unique):
    user = await identity.create_user(username=unique(), password="right-pass-1")
    answers = await asyncio.gather(*[verify(identity, user["id"], f"wrong-{i}") for i in range(150)])
    tally = Tally((a.status_code, a.json()["code"]) for a in answers)
    assert tally == {(422, "session.invalid_credentials"): 100,
                     (400, "session.verification_blocked_too_many_attempts"): 50}
    # Locked now: even the right password is refused, without being checked.
    right = await verify(identity, user["id"], "right-pass-1")
    assert (right.status_code, right.json()["code"]) == (400, "session.verification_blocked_too_many_attempts")
    assert right.json()["data"]["retry_after_seconds"] > 3500


async def test_a_right_password_does_not_count_as_a_failure(identity, unique):
    user = await identity.create_user(username=unique(), password="right-pass-1")
    answers = await asyncio.gather(*[verify(identity, user["id"], f"wrong-{i}") for i in range(99)]
                                   + [verify(identity, user["id"], "right-pass-1")])
    assert Tally(a.status_code for a in answers) == {422: 99, 204: 1}
    assert (await verify(identity, user["id"], "wrong-100")).status_code == 422  # the 100th failure
    assert (await verify(identity, user["id"], "right-pass-1")).status_code == 400


async def sign_in(identity, by: str, value: str, password: str):
    try:
        return await rpc.call(identity.ctx.bus, VERIFY_PASSWORD, VerifyPasswordRequest(
            by=by, value=value, password=password, tenant_id="default"), timeout=30)
    except RequestError as error:
        return error


async def test_sign_in_lockout_is_per_account_and_counts_unknown_ones(identity, unique, phone):
    name, number = unique(), phone()
    user = await identity.create_user(username=name, primaryEmail=f"{name}@example.com", primaryPhone=number,
                                      password="right-pass-1")
    # 100 guesses per account, however they are spread over its identifiers (not 100 each).
    guesses = [("username", name), ("email", f"{name}@example.com"), ("phone", number)]
    results = await asyncio.gather(*[sign_in(identity, *guesses[i % 3], f"wrong-{i}") for i in range(101)])
    assert Tally(r.code for r in results) == {"session.invalid_credentials": 100,
                                              "session.verification_blocked_too_many_attempts": 1}
    for by, value in guesses + [("email", f"{name.upper()}@EXAMPLE.COM")]:
        assert (await sign_in(identity, by, value, "right-pass-1")).status == 400
    # Another account is not affected (and e-mail addresses match case-insensitively).
    other = unique()
    created = await identity.create_user(username=other, primaryEmail=f"{other}@example.com", password="right-pass-1")
    ok = await sign_in(identity, "email", f"{other.upper()}@EXAMPLE.COM", "right-pass-1")
    assert ok.id == created["id"] and ok.username == other and ok.has_password and ok.id != user["id"]
    # Identifiers nobody has are counted too, and answer like a wrong password.
    ghost = unique("ghost")
    results = [await sign_in(identity, "username", ghost, "whatever-1") for _ in range(3)]
    assert {r.code for r in results} == {"session.invalid_credentials"}
    failures = await identity.ctx.pool.fetchval(
        "SELECT failures FROM password_attempts WHERE identifier_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex')",
        f"username:{ghost}")
    assert failures == 3


async def test_sign_in_of_a_suspended_user(identity, unique):
    name = unique()
    user = await identity.create_user(username=name, password="right-pass-1")
    await identity.client.patch(f"/api/users/{user['id']}/is-suspended", json={"isSuspended": True})
    wrong = await sign_in(identity, "username", name, "wrong-pass-1")
    assert (wrong.status, wrong.code) == (422, "session.invalid_credentials")
    right = await sign_in(identity, "username", name, "right-pass-1")
    assert (right.status, right.code) == (401, "user.suspended")
    allowed = await rpc.call(identity.ctx.bus, VERIFY_PASSWORD, VerifyPasswordRequest(
        by="username", value=name, password="right-pass-1", reject_suspended=False, tenant_id="default"), timeout=10)
    assert allowed.is_suspended is True


async def test_checks_that_are_not_guesses_need_not_count(identity, unique):
    """e.g. ForgotPassword's "is the new password the old one" check (count_failures=False)."""
    name = unique()
    await identity.create_user(username=name, password="right-pass-1")
    for _ in range(3):
        try:
            await rpc.call(identity.ctx.bus, VERIFY_PASSWORD, VerifyPasswordRequest(
                by="username", value=name, password="wrong", count_failures=False, tenant_id="default"), timeout=10)
        except RequestError as error:
            assert error.code == "session.invalid_credentials"
        else:
            raise AssertionError("a wrong password was accepted")
    counted = await identity.ctx.pool.fetchval(
        "SELECT count(*) FROM password_attempts WHERE identifier_hash = encode(sha256(convert_to($1, 'UTF8')), 'hex')",
        f"username:{name}")
    assert counted == 0

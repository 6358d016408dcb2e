"""Password hashing, Logto's password rule, imported argon2i hashes and their upgrade."""

from __future__ import annotations

import os

import pytest
from argon2 import Type
from argon2.low_level import hash_secret

from tessera_events.contracts.identity import CREATE_USER, VERIFY_PASSWORD, CreateUserRequest, VerifyPasswordRequest
from tessera_identity import passwords
from tessera_identity.validation import PASSWORD
from tessera_kit import rpc


def logto_hash(password: str) -> str:
    """A hash as Logto 1.x stores it (§1.11): argon2i, m=4096, t=256, p=1, 16-byte salt."""
    return hash_secret(password.encode(), os.urandom(16), time_cost=256, memory_cost=4096, parallelism=1,
                       hash_len=32, type=Type.I).decode()


@pytest.mark.parametrize("password, ok", [
    ("abcd1234", True),          # letters and digits
    ("abcd_efg", True),          # letters and a special (underscore counts as special)
    ("1234!@#$", True),          # digits and specials
    ("abcdefgh", False),         # one class only
    ("12345678", False),
    ("abc123", False),           # too short
    ("abcd 1234", False),        # no spaces
    ("pässword1", False),        # no non-ASCII
    ("abcd1234\n", False),       # Python's $ would accept this; fullmatch does not
    ("[]^`{}~1", True),          # the whole special set is allowed
    ("[]\\^`{}~1", False),       # but not a backslash: in Logto's class `\]` is an escaped `]`
])
def test_password_rule_is_logtos(password, ok):
    assert bool(PASSWORD.fullmatch(password)) is ok


async def test_new_hashes_are_argon2id_with_explicit_owasp_parameters():
    encoded = await passwords.hash_password("horse-battery-1")
    assert encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await passwords.verify_password(encoded, "Argon2id", "horse-battery-1")
    assert not await passwords.verify_password(encoded, "Argon2id", "horse-battery-2")
    assert not passwords.needs_rehash(encoded, "Argon2id")
    # No hash, or an unknown method: False (after as much work as a real check).
    assert not await passwords.verify_password(None, None, "x")
    assert not await passwords.verify_password(encoded, "Bcrypt", "horse-battery-1")


async def test_libsodiums_hashes_and_argon2_cffis_are_one_format():
    """New hashes come from libsodium; they check with argon2-cffi and the other way round,
    and what libsodium cannot take (p > 1) is checked by argon2-cffi."""
    from argon2 import PasswordHasher

    reference = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16)
    ours = await passwords.hash_password("horse-battery-1")
    assert reference.verify(ours, "horse-battery-1")
    assert not reference.check_needs_rehash(ours)
    theirs = reference.hash("horse-battery-3")
    assert await passwords.verify_password(theirs, "Argon2id", "horse-battery-3")
    assert not await passwords.verify_password(theirs, "Argon2id", "horse-battery-4")
    long_hash = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1, hash_len=64, salt_len=32).hash("long-1")
    assert len(long_hash) > 127  # past what libsodium reads: was refused
    assert await passwords.verify_password(long_hash, "Argon2id", "long-1")
    assert not await passwords.verify_password(long_hash, "Argon2id", "long-2")
    two_lanes = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=2).hash("lanes-1")
    assert await passwords.verify_password(two_lanes, "Argon2id", "lanes-1")
    assert not await passwords.verify_password(two_lanes, "Argon2id", "lanes-2")
    for broken in ("$argon2id$garbage", ours[:-4], ours.replace("$argon2id$", "$argon2d$"), ours + "é"):
        assert not await passwords.verify_password(broken, "Argon2id", "horse-battery-1"), broken
    assert await passwords.verify_password(await passwords.hash_password("pässwörd-ü1"), "Argon2id", "pässwörd-ü1")


async def test_an_imported_logto_hash_verifies_and_is_upgraded_on_success(identity, unique):
    """A user row imported from a Logto database (argon2i) signs in; the hash is replaced
    by an argon2id one, without an event (the password did not change)."""
    user = await identity.create_user(username=unique())
    uid = user["id"]
    imported = logto_hash("logto-pass-1")
    await identity.ctx.pool.execute(
        "UPDATE users SET password_encrypted = $2, password_encryption_method = 'Argon2i' WHERE id = $1",
        uid, imported)
    before = await identity.outbox_size()

    wrong = await identity.client.post(f"/api/users/{uid}/password/verify", json={"password": "logto-pass-2"})
    assert wrong.status_code == 422
    stored = await identity.ctx.pool.fetchval("SELECT password_encrypted FROM users WHERE id = $1", uid)
    assert stored == imported  # a failed check changes nothing

    ok = await identity.client.post(f"/api/users/{uid}/password/verify", json={"password": "logto-pass-1"})
    assert ok.status_code == 204
    row = await identity.ctx.pool.fetchrow(
        "SELECT password_encrypted, password_encryption_method FROM users WHERE id = $1", uid)
    assert row["password_encryption_method"] == "Argon2id"
    assert row["password_encrypted"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    assert await identity.outbox_size() == before
    again = await identity.client.post(f"/api/users/{uid}/password/verify", json={"password": "logto-pass-1"})
    assert again.status_code == 204


async def test_import_by_rpc_with_a_logto_digest(identity, unique):
    name = unique()
    digest = logto_hash("imported-1")
    created = await rpc.call(identity.ctx.bus, CREATE_USER, CreateUserRequest(
        username=name, password_digest=digest, password_algorithm="Argon2i", tenant_id="default"))
    assert created.has_password is True
    verified = await rpc.call(identity.ctx.bus, VERIFY_PASSWORD, VerifyPasswordRequest(
        by="username", value=name, password="imported-1", tenant_id="default"), timeout=10)
    assert verified.id == created.id
    method = await identity.ctx.pool.fetchval("SELECT password_encryption_method FROM users WHERE id = $1", created.id)
    assert method == "Argon2id"
    # A digest must be what it says it is.
    with pytest.raises(Exception) as caught:
        await rpc.call(identity.ctx.bus, CREATE_USER, CreateUserRequest(
            username=unique(), password_digest="$2b$10$bcrypt", password_algorithm="Argon2i", tenant_id="default"))
    assert caught.value.code == "password.unsupported_encryption_method"


def test_parallel_hashes_follow_the_memory_setting_not_the_node():
    assert passwords.parallel_hashes(4, 16) == 4  # a big node: the memory bound wins
    assert passwords.parallel_hashes(4, 2) == 2  # more threads than CPUs would only queue in the OS
    assert passwords.parallel_hashes(0, 8) == 1
    assert passwords.parallel_hashes(2, None) == 1
    assert passwords.load_settings(passwords.HashingSettings, {}).argon2_max_parallel == 4
    assert passwords.load_settings(passwords.HashingSettings,
                                   {"TESSERA_ARGON2_MAX_PARALLEL": "3"}).argon2_max_parallel == 3


async def test_hashing_runs_at_most_the_bound_at_once_and_queues_the_rest():
    import asyncio
    import threading

    size = passwords.configure(2)
    assert size == min(2, os.cpu_count() or 1)
    lock, release = threading.Lock(), threading.Event()
    running, most = 0, 0

    def work(_: int) -> None:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait()
        with lock:
            running -= 1

    try:
        tasks = [asyncio.ensure_future(passwords.run_hashing(work, n)) for n in range(8)]
        while True:  # until the pool is full (no time limit: the workers block on `release`)
            with lock:
                if running == size:
                    break
            await asyncio.sleep(0.01)
        for _ in range(20):  # give queued work every chance to start, were there a free thread
            await asyncio.sleep(0)
        with lock:
            assert running == size and most == size
        assert sum(not t.done() for t in tasks) == 8
        release.set()
        await asyncio.gather(*tasks)
        assert most == size  # the other six ran afterwards, never alongside
        # Real hashing still works through the bounded pool.
        assert await passwords.verify_password(await passwords.hash_password("abcd1234"), passwords.ARGON2ID,
                                               "abcd1234")
    finally:
        release.set()
        passwords.configure()


async def test_the_argon2_queue_is_on_metrics():
    """Hashes beyond the pool's size wait; /metrics shows how many wait and run."""
    import asyncio
    import threading

    from prometheus_client import REGISTRY

    def value(name: str) -> float:
        return REGISTRY.get_sample_value(name) or 0.0

    release = threading.Event()
    passwords.configure(1)
    try:
        checks_before = value("tessera_argon2_seconds_count")
        jobs = [asyncio.ensure_future(passwords.run_hashing(release.wait)) for _ in range(3)]
        for _ in range(500):  # until the pool's one thread has picked up the first job
            if value("tessera_argon2_running") == 1:
                break
            await asyncio.sleep(0.01)
        assert value("tessera_argon2_running") == 1
        assert value("tessera_argon2_waiting") == 2
        release.set()
        await asyncio.gather(*jobs)
        assert value("tessera_argon2_running") == 0 and value("tessera_argon2_waiting") == 0
        assert value("tessera_argon2_seconds_count") == checks_before + 3
    finally:
        release.set()
        passwords.configure()

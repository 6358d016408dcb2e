"""Password hashing: argon2id in PHC form, off the event loop.

New hashes use OWASP's minimum for argon2id (m=19 MiB, t=2, p=1; about 20 ms here), with
the parameters written into the stored string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`),
so they can be raised later without breaking old hashes. Logto's hashes
(`$argon2i$v=19$m=4096,t=256,p=1$...`, method `Argon2i`) verify as they are and are
replaced by a current hash at the next successful verification.

Our own argon2id hashes (p=1) are computed and checked with libsodium (PyNaCl), which picks
the CPU's vector instructions at run time: the same algorithm, parameters and PHC string as
argon2-cffi's reference code, in about three quarters of its time here (12.6 against 16.6 ms
of CPU per check, measured side by side). Other strings (Logto's argon2i, p > 1) are checked by
argon2-cffi, which also reads the parameters for `needs_rehash`.

Hashing and verifying run in a small thread pool of their own (argon2 releases the GIL), so
a burst of sign-ins never blocks the loop. Each running hash holds 19 MiB, so the pool is
bounded by the memory the process may spend on it, not by the node's CPUs (a pod limited to
256 MiB on a 16-CPU node would otherwise be OOM-killed by 16 parallel hashes):
`TESSERA_ARGON2_MAX_PARALLEL` hashes at most (default 4, about 76 MiB), and never more than
the CPUs, which could not run more at once anyway. Requests beyond it wait in the pool's queue,
holding only their password.
"""

from __future__ import annotations

import asyncio
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import msgspec
import nacl.exceptions
import nacl.pwhash.argon2id

from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from prometheus_client import Gauge, Histogram

from tessera_kit.config import env_name, load_settings

ARGON2ID = "Argon2id"
ARGON2I = "Argon2i"
SUPPORTED_METHODS = frozenset({ARGON2ID, ARGON2I})

# OWASP Password Storage Cheat Sheet, argon2id minimum configuration.
MEMORY_COST_KIB = 19456
TIME_COST = 2
PARALLELISM = 1
HASH_LENGTH = 32
SALT_LENGTH = 16

_hasher = PasswordHasher(
    time_cost=TIME_COST,
    memory_cost=MEMORY_COST_KIB,
    parallelism=PARALLELISM,
    hash_len=HASH_LENGTH,
    salt_len=SALT_LENGTH,
    type=Type.ID,
)
# libsodium's argon2id: 16-byte salt and 32-byte hash, like _hasher; one lane only.
assert (nacl.pwhash.argon2id.SALTBYTES, PARALLELISM) == (SALT_LENGTH, 1)


def _hash_sync(password: str) -> str:
    return nacl.pwhash.argon2id.str(password.encode(), opslimit=TIME_COST,
                                    memlimit=MEMORY_COST_KIB * 1024).decode("ascii")


class HashingSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_name):
    # TESSERA_ARGON2_MAX_PARALLEL: hashes computed at once (each holds MEMORY_COST_KIB).
    argon2_max_parallel: int = 4


def parallel_hashes(max_parallel: int, cpus: int | None) -> int:
    """How many hashes run at once: the memory bound, and no more than the CPUs (at least one)."""
    return max(1, min(max_parallel, cpus or 1))


_pool: ThreadPoolExecutor | None = None


def configure(max_parallel: int | None = None) -> int:
    """(Re)build the hashing pool; `max_parallel` defaults to the setting. Returns its size."""
    global _pool
    if max_parallel is None:
        max_parallel = load_settings(HashingSettings).argon2_max_parallel
    previous = _pool
    size = parallel_hashes(max_parallel, os.cpu_count())
    _pool = ThreadPoolExecutor(max_workers=size, thread_name_prefix="argon2")
    if previous is not None:
        previous.shutdown(wait=False)
    return size


# On /metrics: the argon2 queue (hashes waiting for a slot of the pool) and how long a
# password check takes in all, waiting included.
ARGON2_WAITING = Gauge("tessera_argon2_waiting", "Password hashes waiting for a slot of the argon2 pool")
ARGON2_RUNNING = Gauge("tessera_argon2_running", "Password hashes being computed now")
ARGON2_SECONDS = Histogram(
    "tessera_argon2_seconds", "Time of one password hash or check, queue wait included",
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


async def run_hashing(function: Callable[..., Any], *args: Any) -> Any:
    """Run `function` in the bounded hashing pool (queued while it is full)."""
    if _pool is None:
        configure()

    def in_a_slot() -> Any:
        ARGON2_WAITING.dec()
        ARGON2_RUNNING.inc()
        try:
            return function(*args)
        finally:
            ARGON2_RUNNING.dec()

    started = time.perf_counter()
    ARGON2_WAITING.inc()
    future = asyncio.get_running_loop().run_in_executor(_pool, in_a_slot)
    try:
        return await future
    finally:
        ARGON2_SECONDS.observe(time.perf_counter() - started)

# Verified against when there is no user or no hash, so that answer takes as long as a real one.
_DUMMY_HASH = _hash_sync("tessera-dummy-password")


def _verify_sync(encoded: str, password: str) -> bool:
    try:
        # The PHC prefix says which variant ($argon2i$ or $argon2id$) and which parameters.
        parameters = extract_parameters(encoded)
        # libsodium takes one lane and strings up to PWHASH_SIZE (an imported hash with a
        # longer salt or hash is not one: argon2-cffi checks it; PWHASH_SIZE is 127).
        if (parameters.type is Type.ID and parameters.parallelism == 1
                and len(encoded) <= nacl.pwhash.argon2id.PWHASH_SIZE):
            return nacl.pwhash.argon2id.verify(encoded.encode("ascii"), password.encode())
        return _hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError, nacl.exceptions.CryptoError,
            UnicodeEncodeError):
        return False


async def hash_password(password: str) -> str:
    return await run_hashing(_hash_sync, password)


async def verify_password(encoded: str | None, method: str | None, password: str) -> bool:
    """True when `password` matches `encoded`. With no usable hash, an equally slow False."""
    if not encoded or method not in SUPPORTED_METHODS:
        await run_hashing(_verify_sync, _DUMMY_HASH, password)
        return False
    return await run_hashing(_verify_sync, encoded, password)


def needs_rehash(encoded: str, method: str | None) -> bool:
    """An imported argon2i hash, or argon2id with other parameters than today's."""
    if method != ARGON2ID:
        return True
    try:
        return _hasher.check_needs_rehash(encoded)
    except InvalidHashError:
        return True


def method_of(encoded: str) -> str | None:
    """The `password_encryption_method` an imported PHC string belongs to."""
    if encoded.startswith("$argon2id$"):
        return ARGON2ID
    if encoded.startswith("$argon2i$"):
        return ARGON2I
    return None

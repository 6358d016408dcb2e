"""Password hashing: argon2id in PHC form, off the event loop.

New hashes use OWASP's minimum for argon2id (m=19 MiB, t=2, p=1; about 20 ms here), with
the parameters written into the stored string (`$argon2id$v=19$m=19456,t=2,p=1$salt$hash`),
so they can be raised later without breaking old hashes. Logto's hashes
(`$argon2i$v=19$m=4096,t=256,p=1$...`, method `Argon2i`) verify as they are and are
replaced by a current hash at the next successful verification.

Hashing and verifying run in a small thread pool of their own (argon2 releases the GIL),
sized to the CPUs, so a burst of sign-ins neither blocks the loop nor allocates 19 MiB
per waiting request.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

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
_pool = ThreadPoolExecutor(max_workers=max(2, os.cpu_count() or 2), thread_name_prefix="argon2")
# Verified against when there is no user or no hash, so that answer takes as long as a real one.
_DUMMY_HASH = _hasher.hash("tessera-dummy-password")


def _verify_sync(encoded: str, password: str) -> bool:
    try:
        # The PHC prefix says which variant ($argon2i$ or $argon2id$) and which parameters.
        return _hasher.verify(encoded, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


async def hash_password(password: str) -> str:
    return await asyncio.get_running_loop().run_in_executor(_pool, _hasher.hash, password)


async def verify_password(encoded: str | None, method: str | None, password: str) -> bool:
    """True when `password` matches `encoded`. With no usable hash, an equally slow False."""
    if not encoded or method not in SUPPORTED_METHODS:
        await asyncio.get_running_loop().run_in_executor(_pool, _verify_sync, _DUMMY_HASH, password)
        return False
    return await asyncio.get_running_loop().run_in_executor(_pool, _verify_sync, encoded, password)


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

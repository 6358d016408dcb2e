"""HASH_PASSWORD (issue 11 item 5): experience keeps an interaction's new password as identity's
hash of it, then sets it with UPDATE_USER / CREATE_USER `password_digest`; the user signs in with
the password, and setting it announces a password change like a clear one does."""

from __future__ import annotations

import pytest

from tessera_events.contracts.identity import (
    CREATE_USER,
    HASH_PASSWORD,
    UPDATE_USER,
    VERIFY_PASSWORD,
    CreateUserRequest,
    HashPasswordRequest,
    UpdateUserRequest,
    VerifyPasswordRequest,
)
from tessera_kit import rpc
from tessera_kit.errors import RequestError

OLD, NEW = "0ld-Password", "n3w-Password"


async def test_a_hashed_password_is_set_and_signs_in(identity, unique):
    name = unique()
    hashed = await rpc.call(identity.ctx.bus, HASH_PASSWORD, HashPasswordRequest(password=OLD, tenant_id="default"), timeout=10)
    assert hashed.digest.startswith("$argon2id$") and OLD not in hashed.digest and hashed.algorithm == "Argon2id"
    assert hashed.same_as_current is False
    user = await rpc.call(identity.ctx.bus, CREATE_USER, CreateUserRequest(
        username=name, password_digest=hashed.digest, password_algorithm=hashed.algorithm, tenant_id="default"), timeout=10)
    signed_in = await rpc.call(identity.ctx.bus, VERIFY_PASSWORD, VerifyPasswordRequest(
        by="username", value=name, password=OLD, tenant_id="default"), timeout=10)
    assert signed_in.id == user.id

    # A reset: compared with the current password, then set from the hash and announced.
    same = await rpc.call(identity.ctx.bus, HASH_PASSWORD, HashPasswordRequest(
        password=OLD, compare_with_user_id=user.id, tenant_id="default"), timeout=10)
    assert same.same_as_current is True
    other = await rpc.call(identity.ctx.bus, HASH_PASSWORD, HashPasswordRequest(
        password=NEW, compare_with_user_id=user.id, tenant_id="default"), timeout=10)
    assert other.same_as_current is False
    await rpc.call(identity.ctx.bus, UPDATE_USER, UpdateUserRequest(
        user_id=user.id, password_digest=other.digest, password_algorithm=other.algorithm, tenant_id="default"), timeout=10)
    assert "identity.user.password_changed" in await identity.event_types(user.id)
    with pytest.raises(RequestError):
        await rpc.call(identity.ctx.bus, VERIFY_PASSWORD, VerifyPasswordRequest(
            by="username", value=name, password=OLD, count_failures=False, tenant_id="default"), timeout=10)
    assert (await rpc.call(identity.ctx.bus, VERIFY_PASSWORD, VerifyPasswordRequest(
        by="username", value=name, password=NEW, tenant_id="default"), timeout=10)).id == user.id


async def test_a_weak_password_is_not_hashed(identity):
    with pytest.raises(RequestError) as caught:
        await rpc.call(identity.ctx.bus, HASH_PASSWORD, HashPasswordRequest(password="short", tenant_id="default"), timeout=10)
    assert caught.value.code == "guard.invalid_input"

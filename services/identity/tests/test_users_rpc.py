"""What identity answers other services about users over NATS (contracts/identity.py)."""

from __future__ import annotations

import time

import pytest

from tessera_events.contracts.identity import (
    CREATE_USER,
    FIND_USER,
    UPDATE_USER,
    USER_COUNTS,
    CreateUserRequest,
    FindUserRequest,
    Identity,
    UpdateUserRequest,
    UserCountsRequest,
)
from tessera_kit import rpc
from tessera_kit.errors import RequestError


async def call(identity, operation, request):
    return await rpc.call(identity.ctx.bus, operation, request, timeout=10)


async def test_find_user_by_each_identifier(identity, unique, phone):
    name, number = unique(), phone()
    user = await identity.create_user(username=name, primaryEmail=f"{name}@Example.com", primaryPhone=number)
    for by, value in (("id", user["id"]), ("username", name), ("email", f"{name.upper()}@EXAMPLE.COM"),
                      ("phone", number)):
        found = await call(identity, FIND_USER, FindUserRequest(by=by, value=value, tenant_id="default"))
        assert found is not None and found.id == user["id"], by
    # Usernames are case-sensitive; nobody is None.
    assert await call(identity, FIND_USER, FindUserRequest(by="username", value=name.upper(), tenant_id="default")) is None
    with pytest.raises(RequestError) as caught:
        await call(identity, FIND_USER, FindUserRequest(tenant_id="default"))
    assert caught.value.status == 400


async def test_create_user_from_a_registration(identity, unique, phone):
    name = unique()
    created = await call(identity, CREATE_USER, CreateUserRequest(
        username=name, primary_phone=phone(), password="reg-pass-1", name="Reg",
        identities={"github": Identity(user_id="gh-77", details={"id": "gh-77", "email": "x@y.z"})},
        application_id="app-1", last_sign_in_at=1_700_000_000_000,
        tenant_id="default",
    ))
    assert created.username == name and created.has_password and created.application_id == "app-1"
    assert created.last_sign_in_at == 1_700_000_000_000
    assert created.identities["github"].user_id == "gh-77"
    ((event_type, data),) = await identity.events(created.id)
    assert event_type == "identity.user.created" and data["identity_targets"] == ["github"]
    assert data["application_id"] == "app-1" and "reg-pass-1" not in str(data)
    by_identity = await call(identity, FIND_USER, FindUserRequest(identity_target="github", identity_user_id="gh-77", tenant_id="default"))
    assert by_identity.id == created.id


@pytest.fixture(scope="module")
async def taken(identity):
    """A user holding the username `taken` and the GitHub identity `gh-taken`."""
    return await call(identity, CREATE_USER, CreateUserRequest(
        username="taken", identities={"github": Identity(user_id="gh-taken")}, tenant_id="default"))


@pytest.mark.parametrize("request_fields, code, status", [
    ({"username": "taken"}, "user.username_already_in_use", 422),
    ({"identities": {"github": Identity(user_id="gh-taken")}}, "user.identity_already_in_use", 422),
    ({"primary_phone": "+1 555"}, "guard.invalid_input", 400),
    ({"password": "weak"}, "guard.invalid_input", 400),
])
async def test_create_user_refusals(identity, taken, request_fields, code, status):
    before = await identity.outbox_size()
    with pytest.raises(RequestError) as caught:
        await call(identity, CREATE_USER, CreateUserRequest(**request_fields, tenant_id="default"))
    assert (caught.value.code, caught.value.status) == (code, status)
    assert await identity.outbox_size() == before


async def test_update_user_leaves_unset_fields_and_clears_null_ones(identity, unique):
    name = unique()
    user = await identity.create_user(username=name, name="Before", primaryEmail=f"{name}@example.com")
    await identity.client.patch(f"/api/users/{user['id']}", json={"customData": {"a": 1}})
    updated = await call(identity, UPDATE_USER, UpdateUserRequest(
        user_id=user["id"], name="After", primary_email=None, custom_data={"b": 2}, password="new-pass-1",
        identities={"google": Identity(user_id="g-9")}, last_sign_in_at=1_700_000_000_000, tenant_id="default"))
    assert (updated.username, updated.name, updated.primary_email) == (name, "After", None)
    assert updated.custom_data == {"a": 1, "b": 2} and updated.has_password
    assert updated.last_sign_in_at == 1_700_000_000_000 and "google" in updated.identities
    events = await identity.events(user["id"])
    assert [t for t, _ in events][-3:] == ["identity.user.updated", "identity.user.password_changed",
                                           "identity.user.identity_linked"]
    assert events[-3][1]["changed"] == ["primary_email", "name", "custom_data", "last_sign_in_at"]


async def test_a_sign_in_time_alone_is_not_announced(identity, unique):
    user = await identity.create_user(username=unique())
    before = await identity.outbox_size()
    updated = await call(identity, UPDATE_USER, UpdateUserRequest(user_id=user["id"], last_sign_in_at=1_700_000_000_000, tenant_id="default"))
    assert updated.last_sign_in_at == 1_700_000_000_000
    assert await identity.outbox_size() == before


async def test_update_user_refusals(identity, unique):
    other = await identity.create_user(username=unique())
    user = await identity.create_user(username=unique())
    with pytest.raises(RequestError) as caught:
        await call(identity, UPDATE_USER, UpdateUserRequest(user_id=user["id"], username=other["username"], tenant_id="default"))
    assert caught.value.code == "user.username_already_in_use"
    with pytest.raises(RequestError) as caught:
        await call(identity, UPDATE_USER, UpdateUserRequest(user_id="nobody123456", name="x", tenant_id="default"))
    assert (caught.value.status, caught.value.code) == (404, "entity.not_found")


async def test_create_user_with_an_idempotency_key_creates_once(identity, unique):
    import asyncio

    name, key = unique(), f"interaction:{unique()}"
    request = CreateUserRequest(username=name, password="reg-pass-1", idempotency_key=key, tenant_id="default")
    first, second = await asyncio.gather(call(identity, CREATE_USER, request), call(identity, CREATE_USER, request))
    again = await call(identity, CREATE_USER, request)  # a retry after a lost reply
    assert first.id == second.id == again.id and first.username == name
    assert [t for t, _ in await identity.events(first.id)] == ["identity.user.created"]
    found = await call(identity, FIND_USER, FindUserRequest(idempotency_key=key, tenant_id="default"))
    assert found is not None and found.id == first.id
    assert await call(identity, FIND_USER, FindUserRequest(idempotency_key=key + "-unknown", tenant_id="default")) is None
    # Another key is another registration: the username is taken now.
    with pytest.raises(RequestError) as caught:
        await call(identity, CREATE_USER, CreateUserRequest(username=name, idempotency_key=key + "-other", tenant_id="default"))
    assert caught.value.code == "user.username_already_in_use"
    # Deleting the user forgets its key.
    await identity.ctx.pool.execute("DELETE FROM users WHERE id = $1", first.id)
    assert await identity.ctx.pool.fetchval("SELECT count(*) FROM user_creation_keys WHERE key = $1", key) == 0


async def test_user_counts_are_the_users_now_and_those_created_in_each_window(identity, unique):
    now = int(time.time() * 1000)
    hour, day = 3_600_000, 86_400_000
    windows = [(now - hour, now + hour), (now - 2 * day, now - day)]
    before = await call(identity, USER_COUNTS, UserCountsRequest(windows=windows, tenant_id="default"))
    first = await identity.create_user(username=unique())
    await identity.create_user(username=unique())
    after = await call(identity, USER_COUNTS, UserCountsRequest(windows=windows, tenant_id="default"))
    assert after.total == before.total + 2
    assert after.created == [before.created[0] + 2, before.created[1]]
    assert (await identity.client.delete(f"/api/users/{first['id']}")).status_code == 204
    gone = await call(identity, USER_COUNTS, UserCountsRequest(windows=windows, tenant_id="default"))
    assert (gone.total, gone.created) == (before.total + 1, [before.created[0] + 1, before.created[1]])
    assert (await call(identity, USER_COUNTS, UserCountsRequest(tenant_id="default"))).created == []
    for bad in (windows * 5, [(now, now - 1)], [(-1, now)], [(0, 10**17)]):  # a datetime ends at year 9999
        with pytest.raises(RequestError) as caught:
            await call(identity, USER_COUNTS, UserCountsRequest(windows=bad, tenant_id="default"))
        assert caught.value.status == 400, bad

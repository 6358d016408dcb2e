"""`/api/users*` in-process on real PostgreSQL and NATS: statuses, bodies, error codes,
rows and the events each change writes (and that failed requests write none)."""

from __future__ import annotations

import pytest

from tessera_events import Actor
from tessera_events.contracts.identity import UPDATE_USER, Identity, UpdateUserRequest
from tessera_identity.users import lockout
from tessera_kit import rpc
from tessera_kit.testing import acting_as

PUBLIC_FIELDS = ["id", "username", "primaryEmail", "primaryPhone", "name", "avatar", "customData",
                 "identities", "lastSignInAt", "createdAt", "applicationId", "isSuspended", "hasPassword"]


def issue_paths(response) -> list[list[str]]:
    return [i["path"] for i in response.json()["data"]["issues"]]


async def assert_no_event_written(identity, before: int) -> None:
    assert await identity.outbox_size() == before


# ---------------------------------------------------------------- create


async def test_create_an_empty_user(identity):
    response = await identity.client.post("/api/users", json={})
    assert response.status_code == 200
    user = response.json()
    assert list(user) == PUBLIC_FIELDS
    assert len(user["id"]) == 12 and user["id"].isalnum() and user["id"] == user["id"].lower()
    assert user["customData"] == {} and user["identities"] == {}
    assert user["hasPassword"] is False and user["isSuspended"] is False
    assert isinstance(user["createdAt"], int) and user["lastSignInAt"] is None
    # A missing body is an empty one (koa-body).
    assert (await identity.client.post("/api/users")).status_code == 200


async def test_create_with_every_field_sets_has_password_and_announces_no_secret(identity, unique, phone):
    name, number = unique("ada"), phone()
    body = {"username": name, "primaryEmail": f"{name}@Example.com", "primaryPhone": number,
            "password": "horse-battery1", "name": "Ada"}
    user = await identity.create_user(**body)
    assert (user["username"], user["primaryEmail"], user["primaryPhone"], user["name"]) == (
        name, f"{name}@Example.com", number, "Ada")
    assert user["hasPassword"] is True
    row = await identity.ctx.pool.fetchrow(
        "SELECT password_encrypted, password_encryption_method FROM users WHERE id = $1", user["id"])
    assert row["password_encryption_method"] == "Argon2id"
    assert row["password_encrypted"].startswith("$argon2id$v=19$m=19456,t=2,p=1$")
    ((event_type, data),) = await identity.events(user["id"])
    assert event_type == "identity.user.created"
    assert data["user"]["username"] == name and data["has_password"] is True
    assert "horse-battery1" not in str(data) and "argon2" not in str(data)


@pytest.mark.parametrize("body, path", [
    ({"username": "1starts-with-digit"}, "username"),
    ({"username": "has space"}, "username"),
    ({"primaryEmail": "not-an-email"}, "primaryEmail"),
    ({"primaryPhone": "+15550001"}, "primaryPhone"),
    ({"password": "short1"}, "password"),
    ({"password": "onlyletters"}, "password"),
    ({"password": "ünïcode-pass1"}, "password"),
    ({"name": 42}, "name"),
    ({"username": "a" * 129}, "username"),
])
async def test_create_rejects_bad_input_with_logto_guard_error(identity, body, path):
    before = await identity.outbox_size()
    response = await identity.client.post("/api/users", json=body)
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "guard.invalid_input"
    assert error["message"] == "The request body is invalid."
    assert issue_paths(response) == [[path]]
    assert error["details"].startswith(f'Error in key path "{path}"')
    await assert_no_event_written(identity, before)


async def test_create_rejects_a_body_that_is_not_an_object(identity):
    response = await identity.client.post("/api/users", json=["alice"])
    assert response.status_code == 400 and response.json()["code"] == "guard.invalid_input"
    broken = await identity.client.post("/api/users", content=b"{nope", headers={"content-type": "application/json"})
    assert broken.status_code == 400 and broken.json()["code"] == "guard.invalid_input"


async def test_identifiers_are_unique_as_in_logto(identity, unique, phone):
    name, number = unique("bob"), phone()
    await identity.create_user(username=name, primaryEmail=f"{name}@example.com", primaryPhone=number)
    before = await identity.outbox_size()
    cases = [
        ({"username": name}, "user.username_already_in_use"),
        ({"primaryEmail": f"{name.upper()}@EXAMPLE.com"}, "user.email_already_in_use"),  # case-insensitive
        ({"primaryPhone": number}, "user.phone_already_in_use"),
        # Logto checks username, then email, then phone.
        ({"username": name, "primaryEmail": f"{name}@example.com"}, "user.username_already_in_use"),
    ]
    for body, code in cases:
        response = await identity.client.post("/api/users", json=body)
        assert (response.status_code, response.json()["code"]) == (422, code), body
    await assert_no_event_written(identity, before)
    # Usernames are case-sensitive.
    assert (await identity.client.post("/api/users", json={"username": name.upper()})).status_code == 200


# ---------------------------------------------------------------- read


async def test_get_user_and_missing_user(identity, unique):
    user = await identity.create_user(username=unique())
    response = await identity.client.get(f"/api/users/{user['id']}")
    assert response.status_code == 200 and response.json() == user
    assert response.headers["etag"]
    missing = await identity.client.get("/api/users/nobody123456")
    assert missing.status_code == 404
    assert missing.json() == {"message": "The resource does not exist.", "code": "entity.not_found"}


# ---------------------------------------------------------------- update


async def test_patch_profile_sets_clears_and_keeps_empty_strings(identity, unique):
    name = unique("carol")
    user = await identity.create_user(username=name, name="Carol", primaryEmail=f"{name}@example.com")
    response = await identity.client.patch(f"/api/users/{user['id']}", json={
        "name": "", "primaryEmail": None, "avatar": "https://example.com/a.png",
        "customData": {"plan": "pro"}, "unknownKey": "ignored",
    })
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "" and body["primaryEmail"] is None
    assert body["avatar"] == "https://example.com/a.png" and body["customData"] == {"plan": "pro"}
    assert body["username"] == name
    # customData is replaced as a whole by this route.
    replaced = await identity.client.patch(f"/api/users/{user['id']}", json={"customData": {"other": 1}})
    assert replaced.json()["customData"] == {"other": 1}
    types = await identity.events(user["id"])
    assert [t for t, _ in types] == ["identity.user.created", "identity.user.updated", "identity.user.updated"]
    assert types[1][1]["changed"] == ["primary_email", "name", "avatar", "custom_data"]
    assert types[2][1]["changed"] == ["custom_data"]


async def test_patch_that_changes_nothing_announces_nothing(identity, unique):
    user = await identity.create_user(username=unique(), name="Same")
    before = await identity.outbox_size()
    response = await identity.client.patch(f"/api/users/{user['id']}", json={"name": "Same"})
    assert response.status_code == 200
    await assert_no_event_written(identity, before)


async def test_patch_validation_collisions_and_missing_user(identity, unique):
    taken = await identity.create_user(username=unique("taken"), primaryEmail=f"{unique()}@example.com")
    user = await identity.create_user(username=unique())
    before = await identity.outbox_size()
    bad = await identity.client.patch(f"/api/users/{user['id']}", json={"avatar": "not a url", "username": "9x"})
    assert bad.status_code == 400 and issue_paths(bad) == [["username"], ["avatar"]]
    clash = await identity.client.patch(f"/api/users/{user['id']}", json={"username": taken["username"]})
    assert (clash.status_code, clash.json()["code"]) == (422, "user.username_already_in_use")
    clash = await identity.client.patch(f"/api/users/{user['id']}",
                                        json={"primaryEmail": taken["primaryEmail"].upper()})
    assert (clash.status_code, clash.json()["code"]) == (422, "user.email_already_in_use")
    missing = await identity.client.patch("/api/users/nobody123456", json={"name": "x"})
    assert (missing.status_code, missing.json()["code"]) == (404, "entity.not_found")
    await assert_no_event_written(identity, before)
    # A user's own identifiers never collide with themselves.
    own = await identity.client.patch(f"/api/users/{taken['id']}", json={"username": taken["username"]})
    assert own.status_code == 200


async def test_custom_data_get_and_merge(identity, unique):
    user = await identity.create_user(username=unique())
    uid = user["id"]
    await identity.client.patch(f"/api/users/{uid}", json={"customData": {"a": 1, "nested": {"x": 1}}})
    merged = await identity.client.patch(f"/api/users/{uid}/custom-data",
                                         json={"customData": {"b": 2, "nested": {"y": 2}}})
    assert merged.status_code == 200
    # Top-level keys merge; a nested object given replaces the stored one (jsonb ||).
    assert merged.json() == {"a": 1, "b": 2, "nested": {"y": 2}}
    assert (await identity.client.get(f"/api/users/{uid}/custom-data")).json() == merged.json()
    missing_body = await identity.client.patch(f"/api/users/{uid}/custom-data", json={})
    assert missing_body.status_code == 400 and issue_paths(missing_body) == [["customData"]]
    for method, path in (("GET", "/custom-data"), ("PATCH", "/custom-data")):
        response = await identity.client.request(method, f"/api/users/nobody123456{path}",
                                                 json={"customData": {}})
        assert (response.status_code, response.json()["code"]) == (404, "entity.not_found")


# ---------------------------------------------------------------- passwords


async def test_set_verify_and_has_password(identity, unique):
    user = await identity.create_user(username=unique())
    uid = user["id"]
    assert (await identity.client.get(f"/api/users/{uid}/has-password")).json() == {"hasPassword": False}
    no_password = await identity.client.post(f"/api/users/{uid}/password/verify", json={"password": "anything1"})
    assert (no_password.status_code, no_password.json()["code"]) == (422, "session.invalid_credentials")

    weak = await identity.client.patch(f"/api/users/{uid}/password", json={"password": "weak"})
    assert weak.status_code == 400 and issue_paths(weak) == [["password"]]
    response = await identity.client.patch(f"/api/users/{uid}/password", json={"password": "new-secret-1"})
    assert response.status_code == 200 and response.json()["hasPassword"] is True
    assert (await identity.client.get(f"/api/users/{uid}/has-password")).json() == {"hasPassword": True}

    ok = await identity.client.post(f"/api/users/{uid}/password/verify", json={"password": "new-secret-1"})
    assert ok.status_code == 204 and ok.content == b""
    wrong = await identity.client.post(f"/api/users/{uid}/password/verify", json={"password": "new-secret-2"})
    assert (wrong.status_code, wrong.json()["code"]) == (422, "session.invalid_credentials")
    # Checking a password is not setting one: the regex does not apply, only non-empty.
    any_text = await identity.client.post(f"/api/users/{uid}/password/verify", json={"password": "x"})
    assert any_text.status_code == 422
    empty = await identity.client.post(f"/api/users/{uid}/password/verify", json={"password": ""})
    assert empty.status_code == 400 and empty.json()["code"] == "guard.invalid_input"
    types = await identity.event_types(uid)
    assert types == ["identity.user.created", "identity.user.password_changed"]
    assert "new-secret" not in str(await identity.events(uid))


async def test_password_routes_on_a_missing_user(identity):
    for method, path, body in (
        ("PATCH", "password", {"password": "new-secret-1"}),
        ("POST", "password/verify", {"password": "x"}),
        ("GET", "has-password", None),
    ):
        response = await identity.client.request(method, f"/api/users/nobody123456/{path}", json=body)
        assert (response.status_code, response.json()["code"]) == (404, "entity.not_found"), path


# ---------------------------------------------------------------- suspension and deletion


async def test_suspend_and_unsuspend(identity, unique):
    user = await identity.create_user(username=unique())
    uid = user["id"]
    suspended = await identity.client.patch(f"/api/users/{uid}/is-suspended", json={"isSuspended": True})
    assert suspended.status_code == 200 and suspended.json()["isSuspended"] is True
    again = await identity.client.patch(f"/api/users/{uid}/is-suspended", json={"isSuspended": True})
    assert again.status_code == 200
    back = await identity.client.patch(f"/api/users/{uid}/is-suspended", json={"isSuspended": False})
    assert back.json()["isSuspended"] is False
    # Announced when the state changes, not on a repeat.
    assert await identity.event_types(uid) == [
        "identity.user.created", "identity.user.suspended", "identity.user.unsuspended"]
    bad = await identity.client.patch(f"/api/users/{uid}/is-suspended", json={"isSuspended": "yes"})
    assert bad.status_code == 400 and issue_paths(bad) == [["isSuspended"]]
    missing = await identity.client.patch("/api/users/nobody123456/is-suspended", json={"isSuspended": True})
    assert (missing.status_code, missing.json()["code"]) == (404, "entity.not_found")


async def test_delete_user_removes_everything_and_announces_it(identity, unique):
    name = unique()
    user = await identity.create_user(username=name, password="pass-word-1")
    uid = user["id"]
    wrong = await identity.client.post(f"/api/users/{uid}/password/verify", json={"password": "nope"})
    assert wrong.status_code == 422
    tenant = identity.ctx.settings.tenant_id
    count_attempts = "SELECT count(*) FROM password_attempts WHERE tenant_id = $1 AND identifier_hash = $2"
    assert await identity.ctx.pool.fetchval(count_attempts, tenant, lockout.identifier_key("id", uid)) == 1

    response = await identity.client.delete(f"/api/users/{uid}")
    assert response.status_code == 204 and response.content == b""
    assert await identity.ctx.pool.fetchval("SELECT count(*) FROM users WHERE id = $1", uid) == 0
    assert await identity.ctx.pool.fetchval(count_attempts, tenant, lockout.identifier_key("id", uid)) == 0
    assert (await identity.events(uid))[-1] == ("identity.user.deleted", {"user_id": uid})
    again = await identity.client.delete(f"/api/users/{uid}")
    assert (again.status_code, again.json()["code"]) == (404, "entity.not_found")


async def test_nobody_deletes_themselves(identity, unique):
    user = await identity.create_user(username=unique())
    before = await identity.outbox_size()
    response = await identity.client.delete(
        f"/api/users/{user['id']}", extensions=acting_as(Actor(type="user", id=user["id"])))
    assert response.status_code == 400
    assert response.json() == {"message": "You cannot delete yourself.", "code": "user.cannot_delete_self"}
    assert (await identity.client.get(f"/api/users/{user['id']}")).status_code == 200
    await assert_no_event_written(identity, before)


# ---------------------------------------------------------------- social identities


async def link(identity, user_id: str, target: str, identity_user_id: str) -> None:
    await rpc.call(identity.ctx.bus, UPDATE_USER, UpdateUserRequest(
        user_id=user_id, identities={target: Identity(user_id=identity_user_id, details={"id": identity_user_id})}, tenant_id="default"))


async def test_unlink_identity(identity, unique):
    user = await identity.create_user(username=unique())
    uid = user["id"]
    await link(identity, uid, "github", "gh-1")
    await link(identity, uid, "google", "g-1")
    response = await identity.client.delete(f"/api/users/{uid}/identities/github")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == PUBLIC_FIELDS
    assert body["identities"] == {"google": {"userId": "g-1", "details": {"id": "g-1"}}}
    missing = await identity.client.delete(f"/api/users/{uid}/identities/github")
    assert (missing.status_code, missing.json()["code"]) == (404, "user.identity_not_exist")
    no_user = await identity.client.delete("/api/users/nobody123456/identities/github")
    assert (no_user.status_code, no_user.json()["code"]) == (404, "entity.not_found")
    events = await identity.events(uid)
    assert [t for t, _ in events] == ["identity.user.created", "identity.user.identity_linked",
                                      "identity.user.identity_linked", "identity.user.identity_unlinked"]
    assert events[1][1] == {"user_id": uid, "target": "github", "identity_user_id": "gh-1"}
    assert events[3][1] == {"user_id": uid, "target": "github"}


async def test_link_identity_needs_connectors(identity, unique):
    user = await identity.create_user(username=unique())
    bad = await identity.client.post(f"/api/users/{user['id']}/identities", json={"connectorId": "c1"})
    assert bad.status_code == 400 and issue_paths(bad) == [["connectorData"]]
    no_user = await identity.client.post("/api/users/nobody123456/identities",
                                         json={"connectorId": "c1", "connectorData": {}})
    assert (no_user.status_code, no_user.json()["code"]) == (404, "entity.not_found")
    before = await identity.outbox_size()
    # No connectors service in this namespace: 503, and nothing changes.
    down = await identity.client.post(f"/api/users/{user['id']}/identities",
                                      json={"connectorId": "c1", "connectorData": {"code": "x"}})
    assert (down.status_code, down.json()["code"]) == (503, "service.unavailable")
    await assert_no_event_written(identity, before)


# ---------------------------------------------------------------- list and pagination


async def test_list_is_paginated_newest_first(identity, unique):
    prefix = unique("page")
    made = [await identity.create_user(username=f"{prefix}_{i}") for i in range(5)]
    params = {"search.username": f"{prefix}%", "page_size": "2"}
    first = await identity.client.get("/api/users", params=params)
    assert first.status_code == 200
    assert first.headers["total-number"] == "5"
    assert [u["username"] for u in first.json()] == [f"{prefix}_4", f"{prefix}_3"]
    assert 'rel="next"' in first.headers["link"] and 'rel="prev"' not in first.headers["link"]
    last = await identity.client.get("/api/users", params={**params, "page": "3"})
    assert [u["id"] for u in last.json()] == [made[0]["id"]]
    beyond = await identity.client.get("/api/users", params={**params, "page": "9"})
    assert beyond.json() == [] and beyond.headers["total-number"] == "5"
    for bad in ({"page_size": "101"}, {"page": "0"}, {"page_size": "x"}):
        response = await identity.client.get("/api/users", params=bad)
        assert (response.status_code, response.json()["code"]) == (400, "guard.invalid_pagination")
    everyone = await identity.client.get("/api/users")
    assert len(everyone.json()) == min(20, int(everyone.headers["total-number"]))


async def test_exclude_role_id_without_rbac_is_503(identity):
    response = await identity.client.get("/api/users", params={"excludeRoleId": "some-role"})
    assert (response.status_code, response.json()["code"]) == (503, "service.unavailable")

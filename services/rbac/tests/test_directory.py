"""The read models of identity's users and applications, fed by identity's events."""

from __future__ import annotations

import asyncio

import msgspec

from tessera_events.identity import (
    ApplicationDeleted,
    UserCreated,
    UserDeleted,
    UserSnapshot,
    UserSuspended,
    UserUpdated,
)
from tessera_events.contracts.rbac import SET_APPLICATION_ADMIN, ApplicationAdminRequest
from tessera_kit.outbox import build_envelope
from tessera_rbac.directory.freshness import IDENTITY_SUBSCRIPTION


def code(response) -> tuple[int, str | None]:
    return response.status_code, response.json().get("code")


async def create_role(rbac, name="editor") -> dict:
    return (await rbac.client.post("/api/roles", json={"name": name, "description": name})).json()


async def featured(rbac) -> list[dict]:
    (role,) = (await rbac.client.get("/api/roles")).json()
    return role["featuredUsers"]


def consumer_of(rbac):
    return next(c for c in rbac.ctx.consumers if c.subscription.name == IDENTITY_SUBSCRIPTION)


async def test_profile_changes_reach_featured_users(rbac):
    role = await create_role(rbac)
    await rbac.users("u1", name="Ann")
    await rbac.client.post(f"/api/roles/{role['id']}/users", json={"userIds": ["u1"]})
    await rbac.publish(UserUpdated(user=UserSnapshot(id="u1", name="Annie", avatar="https://a/1.png"),
                                   changed=["name", "avatar"]))
    await rbac.publish(UserSuspended(user_id="u1"))
    await rbac.applied()
    assert await featured(rbac) == [{"id": "u1", "avatar": "https://a/1.png", "name": "Annie"}]
    (user,) = (await rbac.client.get(f"/api/roles/{role['id']}/users")).json()
    assert user["isSuspended"] is True


async def test_a_deleted_user_loses_their_roles_and_becomes_unknown(rbac):
    editor, viewer = await create_role(rbac, "editor"), await create_role(rbac, "viewer")
    await rbac.users("u1", "u2", name="someone")
    await rbac.client.post("/api/users/u1/roles", json={"roleIds": [editor["id"], viewer["id"]]})
    await rbac.client.post("/api/users/u2/roles", json={"roleIds": [editor["id"]]})
    await rbac.publish(UserDeleted(user_id="u1"))
    await rbac.applied()
    rows = await rbac.ctx.pool.fetch("SELECT user_id FROM users_roles ORDER BY 1")
    assert [r["user_id"] for r in rows] == ["u2"]
    assert code(await rbac.client.get("/api/users/u1/roles")) == (404, "entity.not_found")
    assert code(await rbac.client.post("/api/users/u1/roles", json={"roleIds": [editor["id"]]})) == (404, "entity.not_found")
    unassigned = sorted((e["role_id"], e["user_ids"][0], e["reason"])
                        for _, e in await rbac.events("rbac.role.users_unassigned"))
    assert unassigned == sorted([(editor["id"], "u1", "user_deleted"), (viewer["id"], "u1", "user_deleted")])
    tombstone = await rbac.ctx.pool.fetchrow("SELECT name, deleted_at FROM directory_users WHERE id = 'u1'")
    assert tombstone["name"] is None and tombstone["deleted_at"] is not None


async def test_older_events_applied_late_change_nothing(rbac):
    """A retried event may be applied after a newer one: the newer state stays."""
    role = await create_role(rbac)
    await rbac.users("u1", name="Ann")
    await rbac.client.post(f"/api/roles/{role['id']}/users", json={"userIds": ["u1"]})
    stale = build_envelope(UserUpdated(user=UserSnapshot(id="u1", name="Old name"), changed=["name"]))
    await rbac.publish(UserUpdated(user=UserSnapshot(id="u1", name="New name"), changed=["name"]))
    await rbac.applied()
    assert await rbac.apply_directly(msgspec.structs.replace(stale, occurred_at=stale.occurred_at - 60_000))
    assert await featured(rbac) == [{"id": "u1", "avatar": None, "name": "New name"}]
    await rbac.publish(UserDeleted(user_id="u1"))
    await rbac.applied()
    recreated = build_envelope(UserCreated(user=UserSnapshot(id="u1", name="Ghost")))
    assert await rbac.apply_directly(msgspec.structs.replace(recreated, occurred_at=recreated.occurred_at - 60_000))
    assert await rbac.ctx.pool.fetchval("SELECT deleted_at IS NOT NULL FROM directory_users WHERE id = 'u1'")


async def test_a_redelivered_event_is_applied_once(rbac):
    role = await create_role(rbac)
    await rbac.users("u1")
    await rbac.client.post(f"/api/roles/{role['id']}/users", json={"userIds": ["u1"]})
    deleted = build_envelope(UserDeleted(user_id="u1"))
    assert await rbac.apply_directly(deleted) is True
    assert await rbac.apply_directly(deleted) is False
    assert len(await rbac.events("rbac.role.users_unassigned")) == 1


async def test_a_deleted_application_loses_its_roles_even_the_admin_role(rbac):
    robot = (await rbac.client.post("/api/roles", json={"name": "robot", "description": "r",
                                                        "type": "MachineToMachine"})).json()
    await rbac.applications("app1")
    await rbac.client.post("/api/applications/app1/roles", json={"roleIds": [robot["id"]]})
    # identity links the admin role to apps rbac may not have seen yet
    await rbac.ctx.call(SET_APPLICATION_ADMIN, ApplicationAdminRequest(application_id="unseen", is_admin=True, tenant_id="default"))
    await rbac.ctx.call(SET_APPLICATION_ADMIN, ApplicationAdminRequest(application_id="app1", is_admin=True, tenant_id="default"))
    await rbac.publish(ApplicationDeleted(application_id="app1"), ApplicationDeleted(application_id="unseen"))
    await rbac.applied()
    assert await rbac.ctx.pool.fetchval("SELECT count(*) FROM applications_roles") == 0
    reasons = {(e["role_id"], e["application_ids"][0], e["reason"])
               for _, e in await rbac.events("rbac.role.applications_unassigned")}
    assert reasons == {(robot["id"], "app1", "application_deleted"), ("admin-role", "app1", "application_deleted"),
                       ("admin-role", "unseen", "application_deleted")}
    assert code(await rbac.client.get("/api/applications/app1/roles")) == (404, "entity.not_exists_with_id")


async def test_a_request_for_a_user_not_yet_applied_waits_for_the_read_model(rbac):
    """The user is in identity's stream but rbac has not applied it yet: the request waits for
    rbac's consumer to catch up instead of answering 404."""
    role = await create_role(rbac)
    await rbac.users("u0")
    consumer = consumer_of(rbac)
    async with rbac.ctx.pool.acquire() as blocker:
        # Hold the progress row: the consumer's transaction for the next event blocks on it.
        transaction = blocker.transaction()
        await transaction.start()
        await blocker.execute("SELECT 1 FROM read_model_progress FOR UPDATE")
        await rbac.publish(UserCreated(user=UserSnapshot(id="u1")))
        for _ in range(500):
            if await consumer.pending() > 0:
                break
            await asyncio.sleep(0.01)
        assert await consumer.pending() == 1
        request = asyncio.create_task(rbac.client.post(f"/api/roles/{role['id']}/users", json={"userIds": ["u1"]}))
        await asyncio.sleep(0.1)
        assert not request.done()  # waiting for the read model, not answering 404
        await transaction.rollback()
    response = await request
    assert response.status_code == 201, response.text


async def test_read_model_lag_is_reported(rbac):
    await rbac.users("u1", "u2")
    status = (await rbac.client.get("/internal/read-models")).json()["users"]
    assert status["pendingEvents"] == 0 and status["eventsApplied"] == 2
    assert status["lastAppliedAt"] >= status["lastOccurredAt"] and status["lastLagMs"] >= 0

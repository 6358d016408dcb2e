"""Beyond Logto 1.6: later Logto's data hooks, from identity's and rbac's events."""

from __future__ import annotations

import json

from tessera_events.identity import UserCreated, UserDeleted, UserSnapshot, UserSuspended
from tessera_events.rbac import RoleCreated, RoleScopesAssigned, RoleSnapshot


async def test_user_and_role_events_fire_data_hooks(dispatcher, receiver):
    users = await dispatcher.create_hook(receiver.url, events=["User.Created", "User.Deleted",
                                                               "User.SuspensionStatus.Updated"])
    roles = await dispatcher.create_hook(receiver.url, events=["Role.Created", "Role.Scopes.Updated"])
    await dispatcher.identity.publish(
        UserCreated(user=UserSnapshot(id="u1", username="alice", created_at=5)), UserSuspended(user_id="u1"),
        UserDeleted(user_id="u1"))
    await dispatcher.rbac.publish(
        RoleCreated(role=RoleSnapshot(id="r1", name="admin", description="d"), scope_ids=["s1"]),
        RoleScopesAssigned(role_id="r1", scope_ids=["s2"]))
    await receiver.wait_for(5)
    bodies = {(b["hookId"], b["event"]): b for b in (json.loads(r.body) for r in receiver.requests)}
    created = bodies[(users["id"], "User.Created")]
    assert list(created) == ["hookId", "event", "createdAt", "data"]
    assert created["data"]["username"] == "alice" and created["data"]["createdAt"] == 5
    assert bodies[(users["id"], "User.SuspensionStatus.Updated")]["data"] == {"id": "u1", "isSuspended": True}
    assert bodies[(users["id"], "User.Deleted")]["data"] == {"id": "u1"}
    assert bodies[(roles["id"], "Role.Created")]["data"] == {
        "id": "r1", "name": "admin", "description": "d", "type": "User", "scopeIds": ["s1"]}
    assert bodies[(roles["id"], "Role.Scopes.Updated")]["data"] == {
        "id": "r1", "addedScopeIds": ["s2"], "removedScopeIds": []}
    assert len(receiver.requests) == 5

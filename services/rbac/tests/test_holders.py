"""Roles held by users and by machine-to-machine applications, from both sides."""

from __future__ import annotations


def code(response) -> tuple[int, str | None]:
    return response.status_code, response.json().get("code")


async def create_role(rbac, name: str, type: str = "User") -> dict:  # noqa: A002
    response = await rbac.client.post("/api/roles", json={"name": name, "description": name, "type": type})
    assert response.status_code == 200, response.text
    return response.json()


async def links(rbac, table: str) -> list[tuple[str, str]]:
    column = "user_id" if table == "users_roles" else "application_id"
    rows = await rbac.ctx.pool.fetch(f"SELECT {column} AS holder, role_id FROM {table} ORDER BY 1, 2")
    return [(r["holder"], r["role_id"]) for r in rows]


# --- /roles/:id/users ----------------------------------------------------------------------


async def test_role_users(rbac):
    role = await create_role(rbac, "editor")
    await rbac.users("u1", username="ann", name="Ann", primary_email="ann@example.com", created_at=1000,
                     custom_data={"plan": "pro"}, last_sign_in_at=5000, application_id="app1")
    await rbac.users("u2", username="bob", name="Bob", created_at=2000)
    path = f"/api/roles/{role['id']}/users"
    added = await rbac.client.post(path, json={"userIds": ["u1", "u2"]})
    assert (added.status_code, added.text, added.headers["content-type"]) == (201, "Created", "text/plain; charset=utf-8")
    listed = await rbac.client.get(path)
    assert listed.headers["total-number"] == "2"
    assert [u["id"] for u in listed.json()] == ["u2", "u1"]  # newest first
    assert listed.json()[1] == {"id": "u1", "username": "ann", "primaryEmail": "ann@example.com", "primaryPhone": None,
                                "name": "Ann", "avatar": None, "customData": {"plan": "pro"}, "identities": {},
                                "lastSignInAt": 5000, "createdAt": 1000, "applicationId": "app1", "isSuspended": False}
    searched = await rbac.client.get(path, params={"search.primaryEmail": "%@example.com"})
    assert [u["id"] for u in searched.json()] == ["u1"]
    assert code(await rbac.client.get(path, params={"search.password": "x"})) == (400, "request.invalid_input")
    assert code(await rbac.client.get("/api/roles/nope/users")) == (404, "entity.not_exists_with_id")
    (_, event), = await rbac.events("rbac.role.users_assigned")
    assert event == {"role_id": role["id"], "user_ids": ["u1", "u2"]}


async def test_role_users_pages_follow_the_holders(rbac):
    """The page and Total-Number come from the role's holders only: users without the role
    (newer and older), a deleted holder, pages past the end; ties in creation time by id."""
    from tessera_events.identity import UserDeleted

    role = await create_role(rbac, "reader")
    await rbac.users("a0", "a1", "a2", created_at=1000)  # same creation time: newest first by id
    await rbac.users("b0", created_at=3000)
    await rbac.users("x_old", created_at=500)
    await rbac.users("x_new", created_at=9000)  # newest of all, holds no role
    path = f"/api/roles/{role['id']}/users"
    assert (await rbac.client.post(path, json={"userIds": ["a0", "a1", "a2", "b0"]})).status_code == 201
    await rbac.publish(UserDeleted(user_id="a1"))
    await rbac.applied()
    first = await rbac.client.get(path, params={"page": "1", "page_size": "2"})
    assert first.headers["total-number"] == "3"
    assert [u["id"] for u in first.json()] == ["b0", "a2"]
    second = await rbac.client.get(path, params={"page": "2", "page_size": "2"})
    assert (second.headers["total-number"], [u["id"] for u in second.json()]) == ("3", ["a0"])
    assert set(second.json()[0]) == set(first.json()[0])  # no bookkeeping column leaks out
    past = await rbac.client.get(path, params={"page": "5", "page_size": "2"})
    assert (past.status_code, past.headers["total-number"], past.json()) == (200, "3", [])
    searched = await rbac.client.get(path, params={"search.id": "%0", "page": "3", "page_size": "1"})
    assert (searched.headers["total-number"], searched.json()) == ("2", [])
    unheld = await create_role(rbac, "nobody")
    empty = await rbac.client.get(f"/api/roles/{unheld['id']}/users")
    assert (empty.headers["total-number"], empty.json()) == ("0", [])


async def test_role_users_refusals_write_nothing(rbac):
    role = await create_role(rbac, "editor")
    robot = await create_role(rbac, "robot", "MachineToMachine")
    await rbac.users("u1", "u2")
    path = f"/api/roles/{role['id']}/users"
    await rbac.client.post(path, json={"userIds": ["u1"]})
    exists = await rbac.client.post(path, json={"userIds": ["u2", "u1"]})
    assert code(exists) == (422, "role.user_exists") and "u1" in exists.json()["message"]
    unknown = await rbac.client.post(path, json={"userIds": ["u2", "ghost"]})
    assert code(unknown) == (404, "entity.not_found")
    assert code(await rbac.client.post("/api/roles/nope/users", json={"userIds": ["u2"]})) == (404, "entity.not_exists_with_id")
    assert code(await rbac.client.post(f"/api/roles/{robot['id']}/users", json={"userIds": ["u2"]})) == \
        (422, "user.invalid_role_type")
    assert code(await rbac.client.post(path, json={"userIds": []})) == (400, "guard.invalid_input")
    assert await links(rbac, "users_roles") == [("u1", role["id"])]
    assert (await rbac.client.delete(f"{path}/u1")).status_code == 204
    assert code(await rbac.client.delete(f"{path}/u1")) == (404, "entity.not_found")
    (_, event), = await rbac.events("rbac.role.users_unassigned")
    assert event == {"role_id": role["id"], "user_ids": ["u1"], "reason": "request"}


# --- /users/:userId/roles ------------------------------------------------------------------


async def test_user_roles(rbac):
    a, b, c = [await create_role(rbac, n) for n in ("a", "b", "c")]
    await rbac.users("u1")
    added = await rbac.client.post("/api/users/u1/roles", json={"roleIds": [a["id"], b["id"]]})
    assert (added.status_code, added.text) == (201, "Created")
    listed = await rbac.client.get("/api/users/u1/roles")
    assert listed.headers["total-number"] == "2" and [r["name"] for r in listed.json()] == ["b", "a"]
    assert [r["name"] for r in (await rbac.client.get("/api/users/u1/roles", params={"search.name": "a"})).json()] == ["a"]
    replaced = await rbac.client.put("/api/users/u1/roles", json={"roleIds": [b["id"], c["id"]]})
    assert (replaced.status_code, replaced.text) == (200, "OK")
    assert await links(rbac, "users_roles") == sorted([("u1", b["id"]), ("u1", c["id"])])
    link_events = [(t.rsplit(".", 1)[1], e["role_id"]) for t, e in await rbac.events() if ".users_" in t]
    assert link_events == [("users_assigned", a["id"]), ("users_assigned", b["id"]),
                           ("users_unassigned", a["id"]), ("users_assigned", c["id"])]
    assert (await rbac.client.delete(f"/api/users/u1/roles/{c['id']}")).status_code == 204
    assert code(await rbac.client.delete(f"/api/users/u1/roles/{c['id']}")) == (404, "entity.not_found")
    assert (await rbac.client.put("/api/users/u1/roles", json={"roleIds": []})).status_code == 200
    assert await links(rbac, "users_roles") == []
    assert (await rbac.client.post("/api/users/u1/roles", json={"roleIds": []})).status_code == 201


async def test_user_roles_refusals(rbac):
    role = await create_role(rbac, "a")
    robot = await create_role(rbac, "robot", "MachineToMachine")
    await rbac.users("u1")
    await rbac.client.post("/api/users/u1/roles", json={"roleIds": [role["id"]]})
    assert code(await rbac.client.get("/api/users/ghost/roles")) == (404, "entity.not_found")
    assert code(await rbac.client.post("/api/users/ghost/roles", json={"roleIds": [role["id"]]})) == (404, "entity.not_found")
    assert code(await rbac.client.put("/api/users/ghost/roles", json={"roleIds": []})) == (404, "entity.not_found")
    exists = await rbac.client.post("/api/users/u1/roles", json={"roleIds": [role["id"]]})
    assert code(exists) == (422, "user.role_exists") and role["id"] in exists.json()["message"]
    assert code(await rbac.client.post("/api/users/u1/roles", json={"roleIds": ["nope"]})) == (404, "entity.not_exists_with_id")
    assert code(await rbac.client.put("/api/users/u1/roles", json={"roleIds": ["nope"]})) == (404, "entity.not_exists_with_id")
    for response in (await rbac.client.post("/api/users/u1/roles", json={"roleIds": [robot["id"]]}),
                     await rbac.client.put("/api/users/u1/roles", json={"roleIds": [robot["id"]]})):
        assert code(response) == (422, "user.invalid_role_type")
    assert code(await rbac.client.post("/api/users/u1/roles", json={})) == (400, "guard.invalid_input")
    assert await links(rbac, "users_roles") == [("u1", role["id"])]
    # Logto 1.6 clients give the seeded admin role to users (its own suite does, by both routes).
    assert (await rbac.client.post("/api/users/u1/roles", json={"roleIds": ["admin-role"]})).status_code == 201
    await rbac.users("u2")
    assert (await rbac.client.post("/api/roles/admin-role/users", json={"userIds": ["u2"]})).status_code == 201
    assert await links(rbac, "users_roles") == sorted([("u1", role["id"]), ("u1", "admin-role"), ("u2", "admin-role")])


# --- machine-to-machine applications -------------------------------------------------------


async def test_application_roles(rbac):
    a, b, c = [await create_role(rbac, n, "MachineToMachine") for n in ("a", "b", "c")]
    await rbac.applications("app1")
    added = await rbac.client.post("/api/applications/app1/roles", json={"roleIds": [a["id"], b["id"]]})
    assert (added.status_code, added.text) == (201, "Created")
    listed = await rbac.client.get("/api/applications/app1/roles")
    assert [r["name"] for r in listed.json()] == ["b", "a"] and listed.headers["total-number"] == "2"
    assert code(await rbac.client.post("/api/applications/app1/roles", json={"roleIds": [a["id"]]})) == \
        (422, "application.role_exists")
    assert (await rbac.client.put("/api/applications/app1/roles", json={"roleIds": [c["id"]]})).text == "OK"
    assert await links(rbac, "applications_roles") == [("app1", c["id"])]
    assert (await rbac.client.delete(f"/api/applications/app1/roles/{c['id']}")).status_code == 204
    assert code(await rbac.client.delete(f"/api/applications/app1/roles/{c['id']}")) == (404, "entity.not_found")


async def test_application_roles_refusals(rbac):
    user_role = await create_role(rbac, "people")
    robot = await create_role(rbac, "robot", "MachineToMachine")
    await rbac.applications("spa", type="SPA")
    await rbac.applications("app1")
    for response in (await rbac.client.get("/api/applications/ghost/roles"),
                     await rbac.client.post("/api/applications/ghost/roles", json={"roleIds": [robot["id"]]}),
                     await rbac.client.put("/api/applications/ghost/roles", json={"roleIds": []}),
                     await rbac.client.delete(f"/api/applications/ghost/roles/{robot['id']}")):
        assert code(response) == (404, "entity.not_exists_with_id")
    for response in (await rbac.client.get("/api/applications/spa/roles"),
                     await rbac.client.post("/api/applications/spa/roles", json={"roleIds": [robot["id"]]}),
                     await rbac.client.put("/api/applications/spa/roles", json={"roleIds": []}),
                     await rbac.client.delete(f"/api/applications/spa/roles/{robot['id']}")):
        assert code(response) == (422, "application.invalid_type")
    assert code(await rbac.client.post("/api/applications/app1/roles", json={"roleIds": [user_role["id"]]})) == \
        (422, "application.invalid_role_type")
    assert code(await rbac.client.post("/api/applications/app1/roles", json={"roleIds": ["nope"]})) == \
        (404, "entity.not_exists_with_id")
    assert code(await rbac.client.post("/api/applications/app1/roles", json={"roleIds": ["admin-role"]})) == \
        (403, "role.internal_role_violation")
    assert await links(rbac, "applications_roles") == []


async def test_role_applications(rbac):
    robot = await create_role(rbac, "robot", "MachineToMachine")
    people = await create_role(rbac, "people")
    await rbac.applications("app1", "app2")
    await rbac.applications("web", type="Traditional")
    path = f"/api/roles/{robot['id']}/applications"
    added = await rbac.client.post(path, json={"applicationIds": ["app1", "app2"]})
    assert (added.status_code, added.text) == (201, "Created")
    listed = await rbac.client.get(path)
    assert listed.headers["total-number"] == "2"
    assert {a["id"] for a in listed.json()} == {"app1", "app2"}
    assert set(listed.json()[0]) == {"tenantId", "id", "name", "description", "type", "createdAt"}
    exists = await rbac.client.post(path, json={"applicationIds": ["app2"]})
    assert code(exists) == (422, "role.application_exists") and "app2" in exists.json()["message"]
    assert code(await rbac.client.post(path, json={"applicationIds": ["ghost"]})) == (404, "entity.not_exists_with_id")
    assert code(await rbac.client.post(path, json={"applicationIds": ["web"]})) == (422, "application.invalid_type")
    assert code(await rbac.client.post(f"/api/roles/{people['id']}/applications", json={"applicationIds": ["app1"]})) == \
        (422, "application.invalid_role_type")
    assert code(await rbac.client.post("/api/roles/admin-role/applications", json={"applicationIds": ["app1"]})) == \
        (403, "role.internal_role_violation")
    assert code(await rbac.client.get("/api/roles/nope/applications")) == (404, "entity.not_exists_with_id")
    (role_row,) = [r for r in (await rbac.client.get("/api/roles")).json() if r["id"] == robot["id"]]
    assert role_row["applicationsCount"] == 2
    assert {a["id"] for a in role_row["featuredApplications"]} == {"app1", "app2"}
    assert (await rbac.client.delete(f"{path}/app1")).status_code == 204
    assert code(await rbac.client.delete(f"{path}/app1")) == (404, "entity.not_found")
    assert code(await rbac.client.delete("/api/roles/admin-role/applications/app1")) == (403, "role.internal_role_violation")
    assert await links(rbac, "applications_roles") == [("app2", robot["id"])]


async def test_replacing_an_applications_roles_keeps_its_admin_link(rbac):
    from tessera_events.contracts.rbac import SET_APPLICATION_ADMIN, ApplicationAdminRequest

    robot = await create_role(rbac, "robot", "MachineToMachine")
    await rbac.applications("app1")
    await rbac.ctx.call(SET_APPLICATION_ADMIN, ApplicationAdminRequest(application_id="app1", is_admin=True, tenant_id="default"))
    assert (await rbac.client.put("/api/applications/app1/roles", json={"roleIds": [robot["id"]]})).status_code == 200
    assert await links(rbac, "applications_roles") == sorted([("app1", "admin-role"), ("app1", robot["id"])])
    assert [r["id"] for r in (await rbac.client.get("/api/applications/app1/roles")).json()] == [robot["id"]]

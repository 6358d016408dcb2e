"""Roles and their scopes on real PostgreSQL and NATS: bodies, codes, rows and events."""

from __future__ import annotations


def code(response) -> tuple[int, str | None]:
    return response.status_code, response.json().get("code")


async def create_role(rbac, name: str, **extra) -> dict:
    response = await rbac.client.post("/api/roles", json={"name": name, "description": f"{name} role", **extra})
    assert response.status_code == 200, response.text
    return response.json()


async def scopes(rbac, *names: str, indicator="https://api.example.com") -> list[dict]:
    resource = (await rbac.client.post("/api/resources", json={"name": indicator, "indicator": indicator})).json()
    return [(await rbac.client.post(f"/api/resources/{resource['id']}/scopes",
                                    json={"name": n, "description": n})).json() for n in names]


async def test_create_answers_the_role_with_200(rbac):
    role = await create_role(rbac, "editor", tenantId="ignored")
    assert role == {"tenantId": "default", "id": role["id"], "name": "editor", "description": "editor role", "type": "User"}
    m2m = await create_role(rbac, "robot", type="MachineToMachine")
    assert m2m["type"] == "MachineToMachine"
    _, event = (await rbac.events("rbac.role.created"))[-2]
    assert event == {"role": {"id": role["id"], "name": "editor", "description": "editor role", "type": "User"},
                     "scope_ids": []}


async def test_create_refusals(rbac):
    await create_role(rbac, "editor")
    taken = await rbac.client.post("/api/roles", json={"name": "editor", "description": "d"})
    assert code(taken) == (422, "role.name_in_use") and "editor" in taken.json()["message"]
    internal = await rbac.client.post("/api/roles", json={"name": "#internal:mine", "description": "d"})
    assert code(internal) == (403, "role.internal_role_violation")
    for body in ({"name": "x"}, {"name": "x" * 129, "description": "d"}, {"name": "x", "description": ""},
                 {"name": "x", "description": "d", "type": "Robot"}, {"name": "x", "description": "d", "scopeIds": [""]}):
        assert code(await rbac.client.post("/api/roles", json=body)) == (400, "guard.invalid_input"), body


async def test_create_with_scopes_is_all_or_nothing(rbac):
    read, write = await scopes(rbac, "read", "write")
    bad = await rbac.client.post("/api/roles", json={"name": "editor", "description": "d",
                                                     "scopeIds": [read["id"], "missing", write["id"]]})
    assert code(bad) == (404, "entity.not_exists_with_id")
    assert bad.json()["message"] == "The scopes with ID `missing` does not exist."
    assert await rbac.ctx.pool.fetchval("SELECT count(*) FROM roles WHERE name = 'editor'") == 0
    assert all(e["role"]["name"] != "editor" for _, e in await rbac.events("rbac.role.created"))
    role = await create_role(rbac, "editor", scopeIds=[read["id"], write["id"], read["id"]])
    linked = await rbac.client.get(f"/api/roles/{role['id']}/scopes")
    assert [s["name"] for s in linked.json()] == ["read", "write"]
    _, created = (await rbac.events("rbac.role.created"))[-1]
    assert created["scope_ids"] == [read["id"], write["id"]]


async def test_list_hides_internal_roles_and_paginates_newest_first(rbac):
    for name in ("a", "b", "c"):
        await create_role(rbac, name)
    page = await rbac.client.get("/api/roles", params={"page_size": "2"})
    assert page.headers["total-number"] == "3"
    assert [r["name"] for r in page.json()] == ["c", "b"]
    assert set(page.json()[0]) == {"tenantId", "id", "name", "description", "type", "usersCount", "featuredUsers",
                                   "applicationsCount", "featuredApplications"}
    second = await rbac.client.get("/api/roles", params={"page": "2", "page_size": "2"})
    assert [r["name"] for r in second.json()] == ["a"]
    assert code(await rbac.client.get("/api/roles", params={"page": "0"})) == (400, "guard.invalid_pagination")


async def test_list_search_type_and_exclusions(rbac):
    editor = await create_role(rbac, "Editor")
    await create_role(rbac, "viewer", description="reads")
    robot = await create_role(rbac, "robot", type="MachineToMachine")
    names = lambda response: sorted(r["name"] for r in response.json())  # noqa: E731
    assert names(await rbac.client.get("/api/roles", params={"search": "%edit%"})) == ["Editor"]
    assert names(await rbac.client.get("/api/roles", params={"search.description": "reads", "mode": "exact"})) == ["viewer"]
    assert names(await rbac.client.get("/api/roles", params={"search": "editor", "mode": "exact",
                                                              "isCaseSensitive": "true"})) == []
    assert names(await rbac.client.get("/api/roles", params={"type": "MachineToMachine"})) == ["robot"]
    assert code(await rbac.client.get("/api/roles", params={"type": "Robot"})) == (400, "guard.invalid_input")
    assert code(await rbac.client.get("/api/roles", params={"search.type": "x"})) == (400, "request.invalid_input")
    await rbac.users("u1")
    await rbac.applications("app1")
    await rbac.client.post(f"/api/users/u1/roles", json={"roleIds": [editor["id"]]})
    await rbac.client.post(f"/api/applications/app1/roles", json={"roleIds": [robot["id"]]})
    assert names(await rbac.client.get("/api/roles", params={"excludeUserId": "u1"})) == ["robot", "viewer"]
    assert names(await rbac.client.get("/api/roles", params={"excludeApplicationId": "app1"})) == ["Editor", "viewer"]


async def test_list_counts_users_and_features_the_first_three(rbac):
    role = await create_role(rbac, "editor")
    await rbac.users("u1", name="Ann", avatar="https://a/1.png")
    await rbac.users("u2", "u3", "u4")
    for user_id in ("u1", "u2", "u3", "u4"):
        assert (await rbac.client.post(f"/api/roles/{role['id']}/users", json={"userIds": [user_id]})).status_code == 201
    (listed,) = (await rbac.client.get("/api/roles")).json()
    assert listed["usersCount"] == 4
    assert listed["featuredUsers"] == [{"id": "u1", "avatar": "https://a/1.png", "name": "Ann"},
                                       {"id": "u2", "avatar": None, "name": None},
                                       {"id": "u3", "avatar": None, "name": None}]
    assert (listed["applicationsCount"], listed["featuredApplications"]) == (0, [])


async def test_get_patch_delete(rbac):
    role = await create_role(rbac, "editor")
    await create_role(rbac, "viewer")
    path = f"/api/roles/{role['id']}"
    assert (await rbac.client.get(path)).json() == role
    assert code(await rbac.client.get("/api/roles/nope")) == (404, "entity.not_exists_with_id")
    patched = await rbac.client.patch(path, json={"name": "writer", "type": "MachineToMachine"})
    assert patched.status_code == 200 and (patched.json()["name"], patched.json()["type"]) == ("writer", "User")
    (_, updated), = await rbac.events("rbac.role.updated")
    assert updated["changed"] == ["name"]
    assert code(await rbac.client.patch(path, json={"name": "viewer"})) == (422, "role.name_in_use")
    assert code(await rbac.client.patch(path, json={"name": "#internal:x"})) == (403, "role.internal_role_violation")
    assert code(await rbac.client.patch("/api/roles/nope", json={"name": "x"})) == (404, "entity.not_exists_with_id")
    assert code(await rbac.client.patch(path, json={"description": ""})) == (400, "guard.invalid_input")
    assert (await rbac.client.delete(path)).status_code == 204
    assert code(await rbac.client.delete(path)) == (404, "entity.not_found")
    (_, deleted), = await rbac.events("rbac.role.deleted")
    assert deleted == {"role_id": role["id"], "name": "writer"}


async def test_deleting_a_role_removes_its_links(rbac):
    (read,) = await scopes(rbac, "read")
    role = await create_role(rbac, "editor", scopeIds=[read["id"]])
    await rbac.users("u1")
    await rbac.client.post(f"/api/users/u1/roles", json={"roleIds": [role["id"]]})
    assert (await rbac.client.delete(f"/api/roles/{role['id']}")).status_code == 204
    for table in ("roles_scopes", "users_roles"):
        assert await rbac.ctx.pool.fetchval(f"SELECT count(*) FROM {table} WHERE role_id = $1", role["id"]) == 0


async def test_the_admin_role_is_readable_but_read_only(rbac):
    admin = (await rbac.client.get("/api/roles/admin-role")).json()
    assert (admin["name"], admin["type"]) == ("#internal:admin", "User")  # 1.6 clients give it to users
    (read,) = await scopes(rbac, "read")
    for response in (
        await rbac.client.patch("/api/roles/admin-role", json={"name": "boss"}),
        await rbac.client.patch("/api/roles/admin-role", json={"description": "mine"}),
        await rbac.client.delete("/api/roles/admin-role"),
        await rbac.client.post("/api/roles/admin-role/scopes", json={"scopeIds": [read["id"]]}),
        await rbac.client.delete("/api/roles/admin-role/scopes/management-api-all"),
    ):
        assert code(response) == (403, "role.internal_role_violation")
    linked = (await rbac.client.get("/api/roles/admin-role/scopes")).json()
    assert [(s["id"], s["resource"]["indicator"]) for s in linked] == [("management-api-all", "https://default.logto.app/api")]


async def test_role_scopes(rbac):
    read, write, delete = await scopes(rbac, "read", "write", "delete")
    role = await create_role(rbac, "editor", scopeIds=[read["id"]])
    path = f"/api/roles/{role['id']}/scopes"
    added = await rbac.client.post(path, json={"scopeIds": [write["id"], delete["id"]]})
    assert added.status_code == 200
    assert [s["name"] for s in added.json()] == ["read", "write", "delete"] and "resource" not in added.json()[0]
    assert code(await rbac.client.post(path, json={"scopeIds": [delete["id"], write["id"]]})) == (422, "role.scope_exists")
    assert code(await rbac.client.post(path, json={"scopeIds": ["nope"]})) == (404, "entity.not_exists_with_id")
    assert code(await rbac.client.post(path, json={"scopeIds": []})) == (400, "guard.invalid_input")
    assert code(await rbac.client.post("/api/roles/nope/scopes", json={"scopeIds": [read["id"]]})) == \
        (404, "entity.not_exists_with_id")
    everything = await rbac.client.get(path)
    assert "total-number" not in everything.headers
    assert everything.json()[0]["resource"] == {"tenantId": "default", "id": read["resourceId"],
                                                "name": "https://api.example.com", "indicator": "https://api.example.com",
                                                "isDefault": False, "accessTokenTtl": 3600}
    page = await rbac.client.get(path, params={"page_size": "1", "search.name": "%e%"})
    assert page.headers["total-number"] == "3" and [s["name"] for s in page.json()] == ["read"]
    assert code(await rbac.client.get("/api/roles/nope/scopes")) == (404, "entity.not_exists_with_id")
    assert (await rbac.client.delete(f"{path}/{write['id']}")).status_code == 204
    assert code(await rbac.client.delete(f"{path}/{write['id']}")) == (404, "entity.not_found")
    assert code(await rbac.client.delete(f"/api/roles/nope/scopes/{read['id']}")) == (404, "entity.not_found")
    events = [(t, e["scope_ids"]) for t, e in await rbac.events() if t.startswith("rbac.role.scopes")]
    assert events == [("rbac.role.scopes_assigned", [write["id"], delete["id"]]),
                      ("rbac.role.scopes_unassigned", [write["id"]])]


async def test_the_migration_retypes_an_admin_role_seeded_as_machine_to_machine(rbac):
    """Stacks seeded before: their admin role was `MachineToMachine`, which 1.6 clients could
    not give to users."""
    from pathlib import Path

    import tessera_rbac

    await rbac.ctx.pool.execute("UPDATE roles SET type = 'MachineToMachine' WHERE id = 'admin-role'")
    migration = Path(tessera_rbac.__file__).parent / "migrations" / "0002_admin_role_is_a_user_role.sql"
    await rbac.ctx.pool.execute(migration.read_text())
    assert (await rbac.client.get("/api/roles/admin-role")).json()["type"] == "User"

"""Resources and scopes on real PostgreSQL and NATS: bodies, codes, rows and events."""

from __future__ import annotations


def code(response) -> tuple[int, str | None]:
    return response.status_code, response.json().get("code")


async def create_resource(rbac, name="API", indicator="https://api.example.com", **extra) -> dict:
    response = await rbac.client.post("/api/resources", json={"name": name, "indicator": indicator, **extra})
    assert response.status_code == 201, response.text
    return response.json()


async def create_scope(rbac, resource_id: str, name: str, description: str = "a scope") -> dict:
    response = await rbac.client.post(f"/api/resources/{resource_id}/scopes", json={"name": name, "description": description})
    assert response.status_code == 201, response.text
    return response.json()


async def test_create_answers_201_with_empty_scopes_and_ignores_is_default(rbac):
    resource = await create_resource(rbac, accessTokenTtl=600, isDefault=True, tenantId="other")
    assert resource == {"tenantId": "default", "id": resource["id"], "name": "API",
                        "indicator": "https://api.example.com", "isDefault": False,
                        "accessTokenTtl": 600, "scopes": []}
    assert len(resource["id"]) == 21
    assert (await rbac.client.get(f"/api/resources/{resource['id']}")).json() == {
        k: v for k, v in resource.items() if k != "scopes"}
    _, created = (await rbac.events("rbac.resource.created"))[-1]
    assert created["resource"]["id"] == resource["id"]


async def test_create_refuses_a_used_indicator_and_invalid_bodies(rbac):
    await create_resource(rbac)
    again = await rbac.client.post("/api/resources", json={"name": "Other", "indicator": "https://api.example.com"})
    assert code(again) == (422, "resource.resource_identifier_in_use")
    assert "https://api.example.com" in again.json()["message"]
    for body in ({"indicator": "x"}, {"name": "", "indicator": "x"}, {"name": "a", "indicator": "x", "accessTokenTtl": "1h"}):
        bad = await rbac.client.post("/api/resources", json=body)
        assert code(bad) == (400, "guard.invalid_input"), body
    assert await rbac.ctx.pool.fetchval("SELECT count(*) FROM resources") == 2  # the seeded one and ours


async def test_list_paginates_only_when_asked_and_includes_scopes_on_request(rbac):
    first = await create_resource(rbac, "A", "https://a")
    await create_resource(rbac, "B", "https://b")
    await create_scope(rbac, first["id"], "read")
    everything = await rbac.client.get("/api/resources")
    assert "total-number" not in everything.headers
    assert [r["name"] for r in everything.json()] == ["Logto Management API", "A", "B"]
    assert all("scopes" not in r for r in everything.json())
    page = await rbac.client.get("/api/resources", params={"page": "2", "page_size": "2", "includeScopes": "true"})
    assert page.headers["total-number"] == "3"
    assert [(r["name"], r["scopes"]) for r in page.json()] == [("B", [])]
    with_scopes = (await rbac.client.get("/api/resources", params={"includeScopes": "yes"})).json()
    assert [s["name"] for s in with_scopes[1]["scopes"]] == ["read"]
    assert [s["name"] for s in with_scopes[0]["scopes"]] == ["all"]
    assert code(await rbac.client.get("/api/resources", params={"page_size": "101"})) == (400, "guard.invalid_pagination")


async def test_get_patch_and_delete_missing_resources_use_logtos_three_codes(rbac):
    assert code(await rbac.client.get("/api/resources/nope")) == (404, "entity.not_exists_with_id")
    patched = await rbac.client.patch("/api/resources/nope", json={"name": "x"})
    assert code(patched) == (404, "entity.not_exists") and patched.json()["message"] == "The resource does not exist."
    assert code(await rbac.client.patch("/api/resources/nope/is-default", json={"isDefault": True})) == (404, "entity.not_exists")
    assert code(await rbac.client.delete("/api/resources/nope")) == (404, "entity.not_found")


async def test_patch_changes_name_and_ttl_only(rbac):
    resource = await create_resource(rbac)
    response = await rbac.client.patch(f"/api/resources/{resource['id']}",
                                       json={"name": "Renamed", "accessTokenTtl": 60, "indicator": "https://x", "isDefault": True})
    assert response.status_code == 200
    assert (response.json()["name"], response.json()["accessTokenTtl"]) == ("Renamed", 60)
    assert (response.json()["indicator"], response.json()["isDefault"]) == ("https://api.example.com", False)
    (_, updated), = await rbac.events("rbac.resource.updated")
    assert updated["changed"] == ["name", "access_token_ttl"]
    unchanged = await rbac.client.patch(f"/api/resources/{resource['id']}", json={"name": "Renamed"})
    assert unchanged.status_code == 200 and len(await rbac.events("rbac.resource.updated")) == 1
    assert code(await rbac.client.patch(f"/api/resources/{resource['id']}", json={"name": ""})) == (400, "guard.invalid_input")


async def test_is_default_leaves_exactly_one_default(rbac):
    a = await create_resource(rbac, "A", "https://a")
    b = await create_resource(rbac, "B", "https://b")
    assert (await rbac.client.patch(f"/api/resources/{a['id']}/is-default", json={"isDefault": True})).json()["isDefault"]
    response = await rbac.client.patch(f"/api/resources/{b['id']}/is-default", json={"isDefault": True})
    assert response.status_code == 200 and response.json()["isDefault"] is True
    defaults = await rbac.ctx.pool.fetch("SELECT id FROM resources WHERE is_default")
    assert [r["id"] for r in defaults] == [b["id"]]
    changes = [(e["resource"]["id"], e["resource"]["is_default"]) for _, e in await rbac.events("rbac.resource.updated")]
    assert changes == [(a["id"], True), (a["id"], False), (b["id"], True)]
    off = await rbac.client.patch(f"/api/resources/{b['id']}/is-default", json={"isDefault": False})
    assert off.json()["isDefault"] is False
    assert await rbac.ctx.pool.fetchval("SELECT count(*) FROM resources WHERE is_default") == 0
    assert code(await rbac.client.patch(f"/api/resources/{b['id']}/is-default", json={})) == (400, "guard.invalid_input")


async def test_deleting_a_resource_deletes_its_scopes_and_their_role_links_in_one_go(rbac):
    resource = await create_resource(rbac)
    other = await create_resource(rbac, "Other", "https://other")
    read, write = [await create_scope(rbac, resource["id"], n) for n in ("read", "write")]
    kept = await create_scope(rbac, other["id"], "keep")
    role = (await rbac.client.post("/api/roles", json={
        "name": "editor", "description": "d", "scopeIds": [read["id"], write["id"], kept["id"]]})).json()
    response = await rbac.client.delete(f"/api/resources/{resource['id']}")
    assert response.status_code == 204 and response.content == b""
    assert await rbac.ctx.pool.fetchval("SELECT count(*) FROM scopes WHERE resource_id = $1", resource["id"]) == 0
    links = await rbac.ctx.pool.fetch("SELECT scope_id FROM roles_scopes WHERE role_id = $1", role["id"])
    assert [r["scope_id"] for r in links] == [kept["id"]]
    assert (await rbac.client.get(f"/api/roles/{role['id']}")).status_code == 200
    (_, deleted), = await rbac.events("rbac.resource.deleted")
    assert deleted == {"resource_id": resource["id"], "indicator": "https://api.example.com",
                       "scope_ids": [read["id"], write["id"]], "role_ids": [role["id"]]}


async def test_the_management_api_resource_and_its_scope_are_protected(rbac):
    for response in (
        await rbac.client.patch("/api/resources/management-api", json={"name": "Mine"}),
        await rbac.client.post("/api/resources/management-api/scopes", json={"name": "more", "description": "d"}),
        await rbac.client.patch("/api/resources/management-api/scopes/management-api-all", json={"name": "every"}),
        await rbac.client.delete("/api/resources/management-api/scopes/management-api-all"),
    ):
        assert code(response) == (400, "resource.cannot_modify_management_api")
    deleted = await rbac.client.delete("/api/resources/management-api")
    assert code(deleted) == (400, "resource.cannot_delete_management_api")
    assert deleted.json()["message"] == "Cannot delete Logto management API."
    assert await rbac.ctx.pool.fetchval("SELECT name FROM scopes WHERE id = 'management-api-all'") == "all"
    assert await rbac.ctx.pool.fetchval("SELECT name FROM resources WHERE id = 'management-api'") == "Logto Management API"


async def test_seeding_twice_changes_nothing(rbac):
    from tessera_rbac.seed import seed

    before = len(await rbac.events())
    await seed(rbac.ctx)
    assert len(await rbac.events()) == before
    assert await rbac.ctx.pool.fetchval("SELECT count(*) FROM roles_scopes WHERE role_id = 'admin-role'") == 1


# --- scopes --------------------------------------------------------------------------------


async def test_scope_create_checks_in_logtos_order(rbac):
    resource = await create_resource(rbac)
    path = f"/api/resources/{resource['id']}/scopes"
    assert code(await rbac.client.post("/api/resources/nope/scopes", json={"name": "a b", "description": "d"})) == \
        (400, "scope.name_with_space")
    assert code(await rbac.client.post("/api/resources/nope/scopes", json={"name": "a", "description": "d"})) == \
        (404, "entity.not_exists_with_id")
    scope = await create_scope(rbac, resource["id"], "read:users", "Read users")
    assert set(scope) == {"tenantId", "id", "resourceId", "name", "description", "createdAt"}
    assert (scope["resourceId"], scope["description"]) == (resource["id"], "Read users")
    assert code(await rbac.client.post(path, json={"name": "read:users", "description": "again"})) == (422, "scope.name_exists")
    assert code(await rbac.client.post(path, json={"name": "x" * 257, "description": "d"})) == (400, "guard.invalid_input")
    assert code(await rbac.client.post(path, json={"name": "x"})) == (400, "guard.invalid_input")
    other = await create_resource(rbac, "Other", "https://other")
    await create_scope(rbac, other["id"], "read:users")  # unique per resource only
    (_, created), = [e for e in await rbac.events("rbac.scope.created") if e[1]["scope"]["id"] == scope["id"]]
    assert created["scope"]["name"] == "read:users"


async def test_scope_list_always_paginates_and_searches(rbac):
    resource = await create_resource(rbac)
    for name in ("read:users", "write:users", "read:logs"):
        await create_scope(rbac, resource["id"], name, f"{name} scope")
    path = f"/api/resources/{resource['id']}/scopes"
    listed = await rbac.client.get(path)
    assert listed.headers["total-number"] == "3"
    assert [s["name"] for s in listed.json()] == ["read:users", "write:users", "read:logs"]
    found = await rbac.client.get(path, params={"search.name": "read:%", "page_size": "1"})
    assert found.headers["total-number"] == "2" and len(found.json()) == 1
    exact = await rbac.client.get(path, params=[("search.name", "READ:LOGS"), ("search.name", "write:users"),
                                                 ("mode", "exact")])
    assert sorted(s["name"] for s in exact.json()) == ["read:logs", "write:users"]
    unknown = await rbac.client.get("/api/resources/nope/scopes")
    assert unknown.status_code == 200 and unknown.json() == [] and unknown.headers["total-number"] == "0"
    assert code(await rbac.client.get(path, params={"search.resourceId": "x"})) == (400, "request.invalid_input")
    bad_regex = await rbac.client.get(path, params={"search": "(", "mode": "posix"})
    assert code(bad_regex) == (400, "request.invalid_input")


async def test_scope_patch_and_delete(rbac):
    resource = await create_resource(rbac)
    read = await create_scope(rbac, resource["id"], "read")
    write = await create_scope(rbac, resource["id"], "write")
    path = f"/api/resources/{resource['id']}/scopes/{read['id']}"
    patched = await rbac.client.patch(path, json={"description": "Read it all"})
    assert patched.status_code == 200 and patched.json()["description"] == "Read it all"
    assert code(await rbac.client.patch(path, json={"name": "write"})) == (422, "scope.name_exists")
    assert code(await rbac.client.patch(path, json={"name": "re ad"})) == (400, "scope.name_with_space")
    assert code(await rbac.client.patch(f"/api/resources/nope/scopes/{read['id']}", json={"name": "x"})) == \
        (404, "entity.not_exists_with_id")
    assert code(await rbac.client.patch(f"/api/resources/{resource['id']}/scopes/nope", json={"name": "x"})) == \
        (404, "entity.not_exists")
    other = await create_resource(rbac, "Other", "https://other")
    assert code(await rbac.client.patch(f"/api/resources/{other['id']}/scopes/{read['id']}", json={"name": "x"})) == \
        (404, "entity.not_exists")
    assert (await rbac.client.patch(path, json={"name": "read"})).status_code == 200  # its own name is no clash
    role = (await rbac.client.post("/api/roles", json={"name": "r", "description": "d", "scopeIds": [write["id"]]})).json()
    assert code(await rbac.client.delete(f"/api/resources/{other['id']}/scopes/{write['id']}")) == (404, "entity.not_found")
    deleted = await rbac.client.delete(f"/api/resources/{resource['id']}/scopes/{write['id']}")
    assert deleted.status_code == 204
    assert await rbac.ctx.pool.fetchval("SELECT count(*) FROM roles_scopes WHERE role_id = $1", role["id"]) == 0
    assert code(await rbac.client.delete(f"/api/resources/{resource['id']}/scopes/{write['id']}")) == (404, "entity.not_found")
    (_, event), = await rbac.events("rbac.scope.deleted")
    assert event == {"scope_id": write["id"], "resource_id": resource["id"], "role_ids": [role["id"]]}

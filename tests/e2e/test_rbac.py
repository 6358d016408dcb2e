"""rbac through the gateway, every service a process: every route and error code of
`/api/resources*`, `/api/roles*`, `/api/users/:id/roles*` and `/api/applications/:id/roles*`,
the cascade of a resource deletion, the events audit-log records, and the read model of
identity's users catching up after rbac was down.

Users and applications come from an identity stand-in that publishes identity's events onto
the stack's JetStream (what identity's relay does), so these tests do not depend on identity's
HTTP API; one test also goes through identity's real `POST /api/users` when identity answers it.
"""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import httpx
import msgspec
import nats
import pytest

from tessera_events import EventData
from tessera_events.identity import (
    ApplicationCreated,
    ApplicationSnapshot,
    UserCreated,
    UserDeleted,
    UserSnapshot,
    UserUpdated,
)
from tessera_kit.outbox import build_envelope
from tessera_kit.testing import signed_client

pytestmark = pytest.mark.e2e

ADMIN = {"development-user-id": "e2e-admin"}


def code(response: httpx.Response) -> tuple[int, str | None]:
    try:
        body = response.json()
    except ValueError:
        body = {}
    return response.status_code, body.get("code") if isinstance(body, dict) else None


def unique(prefix: str) -> str:
    """Ids no other test (or identity) uses; users are 12 characters in Logto."""
    return (prefix + secrets.token_hex(6))[:12]


class IdentityStandIn:
    def __init__(self, stack: Any):
        self.stack = stack
        self.namespace = stack.env["TESSERA_NAMESPACE"]
        self._nc = None

    async def __aenter__(self) -> "IdentityStandIn":
        self._nc = await nats.connect(self.stack.env["NATS_URL"])
        return self

    async def __aexit__(self, *_: Any) -> None:
        await self._nc.drain()

    async def publish(self, *events: EventData) -> None:
        js = self._nc.jetstream()
        for event in events:
            envelope = build_envelope(event)
            await js.publish(f"{self.namespace}.{envelope.type}", msgspec.json.encode(envelope),
                             headers={"Nats-Msg-Id": envelope.id})

    async def users(self, *ids: str, **profile: Any) -> None:
        await self.publish(*[UserCreated(user=UserSnapshot(id=i, **profile)) for i in ids])
        await wait_for_read_model(self.stack)

    async def applications(self, *ids: str, type: str = "MachineToMachine") -> None:  # noqa: A002
        await self.publish(*[ApplicationCreated(application=ApplicationSnapshot(id=i, name=i, type=type)) for i in ids])
        await wait_for_read_model(self.stack)


async def read_model_status(stack: Any) -> dict[str, Any]:
    """From rbac's own port: signed with the stack's internal key, as the gateway would."""
    async with signed_client(stack.service_url("rbac"), stack.internal_key) as client:
        return (await client.get("/internal/read-models")).json()["users"]


async def wait_for_read_model(stack: Any) -> dict[str, Any]:
    """Until rbac has applied every identity event in the stream."""
    for _ in range(1000):
        status = await read_model_status(stack)
        if status["pendingEvents"] == 0:
            return status
        await asyncio.sleep(0.02)
    raise AssertionError(f"rbac's read model did not catch up: {status}")


@pytest.fixture
async def api(stack):
    async with httpx.AsyncClient(base_url=stack.url, headers=ADMIN, timeout=30) as client:
        yield client


@pytest.fixture
async def identity(stack):
    async with IdentityStandIn(stack) as stand_in:
        yield stand_in


async def new_resource(api, **body) -> dict:
    indicator = body.pop("indicator", f"https://{unique('api')}.example.com")
    response = await api.post("/api/resources", json={"name": "API", "indicator": indicator, **body})
    assert response.status_code == 201, response.text
    return response.json()


async def new_scope(api, resource_id: str, name: str) -> dict:
    response = await api.post(f"/api/resources/{resource_id}/scopes", json={"name": name, "description": name})
    assert response.status_code == 201, response.text
    return response.json()


async def new_role(api, type: str = "User", **body) -> dict:  # noqa: A002
    response = await api.post("/api/roles", json={"name": unique("role"), "description": "e2e", "type": type, **body})
    assert response.status_code == 200, response.text
    return response.json()


# --- authentication (the gateway) ----------------------------------------------------------


async def test_rbac_routes_need_a_management_api_caller(stack):
    async with httpx.AsyncClient(base_url=stack.url) as anonymous:
        for path in ("/api/resources", "/api/roles", "/api/users/x/roles", "/api/applications/x/roles"):
            assert code(await anonymous.get(path)) == (401, "auth.authorization_header_missing"), path


async def test_the_served_openapi_has_the_machine_to_machine_role_routes(api):
    paths = (await api.get("/api/swagger.json")).json()["paths"]
    for path, method in (("/api/roles/{id}/applications", "post"), ("/api/roles/{id}/applications/{applicationId}", "delete"),
                         ("/api/applications/{id}/roles", "put"), ("/api/applications/{id}/roles/{roleId}", "delete"),
                         ("/api/resources/{id}/is-default", "patch"), ("/api/users/{userId}/roles", "put")):
        assert method in paths[path], path


# --- resources and scopes ------------------------------------------------------------------


async def test_resource_routes_and_codes(api):
    seeded = await api.get("/api/resources/management-api")
    assert seeded.json()["indicator"] == "https://default.logto.app/api"
    resource = await new_resource(api, accessTokenTtl=120)
    assert (resource["scopes"], resource["isDefault"], resource["accessTokenTtl"]) == ([], False, 120)
    rid = resource["id"]
    assert code(await api.post("/api/resources", json={"name": "x", "indicator": resource["indicator"]})) == \
        (422, "resource.resource_identifier_in_use")
    assert code(await api.post("/api/resources", json={"name": "x"})) == (400, "guard.invalid_input")
    everything = await api.get("/api/resources", params={"includeScopes": "true"})
    assert "total-number" not in everything.headers and rid in {r["id"] for r in everything.json()}
    assert all("scopes" in r for r in everything.json())
    paged = await api.get("/api/resources", params={"page_size": "1"})
    assert int(paged.headers["total-number"]) >= 2 and len(paged.json()) == 1
    assert code(await api.get("/api/resources", params={"page": "-1"})) == (400, "guard.invalid_pagination")
    assert (await api.get(f"/api/resources/{rid}")).json()["name"] == "API"
    assert code(await api.get("/api/resources/nope")) == (404, "entity.not_exists_with_id")
    assert (await api.patch(f"/api/resources/{rid}", json={"name": "Renamed"})).json()["name"] == "Renamed"
    assert code(await api.patch(f"/api/resources/{rid}", json={"accessTokenTtl": "soon"})) == (400, "guard.invalid_input")
    assert code(await api.patch("/api/resources/nope", json={"name": "x"})) == (404, "entity.not_exists")
    default = await api.patch(f"/api/resources/{rid}/is-default", json={"isDefault": True})
    assert default.status_code == 200 and default.json()["isDefault"] is True
    assert [r["id"] for r in (await api.get("/api/resources")).json() if r["isDefault"]] == [rid]
    assert (await api.patch(f"/api/resources/{rid}/is-default", json={"isDefault": False})).json()["isDefault"] is False
    assert code(await api.patch("/api/resources/nope/is-default", json={"isDefault": True})) == (404, "entity.not_exists")
    assert code(await api.patch(f"/api/resources/{rid}/is-default", json={"isDefault": "yes"})) == (400, "guard.invalid_input")
    deleted = await api.delete(f"/api/resources/{rid}")
    assert (deleted.status_code, deleted.content) == (204, b"")
    assert code(await api.delete(f"/api/resources/{rid}")) == (404, "entity.not_found")


async def test_the_management_api_is_protected(api):
    assert code(await api.patch("/api/resources/management-api", json={"name": "x"})) == \
        (400, "resource.cannot_modify_management_api")
    assert code(await api.delete("/api/resources/management-api")) == (400, "resource.cannot_delete_management_api")
    assert code(await api.post("/api/resources/management-api/scopes", json={"name": "x", "description": "x"})) == \
        (400, "resource.cannot_modify_management_api")
    assert code(await api.patch("/api/resources/management-api/scopes/management-api-all", json={"name": "x"})) == \
        (400, "resource.cannot_modify_management_api")
    assert code(await api.delete("/api/resources/management-api/scopes/management-api-all")) == \
        (400, "resource.cannot_modify_management_api")
    for response in (await api.patch("/api/roles/admin-role", json={"name": "boss"}),
                     await api.delete("/api/roles/admin-role"),
                     await api.delete("/api/roles/admin-role/scopes/management-api-all")):
        assert code(response) == (403, "role.internal_role_violation")
    assert [s["name"] for s in (await api.get("/api/roles/admin-role/scopes")).json()] == ["all"]


async def test_scope_routes_and_codes(api):
    resource = await new_resource(api)
    rid = resource["id"]
    scope = await new_scope(api, rid, "read:orders")
    await new_scope(api, rid, "write:orders")
    assert code(await api.post(f"/api/resources/{rid}/scopes", json={"name": "read orders", "description": "d"})) == \
        (400, "scope.name_with_space")
    assert code(await api.post("/api/resources/nope/scopes", json={"name": "x", "description": "d"})) == \
        (404, "entity.not_exists_with_id")
    assert code(await api.post(f"/api/resources/{rid}/scopes", json={"name": "read:orders", "description": "d"})) == \
        (422, "scope.name_exists")
    assert code(await api.post(f"/api/resources/{rid}/scopes", json={"name": "x"})) == (400, "guard.invalid_input")
    listed = await api.get(f"/api/resources/{rid}/scopes", params={"search.name": "read:%"})
    assert listed.headers["total-number"] == "1" and listed.json()[0]["id"] == scope["id"]
    assert code(await api.get(f"/api/resources/{rid}/scopes", params={"search.nope": "x"})) == (400, "request.invalid_input")
    assert code(await api.get(f"/api/resources/{rid}/scopes", params={"page_size": "500"})) == (400, "guard.invalid_pagination")
    path = f"/api/resources/{rid}/scopes/{scope['id']}"
    assert (await api.patch(path, json={"description": "Read orders"})).json()["description"] == "Read orders"
    assert code(await api.patch(path, json={"name": "a b"})) == (400, "scope.name_with_space")
    assert code(await api.patch(path, json={"name": "write:orders"})) == (422, "scope.name_exists")
    assert code(await api.patch(f"/api/resources/nope/scopes/{scope['id']}", json={"name": "x"})) == \
        (404, "entity.not_exists_with_id")
    assert code(await api.patch(f"/api/resources/{rid}/scopes/nope", json={"name": "x"})) == (404, "entity.not_exists")
    assert (await api.delete(path)).status_code == 204
    assert code(await api.delete(path)) == (404, "entity.not_found")


async def test_deleting_a_resource_takes_its_scopes_off_every_role(api, identity):
    resource, kept_resource = await new_resource(api), await new_resource(api)
    read, write = await new_scope(api, resource["id"], "read"), await new_scope(api, resource["id"], "write")
    kept = await new_scope(api, kept_resource["id"], "keep")
    role = await new_role(api, scopeIds=[read["id"], write["id"], kept["id"]])
    assert len((await api.get(f"/api/roles/{role['id']}/scopes")).json()) == 3
    assert (await api.delete(f"/api/resources/{resource['id']}")).status_code == 204
    assert [s["id"] for s in (await api.get(f"/api/roles/{role['id']}/scopes")).json()] == [kept["id"]]
    gone = await api.get(f"/api/resources/{resource['id']}/scopes")
    assert gone.status_code == 200 and gone.json() == []
    assert (await api.get(f"/api/roles/{role['id']}")).status_code == 200


# --- roles and their scopes ----------------------------------------------------------------


async def test_role_routes_and_codes(api, identity):
    resource = await new_resource(api)
    read = await new_scope(api, resource["id"], "read")
    role = await new_role(api, scopeIds=[read["id"]])
    assert (role["type"], len(role["id"])) == ("User", 21)
    assert code(await api.post("/api/roles", json={"name": role["name"], "description": "d"})) == (422, "role.name_in_use")
    assert code(await api.post("/api/roles", json={"name": "#internal:x", "description": "d"})) == \
        (403, "role.internal_role_violation")
    ghost_name = unique("ghost")
    bad_scope = await api.post("/api/roles", json={"name": ghost_name, "description": "d", "scopeIds": ["nope"]})
    assert code(bad_scope) == (404, "entity.not_exists_with_id")
    assert (await api.get("/api/roles", params={"search.name": ghost_name, "mode": "exact"})).json() == []
    assert code(await api.post("/api/roles", json={"description": "d"})) == (400, "guard.invalid_input")

    user = unique("u")
    await identity.users(user, name="Ann", avatar="https://example.com/ann.png")
    await api.post(f"/api/roles/{role['id']}/users", json={"userIds": [user]})
    (listed,) = (await api.get("/api/roles", params={"search.id": role["id"], "mode": "exact"})).json()
    assert listed["usersCount"] == 1
    assert listed["featuredUsers"] == [{"id": user, "avatar": "https://example.com/ann.png", "name": "Ann"}]
    roles_page = await api.get("/api/roles", params={"page_size": "5"})
    assert int(roles_page.headers["total-number"]) >= 1 and "admin-role" not in {r["id"] for r in roles_page.json()}
    excluded = await api.get("/api/roles", params={"excludeUserId": user, "search.id": role["id"], "mode": "exact"})
    assert excluded.json() == []
    assert code(await api.get("/api/roles", params={"mode": "nearly", "search": "x"})) == (400, "request.invalid_input")
    assert code(await api.get("/api/roles", params={"page_size": "0"})) == (400, "guard.invalid_pagination")

    path = f"/api/roles/{role['id']}"
    assert (await api.get(path)).json()["name"] == role["name"]
    assert code(await api.get("/api/roles/nope")) == (404, "entity.not_exists_with_id")
    other = await new_role(api)
    assert (await api.patch(path, json={"description": "changed"})).json()["description"] == "changed"
    assert code(await api.patch(path, json={"name": other["name"]})) == (422, "role.name_in_use")
    assert code(await api.patch(path, json={"name": "#internal:y"})) == (403, "role.internal_role_violation")
    assert code(await api.patch("/api/roles/nope", json={"name": "z"})) == (404, "entity.not_exists_with_id")
    assert code(await api.patch(path, json={"name": ""})) == (400, "guard.invalid_input")
    assert (await api.delete(f"/api/roles/{other['id']}")).status_code == 204
    assert code(await api.delete(f"/api/roles/{other['id']}")) == (404, "entity.not_found")


async def test_role_scope_routes_and_codes(api):
    resource = await new_resource(api)
    read, write = await new_scope(api, resource["id"], "read"), await new_scope(api, resource["id"], "write")
    role = await new_role(api, scopeIds=[read["id"]])
    path = f"/api/roles/{role['id']}/scopes"
    added = await api.post(path, json={"scopeIds": [write["id"]]})
    assert added.status_code == 200 and [s["name"] for s in added.json()] == ["read", "write"]
    assert code(await api.post(path, json={"scopeIds": [write["id"]]})) == (422, "role.scope_exists")
    assert code(await api.post(path, json={"scopeIds": ["nope"]})) == (404, "entity.not_exists_with_id")
    assert code(await api.post("/api/roles/nope/scopes", json={"scopeIds": [read["id"]]})) == (404, "entity.not_exists_with_id")
    assert code(await api.post(path, json={"scopeIds": []})) == (400, "guard.invalid_input")
    assert code(await api.post("/api/roles/admin-role/scopes", json={"scopeIds": [read["id"]]})) == \
        (403, "role.internal_role_violation")
    everything = await api.get(path)
    assert "total-number" not in everything.headers
    assert everything.json()[0]["resource"]["indicator"] == resource["indicator"]
    assert (await api.get(path, params={"page": "1"})).headers["total-number"] == "2"
    assert code(await api.get("/api/roles/nope/scopes")) == (404, "entity.not_exists_with_id")
    assert (await api.delete(f"{path}/{write['id']}")).status_code == 204
    assert code(await api.delete(f"{path}/{write['id']}")) == (404, "entity.not_found")


# --- holders: users ------------------------------------------------------------------------


async def test_role_user_routes_and_codes(api, identity):
    role = await new_role(api)
    robot = await new_role(api, type="MachineToMachine")
    ann, bob = unique("ann"), unique("bob")
    await identity.users(ann, bob)
    path = f"/api/roles/{role['id']}/users"
    added = await api.post(path, json={"userIds": [ann]})
    assert (added.status_code, added.text) == (201, "Created")
    assert code(await api.post(path, json={"userIds": [bob, ann]})) == (422, "role.user_exists")
    assert code(await api.post(path, json={"userIds": [unique("ghost")]})) == (404, "entity.not_found")
    assert code(await api.post("/api/roles/nope/users", json={"userIds": [bob]})) == (404, "entity.not_exists_with_id")
    assert code(await api.post(f"/api/roles/{robot['id']}/users", json={"userIds": [bob]})) == (422, "user.invalid_role_type")
    assert code(await api.post(path, json={"userIds": []})) == (400, "guard.invalid_input")
    listed = await api.get(path)
    assert listed.headers["total-number"] == "1" and listed.json()[0]["id"] == ann
    assert code(await api.get("/api/roles/nope/users")) == (404, "entity.not_exists_with_id")
    assert (await api.delete(f"{path}/{ann}")).status_code == 204
    assert code(await api.delete(f"{path}/{ann}")) == (404, "entity.not_found")


async def test_user_role_routes_and_codes(api, identity):
    a, b = await new_role(api), await new_role(api)
    robot = await new_role(api, type="MachineToMachine")
    user = unique("u")
    await identity.users(user)
    path = f"/api/users/{user}/roles"
    added = await api.post(path, json={"roleIds": [a["id"]]})
    assert (added.status_code, added.text) == (201, "Created")
    assert code(await api.post(path, json={"roleIds": [a["id"]]})) == (422, "user.role_exists")
    assert code(await api.post(path, json={"roleIds": ["nope"]})) == (404, "entity.not_exists_with_id")
    assert code(await api.post(path, json={"roleIds": [robot["id"]]})) == (422, "user.invalid_role_type")
    assert code(await api.post(f"/api/users/{unique('ghost')}/roles", json={"roleIds": [b["id"]]})) == \
        (404, "entity.not_found")
    replaced = await api.put(path, json={"roleIds": [b["id"]]})
    assert (replaced.status_code, replaced.text) == (200, "OK")
    assert code(await api.put(f"/api/users/{unique('ghost')}/roles", json={"roleIds": []})) == (404, "entity.not_found")
    listed = await api.get(path)
    assert [r["id"] for r in listed.json()] == [b["id"]] and listed.headers["total-number"] == "1"
    assert code(await api.get(f"/api/users/{unique('ghost')}/roles")) == (404, "entity.not_found")
    assert (await api.delete(f"{path}/{b['id']}")).status_code == 204
    assert code(await api.delete(f"{path}/{b['id']}")) == (404, "entity.not_found")


async def test_a_user_created_through_identity_can_be_given_a_role_at_once(api):
    """Identity's real POST /api/users; the role is assigned in the very next request (rbac's
    read model is fed by identity's event; the request waits for it if it must)."""
    created = await api.post("/api/users", json={"username": unique("user")})
    if created.status_code != 200:
        pytest.skip(f"identity does not create users yet ({created.status_code})")
    role = await new_role(api)
    user_id = created.json()["id"]
    assigned = await api.post(f"/api/users/{user_id}/roles", json={"roleIds": [role["id"]]})
    assert assigned.status_code == 201, assigned.text
    (holder,) = (await api.get(f"/api/roles/{role['id']}/users")).json()
    assert (holder["id"], holder["username"]) == (user_id, created.json()["username"])


# --- holders: machine-to-machine applications (later Logto) --------------------------------


async def test_machine_to_machine_role_routes_and_codes(api, identity):
    robot, other = await new_role(api, type="MachineToMachine"), await new_role(api, type="MachineToMachine")
    people = await new_role(api)
    app, web = unique("app"), unique("web")
    await identity.applications(app)
    await identity.applications(web, type="SPA")
    path = f"/api/roles/{robot['id']}/applications"
    added = await api.post(path, json={"applicationIds": [app]})
    assert (added.status_code, added.text) == (201, "Created")
    assert code(await api.post(path, json={"applicationIds": [app]})) == (422, "role.application_exists")
    assert code(await api.post(path, json={"applicationIds": [unique("ghost")]})) == (404, "entity.not_exists_with_id")
    assert code(await api.post(path, json={"applicationIds": [web]})) == (422, "application.invalid_type")
    assert code(await api.post(f"/api/roles/{people['id']}/applications", json={"applicationIds": [app]})) == \
        (422, "application.invalid_role_type")
    assert code(await api.post("/api/roles/nope/applications", json={"applicationIds": [app]})) == \
        (404, "entity.not_exists_with_id")
    assert code(await api.post("/api/roles/admin-role/applications", json={"applicationIds": [app]})) == \
        (403, "role.internal_role_violation")
    listed = await api.get(path)
    assert [a["id"] for a in listed.json()] == [app] and listed.headers["total-number"] == "1"
    assert code(await api.get("/api/roles/nope/applications")) == (404, "entity.not_exists_with_id")

    app_path = f"/api/applications/{app}/roles"
    assert [r["id"] for r in (await api.get(app_path)).json()] == [robot["id"]]
    assert code(await api.post(app_path, json={"roleIds": [robot["id"]]})) == (422, "application.role_exists")
    assert code(await api.post(app_path, json={"roleIds": [people["id"]]})) == (422, "application.invalid_role_type")
    assert code(await api.post(app_path, json={"roleIds": ["nope"]})) == (404, "entity.not_exists_with_id")
    assert code(await api.get(f"/api/applications/{web}/roles")) == (422, "application.invalid_type")
    assert code(await api.get(f"/api/applications/{unique('ghost')}/roles")) == (404, "entity.not_exists_with_id")
    assert (await api.post(app_path, json={"roleIds": [other["id"]]})).status_code == 201
    replaced = await api.put(app_path, json={"roleIds": [other["id"]]})
    assert (replaced.status_code, replaced.text) == (200, "OK")
    assert [r["id"] for r in (await api.get(app_path)).json()] == [other["id"]]
    assert (await api.delete(f"{app_path}/{other['id']}")).status_code == 204
    assert code(await api.delete(f"{app_path}/{other['id']}")) == (404, "entity.not_found")
    assert (await api.post(path, json={"applicationIds": [app]})).status_code == 201
    assert (await api.delete(f"{path}/{app}")).status_code == 204
    assert code(await api.delete(f"{path}/{app}")) == (404, "entity.not_found")


# --- events --------------------------------------------------------------------------------


async def test_audit_log_records_rbac_events(api):
    role = await new_role(api)
    for _ in range(500):
        logs = await api.get("/api/logs", params={"logKey": "rbac.role.created", "page_size": "100"})
        if any(entry["payload"]["data"]["role"]["id"] == role["id"] for entry in logs.json()):
            return
        await asyncio.sleep(0.02)
    raise AssertionError("audit-log never recorded rbac.role.created")


# --- the read model after rbac was down (last: it restarts rbac) ---------------------------


async def test_the_read_model_catches_up_after_rbac_was_down(stack, api, identity):
    role = await new_role(api)
    leaving, staying, arriving = unique("leave"), unique("stay"), unique("new")
    await identity.users(leaving, staying, name="before")
    assert (await api.post(f"/api/roles/{role['id']}/users", json={"userIds": [leaving, staying]})).status_code == 201

    stack.stop_service("rbac")
    try:
        assert code(await api.get("/api/roles")) == (503, "service.unavailable")
        await identity.publish(
            UserCreated(user=UserSnapshot(id=arriving, name="new")),
            UserDeleted(user_id=leaving),
            UserUpdated(user=UserSnapshot(id=staying, name="after", avatar="https://example.com/a.png"),
                        changed=["name", "avatar"]),
        )
    finally:
        stack.start_service("rbac")
    await wait_for_read_model(stack)

    (listed,) = (await api.get("/api/roles", params={"search.id": role["id"], "mode": "exact"})).json()
    assert listed["usersCount"] == 1
    assert listed["featuredUsers"] == [{"id": staying, "avatar": "https://example.com/a.png", "name": "after"}]
    assert code(await api.get(f"/api/users/{leaving}/roles")) == (404, "entity.not_found")
    assert (await api.post(f"/api/users/{arriving}/roles", json={"roleIds": [role["id"]]})).status_code == 201
    for _ in range(500):  # rbac announced the link it dropped; audit-log recorded it
        logs = (await api.get("/api/logs", params={"logKey": "rbac.role.users_unassigned", "page_size": "100"})).json()
        if any(e["payload"]["data"]["userIds"] == [leaving] and e["payload"]["data"]["reason"] == "user_deleted"
               for e in logs):
            break
        await asyncio.sleep(0.02)
    else:
        raise AssertionError("no rbac.role.users_unassigned for the deleted user")

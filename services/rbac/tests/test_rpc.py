"""rbac's rpc over real NATS: resources, the token endpoint's scopes, the admin flag."""

from __future__ import annotations

import asyncio
import random

from tessera_events.contracts.rbac import (
    APPLICATION_SCOPES,
    DEFAULT_RESOURCE,
    IS_APPLICATION_ADMIN,
    RESOURCE_BY_INDICATOR,
    ROLE_USER_IDS,
    SET_APPLICATION_ADMIN,
    USER_SCOPES,
    AllowedScopes,
    ApplicationAdminRequest,
    ApplicationRef,
    ApplicationScopesRequest,
    ResourceByIndicator,
    ResourceInfo,
    RoleRef,
    TenantRef,
    UserScopesRequest,
)
from tessera_rbac.rpc import APPLICATION_SCOPES_SQL, USER_SCOPES_SQL

MANAGEMENT_API = ResourceInfo(id="management-api", name="Logto Management API",
                              indicator="https://default.logto.app/api", access_token_ttl=3600)


async def api(rbac, indicator: str, *scope_names: str, ttl: int = 3600) -> tuple[dict, dict[str, str]]:
    resource = (await rbac.client.post("/api/resources", json={"name": indicator, "indicator": indicator,
                                                               "accessTokenTtl": ttl})).json()
    ids = {}
    for name in scope_names:
        scope = (await rbac.client.post(f"/api/resources/{resource['id']}/scopes",
                                        json={"name": name, "description": name})).json()
        ids[name] = scope["id"]
    return resource, ids


async def role(rbac, name: str, scope_ids: list[str], type: str = "User") -> str:  # noqa: A002
    response = await rbac.client.post("/api/roles", json={"name": name, "description": name,
                                                           "scopeIds": scope_ids, "type": type})
    assert response.status_code == 200, response.text
    return response.json()["id"]


async def test_resources_by_indicator_and_the_default_one(rbac):
    assert await rbac.ctx.call(RESOURCE_BY_INDICATOR, ResourceByIndicator(indicator="https://default.logto.app/api", tenant_id="default")) \
        == MANAGEMENT_API
    assert await rbac.ctx.call(RESOURCE_BY_INDICATOR, ResourceByIndicator(indicator="https://nowhere", tenant_id="default")) is None
    assert await rbac.ctx.call(DEFAULT_RESOURCE, TenantRef(tenant_id="default")) is None
    resource, _ = await api(rbac, "https://api.example.com", ttl=120)
    await rbac.client.patch(f"/api/resources/{resource['id']}/is-default", json={"isDefault": True})
    assert await rbac.ctx.call(DEFAULT_RESOURCE, TenantRef(tenant_id="default")) == ResourceInfo(
        id=resource["id"], name="https://api.example.com", indicator="https://api.example.com",
        access_token_ttl=120, is_default=True,
    )


async def test_user_scopes_are_the_names_held_through_roles_on_that_resource_only(rbac):
    orders, order_scopes = await api(rbac, "https://orders", "read", "write", "delete")
    _, billing_scopes = await api(rbac, "https://billing", "read", "pay")
    reader = await role(rbac, "reader", [order_scopes["read"], billing_scopes["read"]])
    writer = await role(rbac, "writer", [order_scopes["write"], order_scopes["read"]])
    await rbac.users("u1", "u2")
    await rbac.client.post("/api/users/u1/roles", json={"roleIds": [reader, writer]})
    answer = await rbac.ctx.call(USER_SCOPES, UserScopesRequest(user_id="u1", indicator="https://orders", tenant_id="default"))
    assert answer.scopes == ["read", "write"]
    assert answer.resource.id == orders["id"]
    assert (await rbac.ctx.call(USER_SCOPES, UserScopesRequest(user_id="u1", indicator="https://billing", tenant_id="default"))).scopes == ["read"]
    none = await rbac.ctx.call(USER_SCOPES, UserScopesRequest(user_id="u2", indicator="https://orders", tenant_id="default"))
    assert none == AllowedScopes(resource=answer.resource, scopes=[])
    unknown = await rbac.ctx.call(USER_SCOPES, UserScopesRequest(user_id="u1", indicator="https://nowhere", tenant_id="default"))
    assert unknown == AllowedScopes(resource=None, scopes=[])
    # Links change, answers follow at once (no cache).
    await rbac.client.delete(f"/api/roles/{writer}/scopes/{order_scopes['write']}")
    assert (await rbac.ctx.call(USER_SCOPES, UserScopesRequest(user_id="u1", indicator="https://orders", tenant_id="default"))).scopes == ["read"]


async def test_the_admin_flag_gives_an_application_the_management_api(rbac):
    request = ApplicationScopesRequest(application_id="m2m", indicator="https://default.logto.app/api", tenant_id="default")
    assert (await rbac.ctx.call(APPLICATION_SCOPES, request)).scopes == []
    state = await rbac.ctx.call(SET_APPLICATION_ADMIN, ApplicationAdminRequest(application_id="m2m", is_admin=True, tenant_id="default"))
    assert (state.application_id, state.is_admin) == ("m2m", True)
    await rbac.ctx.call(SET_APPLICATION_ADMIN, ApplicationAdminRequest(application_id="m2m", is_admin=True, tenant_id="default"))
    assert await rbac.ctx.call(APPLICATION_SCOPES, request) == AllowedScopes(resource=MANAGEMENT_API, scopes=["all"])
    assert (await rbac.ctx.call(IS_APPLICATION_ADMIN, ApplicationRef(application_id="m2m", tenant_id="default"))).is_admin is True
    await rbac.ctx.call(SET_APPLICATION_ADMIN, ApplicationAdminRequest(application_id="m2m", is_admin=False, tenant_id="default"))
    assert (await rbac.ctx.call(IS_APPLICATION_ADMIN, ApplicationRef(application_id="m2m", tenant_id="default"))).is_admin is False
    assert (await rbac.ctx.call(APPLICATION_SCOPES, request)).scopes == []
    link_events = [(t.rsplit(".", 1)[1], e["role_id"], e["application_ids"]) for t, e in await rbac.events()
                   if ".applications_" in t]
    assert link_events == [("applications_assigned", "admin-role", ["m2m"]),
                           ("applications_unassigned", "admin-role", ["m2m"])]  # idempotent: once each


async def test_application_scopes_through_machine_to_machine_roles(rbac):
    _, scopes = await api(rbac, "https://orders", "read", "write")
    robot = await role(rbac, "robot", [scopes["write"]], type="MachineToMachine")
    await rbac.applications("app1")
    await rbac.client.post(f"/api/roles/{robot}/applications", json={"applicationIds": ["app1"]})
    answer = await rbac.ctx.call(APPLICATION_SCOPES, ApplicationScopesRequest(application_id="app1",
                                                                              indicator="https://orders", tenant_id="default"))
    assert answer.scopes == ["write"]


async def test_role_user_ids(rbac):
    editor = await role(rbac, "editor", [])
    await rbac.users("u1", "u2", "u3")
    await rbac.client.post(f"/api/roles/{editor}/users", json={"userIds": ["u2", "u1"]})
    assert await rbac.ctx.call(ROLE_USER_IDS, RoleRef(role_id=editor, tenant_id="default")) == ["u2", "u1"]
    assert await rbac.ctx.call(ROLE_USER_IDS, RoleRef(role_id="nope", tenant_id="default")) == []


async def test_user_scopes_under_concurrency_answer_each_caller_its_own_scopes(rbac):
    """Many token requests at once, for users holding different roles: every answer is the
    caller's, while other users' roles keep changing."""
    _, scopes = await api(rbac, "https://orders", *[f"s{i}" for i in range(8)])
    roles = [await role(rbac, f"r{i}", [scopes[f"s{i}"], scopes[f"s{(i + 1) % 8}"]]) for i in range(8)]
    users = [f"user{i}" for i in range(16)]
    await rbac.users(*users)
    expected: dict[str, list[str]] = {}
    for n, user in enumerate(users):
        held = [roles[n % 8], roles[(n * 3) % 8]]
        await rbac.client.post(f"/api/users/{user}/roles", json={"roleIds": sorted(set(held))})
        names = {f"s{i}" for r in set(held) for i in (roles.index(r), (roles.index(r) + 1) % 8)}
        expected[user] = sorted(names)
    await rbac.users("churner")
    rng = random.Random(7)
    calls = [rng.choice(users) for _ in range(400)]

    async def churn() -> None:  # another user's roles change all along
        for i in range(30):
            await rbac.client.put("/api/users/churner/roles", json={"roleIds": [roles[i % 8]]})

    async def ask(user: str) -> tuple[str, list[str]]:
        answer = await rbac.ctx.call(USER_SCOPES, UserScopesRequest(user_id=user, indicator="https://orders", tenant_id="default"),
                                     timeout=30.0)
        return user, answer.scopes

    results, _ = await asyncio.gather(asyncio.gather(*(ask(u) for u in calls)), churn())
    assert len(results) == 400
    assert all(scopes_ == expected[user] for user, scopes_ in results)


async def test_the_scopes_queries_can_be_answered_from_indexes_alone(rbac):
    """With sequential scans disabled the planner must still find an index path for every
    table the token-time queries touch (if an index were missing it would scan anyway)."""
    async with rbac.ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute("SET LOCAL enable_seqscan = off")
        for sql in (USER_SCOPES_SQL, APPLICATION_SCOPES_SQL):
            plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {sql}", "default", "u1", "https://x"))
            assert "Seq Scan" not in plan, plan

"""identity with the real rbac beside it (same namespace, both in this loop): `isAdmin` on
applications and `excludeRoleId` on users, which rbac answers over rpc. Skipped where rbac
is not installed, or does not answer these operations yet."""

from __future__ import annotations

import asyncio
import itertools

import httpx
import pytest

from tessera_events import Actor
from tessera_events.contracts.rbac import ROLE_USER_IDS, RoleRef
from tessera_identity.main import build_spec
from tessera_kit.config import ServiceSettings
from tessera_kit.errors import RequestError
from tessera_kit.testing import service_client, started

rbac_main = pytest.importorskip("tessera_rbac.main", reason="rbac is not installed")

_modules = itertools.count()
ADMIN = Actor(type="user", id="test-admin")


@pytest.fixture(scope="module")
async def services(database_url, nats_url, namespace):
    ns = f"{namespace}rb{next(_modules)}"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns)
    identity_spec, rbac_spec = build_spec(settings, name=f"identity-{ns}"), rbac_main.build_spec(settings)
    rbac_spec.name = f"rbac-{ns}"  # own schema per module
    async with started(identity_spec) as (identity_app, identity_ctx), started(rbac_spec) as (rbac_app, _):
        try:
            await identity_ctx.call(ROLE_USER_IDS, RoleRef(role_id="probe", tenant_id="default"))
        except RequestError as error:
            if error.code == "service.unavailable":
                pytest.skip("rbac does not answer rbac.role_user_ids yet")
            raise
        async with client_of(identity_app, "identity") as identity, client_of(rbac_app, "rbac") as rbac:
            yield identity, rbac


def client_of(app, name: str) -> httpx.AsyncClient:
    return service_client(app, ADMIN, base_url=f"http://{name}")


async def eventually(attempt, *, tries: int = 200):
    """rbac learns of users and applications from identity's events: retry its 404s a while."""
    for _ in range(tries):
        response = await attempt()
        if response.status_code != 404:
            return response
        await asyncio.sleep(0.05)
    return response


async def test_is_admin_is_granted_through_rbac_and_shows_in_the_answers(services):
    identity, _ = services
    app = (await identity.post("/api/applications", json={"name": "robot", "type": "MachineToMachine"})).json()
    url = f"/api/applications/{app['id']}"
    first = await identity.get(url)
    assert first.status_code == 200 and first.json()["isAdmin"] is False
    granted = await eventually(lambda: identity.patch(url, json={"isAdmin": True}))
    assert granted.status_code == 200, granted.text
    assert granted.json()["isAdmin"] is True
    assert (await identity.get(url)).json()["isAdmin"] is True
    revoked = await identity.patch(url, json={"isAdmin": False, "name": "robot 2"})
    assert revoked.status_code == 200 and revoked.json()["isAdmin"] is False
    after = (await identity.get(url)).json()
    assert after["isAdmin"] is False and after["name"] == "robot 2"


async def test_exclude_role_id_leaves_out_the_role_holders(services):
    identity, rbac = services
    prefix = f"holder{next(_modules)}"
    alice = (await identity.post("/api/users", json={"username": f"{prefix}_alice"})).json()
    bob = (await identity.post("/api/users", json={"username": f"{prefix}_bob"})).json()
    role = await rbac.post("/api/roles", json={"name": f"{prefix} editors", "description": "edit"})
    assert role.status_code == 200, role.text
    role_id = role.json()["id"]
    assigned = await eventually(lambda: rbac.post(f"/api/roles/{role_id}/users", json={"userIds": [alice["id"]]}))
    assert assigned.status_code == 201, assigned.text
    response = await identity.get("/api/users", params={"search.username": f"{prefix}%", "excludeRoleId": role_id})
    assert response.status_code == 200
    assert [u["id"] for u in response.json()] == [bob["id"]] and response.headers["total-number"] == "1"
    unknown = await identity.get("/api/users", params={"search.username": f"{prefix}%", "excludeRoleId": "nope"})
    assert unknown.headers["total-number"] == "2"

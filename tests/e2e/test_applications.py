"""`/api/applications*` end to end through the gateway; `isAdmin` with rbac running, and
with rbac stopped (503, nothing changed)."""

from __future__ import annotations

import asyncio

import httpx
import pytest

pytestmark = pytest.mark.e2e
ADMIN = {"development-user-id": "e2e-apps-admin"}


@pytest.fixture
async def api(stack):
    async with httpx.AsyncClient(base_url=stack.url, timeout=15, headers=ADMIN) as client:
        yield client


async def test_an_application_from_creation_to_deletion(api):
    created = await api.post("/api/applications", json={
        "name": "E2E web", "type": "Traditional",
        "oidcClientMetadata": {"redirectUris": ["https://e2e.example/cb"], "postLogoutRedirectUris": []},
    })
    assert created.status_code == 200
    app = created.json()
    assert len(app["id"]) == 21 and len(app["secret"]) == 21
    listed = await api.get("/api/applications", params={"page_size": "100"})
    assert listed.status_code == 200 and app["id"] in {a["id"] for a in listed.json()}
    assert "demo-app" not in {a["id"] for a in listed.json()}
    patched = await api.patch(f"/api/applications/{app['id']}", json={
        "oidcClientMetadata": {"postLogoutRedirectUris": ["https://e2e.example"]}})
    assert patched.status_code == 200
    assert patched.json()["oidcClientMetadata"] == {"redirectUris": ["https://e2e.example/cb"],
                                                    "postLogoutRedirectUris": ["https://e2e.example"]}
    assert (await api.delete(f"/api/applications/{app['id']}")).status_code == 204
    gone = await api.get(f"/api/applications/{app['id']}")
    assert (gone.status_code, gone.json()["code"]) == (404, "entity.not_exists_with_id")


async def test_demo_app(api):
    response = await api.get("/api/applications/demo-app")
    assert response.status_code == 200
    assert response.json()["name"] == "Live Preview" and response.json()["isAdmin"] is False


async def until_not_404(attempt, tries: int = 200):
    for _ in range(tries):
        response = await attempt()
        if response.status_code != 404:
            return response
        await asyncio.sleep(0.05)
    return response


async def test_is_admin_through_rbac_and_rbac_down(api, stack):
    if "rbac" not in stack.names:
        pytest.skip("rbac is not installed")
    app = (await api.post("/api/applications", json={"name": "E2E robot", "type": "MachineToMachine"})).json()
    url = f"/api/applications/{app['id']}"
    granted = await until_not_404(lambda: api.patch(url, json={"isAdmin": True}))
    assert granted.status_code == 200, granted.text
    assert granted.json()["isAdmin"] is True
    assert (await api.get(url)).json()["isAdmin"] is True

    stack.stop_service("rbac")
    try:
        down = await api.patch(url, json={"isAdmin": False, "name": "renamed while rbac was down"})
        assert (down.status_code, down.json()["code"]) == (503, "service.unavailable")
        assert (await api.get(url)).status_code == 503  # isAdmin is rbac's to tell
    finally:
        stack.start_service("rbac")
    after = await api.get(url)
    assert after.status_code == 200
    assert after.json()["isAdmin"] is True and after.json()["name"] == "E2E robot"

"""`/api/applications*` in-process: Logto's statuses, defaults, merge semantics and error
codes; events for each change and none for failed requests. rbac does not run in this
namespace, so `isAdmin` answers 503 here (the e2e tests cover it with rbac running)."""

from __future__ import annotations

import pytest

from tessera_events.contracts.identity import APPLICATION_CLIENT, ApplicationRequest
from tessera_kit import rpc

FIELDS = ["tenantId", "id", "name", "secret", "description", "type", "oidcClientMetadata",
          "customClientMetadata", "createdAt"]


async def create(identity, **body):
    response = await identity.client.post("/api/applications", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def issue_paths(response) -> list[list[str]]:
    return [i["path"] for i in response.json()["data"]["issues"]]


async def test_create_with_logto_defaults(identity):
    app = await create(identity, name="My SPA", type="SPA")
    assert list(app) == FIELDS
    assert len(app["id"]) == 21 and len(app["secret"]) == 21 and app["id"] != app["secret"]
    assert app["tenantId"] == "default" and app["description"] is None
    assert app["oidcClientMetadata"] == {"redirectUris": [], "postLogoutRedirectUris": []}
    assert app["customClientMetadata"] == {}
    ((event_type, data),) = await identity.events(app["id"])
    assert event_type == "identity.application.created"
    assert data["application"]["name"] == "My SPA" and app["secret"] not in str(data)


async def test_create_with_everything_and_a_given_secret(identity):
    app = await create(
        identity, name="Web", type="Traditional", description="d", secret="s3cret",
        oidcClientMetadata={"redirectUris": ["https://app.example/cb"], "postLogoutRedirectUris": ["https://app.example"],
                            "logoUri": "https://app.example/logo.png", "extra": "dropped"},
        customClientMetadata={"corsAllowedOrigins": ["https://app.example"], "idTokenTtl": 600,
                              "refreshTokenTtl": 86400, "refreshTokenTtlInDays": 14, "alwaysIssueRefreshToken": True,
                              "rotateRefreshToken": False, "unknown": 1},
        tenantId="ignored",
    )
    assert app["secret"] == "s3cret" and app["description"] == "d" and app["tenantId"] == "default"
    assert app["oidcClientMetadata"] == {"redirectUris": ["https://app.example/cb"],
                                         "postLogoutRedirectUris": ["https://app.example"],
                                         "logoUri": "https://app.example/logo.png"}
    assert "unknown" not in app["customClientMetadata"] and app["customClientMetadata"]["idTokenTtl"] == 600


async def test_native_apps_may_use_custom_schemes_others_may_not(identity):
    native = await create(identity, name="App", type="Native", oidcClientMetadata={
        "redirectUris": ["io.logto.app:/callback", "http://localhost:3000/cb"], "postLogoutRedirectUris": []})
    assert native["oidcClientMetadata"]["redirectUris"][0] == "io.logto.app:/callback"
    before = await identity.outbox_size()
    spa = await identity.client.post("/api/applications", json={"name": "SPA", "type": "SPA", "oidcClientMetadata": {
        "redirectUris": ["io.logto.app:/callback"], "postLogoutRedirectUris": []}})
    assert spa.status_code == 400 and issue_paths(spa) == [["oidcClientMetadata", "redirectUris", "0"]]
    # Not a reverse-domain scheme: refused for every type.
    odd = await identity.client.post("/api/applications", json={"name": "App", "type": "Native", "oidcClientMetadata": {
        "redirectUris": ["myapp:/callback"], "postLogoutRedirectUris": []}})
    assert odd.status_code == 400
    assert await identity.outbox_size() == before


@pytest.mark.parametrize("body, paths", [
    ({"type": "SPA"}, [["name"]]),
    ({"name": "", "type": "SPA"}, [["name"]]),
    ({"name": "x" * 257, "type": "SPA"}, [["name"]]),
    ({"name": "a", "type": "Desktop"}, [["type"]]),
    ({"name": "a"}, [["type"]]),
    ({"name": "a", "type": "SPA", "secret": ""}, [["secret"]]),
    ({"name": "a", "type": "SPA", "oidcClientMetadata": {"redirectUris": []}},
     [["oidcClientMetadata", "postLogoutRedirectUris"]]),
    ({"name": "a", "type": "SPA", "oidcClientMetadata": {"redirectUris": ["not a url"], "postLogoutRedirectUris": []}},
     [["oidcClientMetadata", "redirectUris", "0"]]),
    ({"name": "a", "type": "SPA", "oidcClientMetadata": {"redirectUris": [], "postLogoutRedirectUris": ["nope"]}},
     [["oidcClientMetadata", "postLogoutRedirectUris", "0"]]),
    ({"name": "a", "type": "SPA", "customClientMetadata": {"idTokenTtl": "long"}},
     [["customClientMetadata", "idTokenTtl"]]),
    ({"name": "a", "type": "SPA", "customClientMetadata": {"corsAllowedOrigins": ["x"]}},
     [["customClientMetadata", "corsAllowedOrigins", "0"]]),
])
async def test_create_validation(identity, body, paths):
    before = await identity.outbox_size()
    response = await identity.client.post("/api/applications", json=body)
    assert response.status_code == 400 and response.json()["code"] == "guard.invalid_input"
    assert issue_paths(response) == paths
    assert await identity.outbox_size() == before


async def test_list_is_paginated_newest_first_without_the_demo_app(identity):
    made = [await create(identity, name=f"listed {i}", type="MachineToMachine") for i in range(3)]
    response = await identity.client.get("/api/applications", params={"page_size": "2"})
    assert response.status_code == 200
    total = int(response.headers["total-number"])
    assert total >= 3 and 'rel="next"' in response.headers["link"]
    assert [a["id"] for a in response.json()] == [made[2]["id"], made[1]["id"]]
    everything = []
    for page in range(1, total // 100 + 2):
        everything += (await identity.client.get("/api/applications",
                                                 params={"page": str(page), "page_size": "100"})).json()
    assert "demo-app" not in {a["id"] for a in everything} and len(everything) == total
    bad = await identity.client.get("/api/applications", params={"page": "-1"})
    assert (bad.status_code, bad.json()["code"]) == (400, "guard.invalid_pagination")


async def test_get_application_and_its_admin_flag(identity):
    app = await create(identity, name="M2M", type="MachineToMachine")
    # isAdmin is rbac's to say; rbac is not running here.
    response = await identity.client.get(f"/api/applications/{app['id']}")
    assert (response.status_code, response.json()["code"]) == (503, "service.unavailable")
    missing = await identity.client.get("/api/applications/nothing-here")
    assert missing.status_code == 404
    assert missing.json() == {"message": "The applications with ID `nothing-here` does not exist.",
                              "code": "entity.not_exists_with_id"}


async def test_demo_app_is_synthetic_in_the_api_and_a_client_for_oidc(identity):
    response = await identity.client.get("/api/applications/demo-app")
    assert response.status_code == 200
    assert response.json() == {
        "tenantId": "default", "id": "demo-app", "name": "Live Preview", "secret": "N/A",
        "description": "Preview for Sign-in Experience.", "type": "SPA",
        "oidcClientMetadata": {"redirectUris": [], "postLogoutRedirectUris": []},
        "customClientMetadata": {}, "createdAt": 0, "isAdmin": False,
    }
    client = await rpc.call(identity.ctx.bus, APPLICATION_CLIENT, ApplicationRequest(application_id="demo-app", tenant_id="default"))
    assert client.type == "SPA" and client.redirect_uris == ["http://tessera.test/demo-app"]
    assert client.post_logout_redirect_uris == ["http://tessera.test/demo-app"]
    for method in ("PATCH", "DELETE"):
        response = await identity.client.request(method, "/api/applications/demo-app", json={"name": "x"})
        assert response.status_code == 404


async def test_patch_merges_metadata_and_announces_changed_fields(identity):
    app = await create(identity, name="Web", type="Traditional", oidcClientMetadata={
        "redirectUris": ["https://a.example/cb"], "postLogoutRedirectUris": ["https://a.example"],
        "logoUri": "https://a.example/l.png"}, customClientMetadata={"idTokenTtl": 60})
    response = await identity.client.patch(f"/api/applications/{app['id']}", json={
        "name": "Web 2", "description": None, "secret": "rotated",
        "oidcClientMetadata": {"redirectUris": ["https://b.example/cb"]},
        "customClientMetadata": {"alwaysIssueRefreshToken": True},
    })
    assert response.status_code == 200
    body = response.json()
    assert list(body) == FIELDS  # no isAdmin when it was not asked for
    assert body["name"] == "Web 2" and body["secret"] == "rotated"
    assert body["oidcClientMetadata"] == {"redirectUris": ["https://b.example/cb"],
                                          "postLogoutRedirectUris": ["https://a.example"],
                                          "logoUri": "https://a.example/l.png"}
    assert body["customClientMetadata"] == {"idTokenTtl": 60, "alwaysIssueRefreshToken": True}
    events = await identity.events(app["id"])
    assert [t for t, _ in events] == ["identity.application.created", "identity.application.updated"]
    assert events[1][1]["changed"] == ["name", "secret", "oidc_client_metadata", "custom_client_metadata"]
    assert "rotated" not in str(events)
    # An empty PATCH answers the row and announces nothing.
    same = await identity.client.patch(f"/api/applications/{app['id']}", json={})
    assert same.status_code == 200 and same.json() == body
    assert len(await identity.events(app["id"])) == 2


async def test_patch_errors(identity):
    app = await create(identity, name="SPA", type="SPA")
    before = await identity.outbox_size()
    missing = await identity.client.patch("/api/applications/nothing-here", json={"name": "x"})
    assert missing.status_code == 404
    assert missing.json() == {"message": "The application does not exist.", "code": "entity.not_exists"}
    bad = await identity.client.patch(f"/api/applications/{app['id']}", json={"type": "Robot", "isAdmin": "yes"})
    assert bad.status_code == 400 and issue_paths(bad) == [["type"], ["isAdmin"]]
    custom = await identity.client.patch(f"/api/applications/{app['id']}",
                                         json={"oidcClientMetadata": {"redirectUris": ["io.logto.app:/cb"]}})
    assert custom.status_code == 400
    # rbac down: 503, and the name given with isAdmin is not kept either.
    down = await identity.client.patch(f"/api/applications/{app['id']}", json={"name": "renamed", "isAdmin": True})
    assert (down.status_code, down.json()["code"]) == (503, "service.unavailable")
    stored = await identity.ctx.pool.fetchval("SELECT name FROM applications WHERE id = $1", app["id"])
    assert stored == "SPA"
    assert await identity.outbox_size() == before


async def test_delete_application(identity):
    app = await create(identity, name="gone", type="SPA")
    response = await identity.client.delete(f"/api/applications/{app['id']}")
    assert response.status_code == 204 and response.content == b""
    assert (await identity.events(app["id"]))[-1] == ("identity.application.deleted", {"application_id": app["id"]})
    again = await identity.client.delete(f"/api/applications/{app['id']}")
    assert again.status_code == 404
    assert again.json() == {"message": "The resource does not exist.", "code": "entity.not_found"}


async def test_client_metadata_over_rpc_never_has_the_secret(identity):
    app = await create(identity, name="Native", type="Native", oidcClientMetadata={
        "redirectUris": ["io.logto.app:/cb"], "postLogoutRedirectUris": []}, customClientMetadata={"idTokenTtl": 5})
    client = await rpc.call(identity.ctx.bus, APPLICATION_CLIENT, ApplicationRequest(application_id=app["id"], tenant_id="default"))
    assert (client.id, client.name, client.type) == (app["id"], "Native", "Native")
    assert client.redirect_uris == ["io.logto.app:/cb"] and client.custom_client_metadata == {"idTokenTtl": 5}
    assert not hasattr(client, "secret")
    assert await rpc.call(identity.ctx.bus, APPLICATION_CLIENT, ApplicationRequest(application_id="none", tenant_id="default")) is None

"""One listener, one tenant: the gateway of the admin endpoint names `admin` in every assertion,
checks tokens of the admin tenant's issuer, and adds the Me API; the default listener has none
of it. The tenant comes from configuration; nothing a client sends changes it."""

from __future__ import annotations

import httpx
import pytest

from tessera_gateway.routes import RouteTable, route_table_for
from tessera_gateway.settings import GatewaySettings
from tessera_kit.config import ConfigError

ADMIN_ISSUER = "http://console.tessera.test/oidc"
ME_API = "https://admin.logto.app/me"


@pytest.fixture(scope="module")
def admin(admin_gateway):
    with httpx.Client(base_url=admin_gateway.url, timeout=10) as http:
        yield http


def _seen(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def test_the_admin_listener_names_its_tenant_whatever_the_client_says(admin, client, tokens):
    forged = {"tenant-id": "default", "x-tessera-tenant": "default", "host": "tessera.test"}
    assert _seen(admin.get("/api/.well-known/endpoints/x", headers=forged))["caller"]["tenant"] == "admin"
    assert _seen(client.get("/oidc/auth", headers={"tenant-id": "admin"}))["caller"]["tenant"] == "default"


def test_the_me_api_takes_a_users_token_for_the_me_resource(admin, tokens):
    me = tokens.make(tokens.keys.ec384, iss=ADMIN_ISSUER, aud=ME_API, sub="console-user")
    seen = _seen(admin.get("/me/custom-data", headers={"Authorization": f"Bearer {me}"}))
    assert seen["service"] == "identity" and seen["caller"] == {"type": "user", "id": "console-user", "tenant": "admin"}

    def refused(token: str | None) -> httpx.Response:
        return admin.get("/me/custom-data", headers={"Authorization": f"Bearer {token}"} if token else {})

    assert refused(None).json()["code"] == "auth.authorization_header_missing"
    for token in [
        tokens.make(tokens.keys.ec384, iss=ADMIN_ISSUER),  # the Management API's audience
        tokens.make(tokens.keys.ec384, aud=ME_API),  # the default tenant's issuer
    ]:
        assert refused(token).status_code == 401
    machine = tokens.make(tokens.keys.ec384, iss=ADMIN_ISSUER, aud=ME_API, sub="m2m", client_id="m2m")
    assert (refused(machine).status_code, refused(machine).json()["code"]) == (403, "auth.forbidden")
    no_all = tokens.make(tokens.keys.ec384, iss=ADMIN_ISSUER, aud=ME_API, scope="openid")
    assert refused(no_all).status_code == 403


def test_management_tokens_are_the_listeners_tenants(admin, client, tokens):
    admin_api = tokens.make(tokens.keys.ec384, iss=ADMIN_ISSUER, aud="https://admin.logto.app/api")
    default_api = tokens.make(tokens.keys.ec384)  # issued by the default tenant for its API
    assert _seen(admin.get("/api/roles", headers={"Authorization": f"Bearer {admin_api}"}))["caller"]["tenant"] == "admin"
    assert admin.get("/api/roles", headers={"Authorization": f"Bearer {default_api}"}).status_code == 401
    assert client.get("/api/roles", headers={"Authorization": f"Bearer {admin_api}"}).status_code == 401
    assert _seen(client.get("/api/roles", headers={"Authorization": f"Bearer {default_api}"}))["caller"]["tenant"] == "default"


def test_route_tables_per_tenant():
    admin, user = RouteTable(route_table_for(True)), RouteTable(route_table_for(False))
    me = admin.match("/me/custom-data")
    assert (me.service, me.me, me.management) == ("identity", True, False)
    page = user.match("/me/custom-data")
    assert (page.service, page.me, page.management) == ("experience", False, False)
    assert admin.match("/api/users").management and user.match("/api/users").management
    assert admin.match("/mex") is None and user.match("/mex") is None


def test_a_listeners_issuer_and_audience_are_its_tenants():
    settings = GatewaySettings(endpoint="http://id.test", admin_endpoint="http://console.test/", tenant_id="admin")
    assert settings.issuer == "http://console.test/oidc"
    assert settings.effective_management_audience == "https://admin.logto.app/api"
    assert GatewaySettings(endpoint="http://id.test").issuer == "http://id.test/oidc"
    with pytest.raises(ConfigError, match="TESSERA_TENANT_ID"):
        GatewaySettings(endpoint="http://id.test", tenant_id="admin").issuer  # no ADMIN_ENDPOINT

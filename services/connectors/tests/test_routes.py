"""/api/connectors* and /api/connector-factories* (Logto §3.3, §7) on real PostgreSQL and NATS."""

from __future__ import annotations

import json
from typing import Any

import msgspec

from tessera_connectors.service import associated, library
from tessera_events.contracts.connectors import LIST_CONNECTORS, ListConnectorsRequest
from tessera_kit.context import tenant_scope

MAIL_TEMPLATES = [
    {"usageType": u, "type": "text/plain", "subject": f"{u} code", "content": f"{u}: {{{{code}}}}"}
    for u in ("SignIn", "Register", "ForgotPassword", "Generic")
]
MOCK_MAIL = {"apiKey": "mail-api-key-SECRET", "fromEmail": "noreply@tessera.test", "templates": MAIL_TEMPLATES}
MOCK_SMS = {"accountSID": "AC1", "authToken": "sms-token-SECRET", "fromMessagingServiceSID": "MG1",
            "templates": [{"usageType": "SignIn", "content": "code {{code}}"}]}
MOCK_SOCIAL = {"clientId": "social-client", "clientSecret": "social-SECRET"}
OIDC = {"clientId": "c", "clientSecret": "oidc-SECRET", "scope": "profile",
        "authorizationEndpoint": "https://op.test/auth", "tokenEndpoint": "https://op.test/token",
        "idTokenVerificationConfig": {"jwksUri": "https://op.test/jwks"}}


async def create(client, connector_id: str, config: dict | None = None, **body: Any) -> dict:
    payload = {"connectorId": connector_id, **body}
    if config is not None:
        payload["config"] = config
    response = await client.post("/api/connectors", json=payload)
    assert response.status_code == 200, response.text
    return response.json()


async def fails(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, body
    return body


async def test_factories_are_logtos_packages(connectors):
    response = await connectors.client.get("/api/connector-factories")
    assert response.status_code == 200
    factories = {f["id"]: f for f in response.json()}
    assert {"simple-mail-transfer-protocol", "sendgrid-email-service", "twilio-short-message-service", "oidc",
            "oauth2", "github-universal", "google-universal", "mock-email-service", "mock-short-message-service",
            "mock-social-connector", "mock-email-service-alternative"} <= set(factories)
    smtp = factories["simple-mail-transfer-protocol"]
    assert (smtp["type"], smtp["target"], smtp["platform"], smtp["isDemo"]) == ("Email", "smtp", None, False)
    assert smtp["logo"].startswith("data:image/svg+xml;base64,") and "SMTP" in smtp["readme"]
    assert [i["key"] for i in smtp["formItems"]][:4] == ["host", "port", "auth", "fromEmail"]
    assert factories["oidc"]["isStandard"] is True and factories["oidc"]["platform"] == "Universal"
    assert factories["mock-social-connector"]["target"] == "mock-social"
    assert '"apiKey"' in factories["mock-email-service"]["configTemplate"]
    one = await connectors.client.get("/api/connector-factories/github-universal")
    assert one.status_code == 200 and one.json()["logoDark"].startswith("data:image/svg+xml")
    await fails(await connectors.client.get("/api/connector-factories/nope"), 404, "entity.not_found")


async def test_create_answers_logtos_shape_and_keeps_the_config_only_encrypted(connectors):
    body = await create(connectors.client, "mock-email-service", MOCK_MAIL, id="my-mail")
    assert body["id"] == "my-mail" and body["connectorId"] == "mock-email-service"
    assert body["type"] == "Email" and body["target"] == "mock-mail" and body["isDemo"] is False
    assert body["config"] == MOCK_MAIL and body["metadata"] == {} and body["syncProfile"] is False
    assert body["name"]["en"] == "Mock Mail Service"
    row = await connectors.ctx.pool.fetchrow("SELECT * FROM connectors WHERE id = 'my-mail'")
    assert b"mail-api-key-SECRET" not in bytes(row["config_encrypted"])
    assert "SECRET" not in str(dict(row))
    assert (await connectors.client.get("/api/connectors/my-mail")).json() == body
    events = await connectors.events()
    assert [t for t, _ in events] == ["connectors.connector.created"]
    assert events[0][1]["connector"]["id"] == "my-mail" and "config" not in events[0][1]["connector"]
    assert b"SECRET" not in await connectors.raw_outbox()


async def test_a_new_email_connector_replaces_the_old_one(connectors):
    first = await create(connectors.client, "mock-email-service", MOCK_MAIL)
    second = await create(connectors.client, "mock-email-service-alternative", MOCK_MAIL)
    ids = [c["id"] for c in (await connectors.client.get("/api/connectors")).json()]
    assert ids == [second["id"]]
    await fails(await connectors.client.get(f"/api/connectors/{first['id']}"), 404, "entity.not_found")
    assert [t for t, _ in await connectors.events()] == [
        "connectors.connector.created", "connectors.connector.created", "connectors.connector.deleted"]


async def test_creation_rules_in_logtos_order(connectors):
    c = connectors.client
    await fails(await c.post("/api/connectors", json={"connectorId": "nope"}), 422,
                "connector.not_found_with_connector_id")
    await fails(await c.post("/api/connectors", json={"connectorId": "logto-social-demo"}), 422,
                "connector.not_found_with_connector_id")
    await fails(await c.post("/api/connectors", json={"connectorId": "oidc", "config": OIDC}), 400,
                "connector.should_specify_target")
    await fails(await c.post("/api/connectors", json={"connectorId": "mock-social-connector",
                                                      "metadata": {"target": "x"}}), 400,
                "connector.cannot_overwrite_metadata_for_non_standard_connector")
    await create(c, "mock-short-message-service", MOCK_SMS)
    await fails(await c.post("/api/connectors", json={"connectorId": "mock-short-message-service"}), 422,
                "connector.multiple_instances_not_supported")
    body = await fails(await c.post("/api/connectors", json={"connectorId": "mock-email-service",
                                                             "config": {"apiKey": 1}}), 400,
                       "connector.invalid_config")
    assert body["data"]["name"] == "ZodError" and body["data"]["issues"][0]["path"] == ["apiKey"]
    await fails(await c.post("/api/connectors", json={"config": {}}), 400, "guard.invalid_input")
    await fails(await c.post("/api/connectors", json={"connectorId": ""}), 400, "guard.invalid_input")
    assert len((await c.get("/api/connectors")).json()) == 1  # nothing half-written


async def test_social_target_and_platform_are_unique(connectors):
    c = connectors.client
    await create(c, "oidc", OIDC, metadata={"target": "acme", "name": {"en": "Acme"}})
    second = await create(c, "oidc", OIDC, metadata={"target": "other"})
    assert second["target"] == "other" and second["metadata"] == {"target": "other"}
    body = await fails(await c.post("/api/connectors", json={"connectorId": "oauth2", "metadata": {"target": "acme"},
                                                             "config": {}}), 422,
                       "connector.multiple_target_with_same_platform")
    assert body["data"] == {"connectorId": "oidc", "connectorName": {"en": "Acme"}}
    listed = (await c.get("/api/connectors", params={"target": "acme"})).json()
    assert [x["name"]["en"] for x in listed] == ["Acme"]


async def test_config_errors_name_the_problem(connectors):
    c = connectors.client
    smtp = {"host": "h", "port": 25, "auth": {"user": "u", "pass": "p"}, "fromEmail": "a@b.c",
            "templates": [{"usageType": "SignIn", "contentType": "text/plain", "subject": "s", "content": "c"}]}
    body = await fails(await c.post("/api/connectors", json={"connectorId": "simple-mail-transfer-protocol",
                                                             "config": smtp}), 400, "connector.invalid_config")
    assert "Register, ForgotPassword, Generic" in body["data"]["issues"][0]["message"]
    body = await fails(await c.post("/api/connectors", json={"connectorId": "simple-mail-transfer-protocol",
                                                             "config": {**smtp, "port": "25"}}), 400,
                       "connector.invalid_config")
    assert body["data"]["issues"][0]["path"] == ["port"]
    body = await fails(await c.post("/api/connectors", json={"connectorId": "oidc", "metadata": {"target": "t"},
                                                             "config": {"clientId": "c", "clientSecret": "s",
                                                                        "scope": "openid"}}), 400,
                       "connector.invalid_config")
    assert "tokenEndpoint" in body["data"]["issues"][0]["message"]


async def test_get_patch_delete(connectors):
    c = connectors.client
    await fails(await c.get("/api/connectors/missing"), 404, "entity.not_found")
    await fails(await c.patch("/api/connectors/missing", json={}), 404, "entity.not_found")
    await fails(await c.delete("/api/connectors/missing"), 404, "entity.not_found")
    mail = await create(c, "mock-email-service", MOCK_MAIL)
    social = await create(c, "oidc", OIDC, metadata={"target": "acme"})
    await fails(await c.patch(f"/api/connectors/{mail['id']}", json={"syncProfile": True}), 422,
                "connector.invalid_type_for_syncing_profile")
    await fails(await c.patch(f"/api/connectors/{mail['id']}", json={"metadata": {"target": "x"}}), 400,
                "connector.cannot_overwrite_metadata_for_non_standard_connector")
    await fails(await c.patch(f"/api/connectors/{social['id']}", json={"metadata": {"target": "x"}}), 400,
                "connector.can_not_modify_target")
    await fails(await c.patch(f"/api/connectors/{mail['id']}", json={"config": {"apiKey": "k"}}), 400,
                "connector.invalid_config")
    new_config = {**MOCK_MAIL, "fromName": "Tessera"}
    patched = await c.patch(f"/api/connectors/{mail['id']}", json={"config": new_config})
    assert patched.status_code == 200 and patched.json()["config"] == new_config
    renamed = await c.patch(f"/api/connectors/{social['id']}",
                            json={"metadata": {"target": "acme", "name": {"en": "Acme SSO"}}, "syncProfile": True})
    assert renamed.json()["name"] == {"en": "Acme SSO"} and renamed.json()["syncProfile"] is True
    unchanged = await c.patch(f"/api/connectors/{mail['id']}", json={})
    assert unchanged.status_code == 200 and unchanged.json()["config"] == new_config
    assert (await c.delete(f"/api/connectors/{social['id']}")).status_code == 204
    types = [t for t, _ in await connectors.events()]
    assert types == ["connectors.connector.created"] * 2 + ["connectors.connector.updated"] * 2 + [
        "connectors.connector.deleted"]
    assert b"SECRET" not in await connectors.raw_outbox()


async def test_list_refuses_stored_rows_that_break_the_rules(connectors):
    await create(connectors.client, "mock-email-service", MOCK_MAIL)
    await create(connectors.client, "mock-email-service-alternative", MOCK_MAIL)
    # A second Email row that the API would never leave behind (e.g. restored from a backup).
    sealed = library(connectors.ctx).encryption.encrypt(json.dumps(MOCK_MAIL).encode(), associated("default", "copy"))
    await connectors.ctx.pool.execute(
        "INSERT INTO connectors (tenant_id, id, connector_id, config_encrypted, kek_id)"
        " VALUES ('default', 'copy', 'mock-email-service', $1, $2)", sealed, library(connectors.ctx).encryption.kek_id)
    await fails(await connectors.client.get("/api/connectors"), 400, "connector.more_than_one_email")


async def test_send_a_test_message(connectors):
    c = connectors.client
    await fails(await c.post("/api/connectors/mock-email-service/test", json={"config": MOCK_MAIL}), 400,
                "guard.invalid_input")
    await fails(await c.post("/api/connectors/mock-email-service/test",
                             json={"email": "not-an-email", "config": MOCK_MAIL}), 400, "guard.invalid_input")
    await fails(await c.post("/api/connectors/nope/test", json={"email": "a@b.co", "config": {}}), 400,
                "connector.not_found")
    await fails(await c.post("/api/connectors/mock-social-connector/test", json={"email": "a@b.co", "config": {}}),
                400, "connector.not_found")
    await fails(await c.post("/api/connectors/mock-email-service/test", json={"phone": "123", "config": MOCK_MAIL}),
                400, "connector.unexpected_type")
    await fails(await c.post("/api/connectors/mock-email-service/test", json={"email": "a@b.co", "config": {}}),
                400, "connector.invalid_config")
    no_generic = {**MOCK_MAIL, "templates": MAIL_TEMPLATES[:1]}
    await fails(await c.post("/api/connectors/mock-email-service/test",
                             json={"email": "a@b.co", "config": no_generic}), 400, "connector.template_not_found")
    response = await c.post("/api/connectors/mock-email-service/test", json={"email": "a@b.co", "config": MOCK_MAIL})
    assert response.status_code == 204
    assert connectors.record() == {"address": "a@b.co", "code": "000000", "type": "Generic"}
    assert (await c.get("/api/connectors")).json() == []  # nothing stored


async def test_authorization_uri(connectors):
    c = connectors.client
    social = await create(c, "mock-social-connector", MOCK_SOCIAL)
    mail = await create(c, "mock-email-service", MOCK_MAIL)
    body = {"state": "s1", "redirectUri": "https://app.test/cb"}
    response = await c.post(f"/api/connectors/{social['id']}/authorization-uri", json=body)
    assert response.status_code == 200
    assert response.json() == {"redirectTo": "http://mock.social.com/?state=s1&redirect_uri=https://app.test/cb"}
    await fails(await c.post(f"/api/connectors/{social['id']}/authorization-uri", json={**body, "state": ""}), 400,
                "session.insufficient_info")
    await fails(await c.post(f"/api/connectors/{mail['id']}/authorization-uri", json=body), 400,
                "connector.unexpected_type")
    await fails(await c.post("/api/connectors/nope/authorization-uri", json=body), 404, "entity.not_found")
    oidc = await create(c, "oidc", OIDC, metadata={"target": "acme"})
    await fails(await c.post(f"/api/connectors/{oidc['id']}/authorization-uri", json=body), 501,
                "connector.not_implemented")


async def test_a_config_moved_to_another_row_is_not_opened(connectors):
    """The ciphertext is bound to its tenant and id: a copied row is invisible, not decrypted."""
    await create(connectors.client, "mock-email-service", MOCK_MAIL)
    await connectors.ctx.pool.execute(
        "INSERT INTO connectors (tenant_id, id, connector_id, config_encrypted, kek_id, metadata)"
        " SELECT tenant_id, 'copy', 'mock-email-service', config_encrypted, kek_id, metadata FROM connectors")
    assert len((await connectors.client.get("/api/connectors")).json()) == 1
    await fails(await connectors.client.get("/api/connectors/copy"), 404, "entity.not_found")
    # nor does the rpc experience checks against list it (it did while it opened no config)
    listed = (await connectors.ctx.call(LIST_CONNECTORS, ListConnectorsRequest(tenant_id="default"))).connectors
    assert [c.id for c in listed] != [] and "copy" not in [c.id for c in listed]


async def test_the_connector_list_over_rpc_is_what_is_stored_now_without_configs(connectors):
    """What experience checks a sign-in experience against (its read model may lag)."""
    email = await create(connectors.client, "mock-email-service", MOCK_MAIL)
    social = await create(connectors.client, "mock-social-connector", MOCK_SOCIAL)
    reply = await connectors.ctx.call(LIST_CONNECTORS, ListConnectorsRequest(tenant_id="default"))
    listed = {c.id: c for c in reply.connectors}
    assert set(listed) == {email["id"], social["id"]}
    assert (listed[email["id"]].type, listed[social["id"]].type) == ("Email", "Social")
    assert listed[social["id"]].target == social["target"]
    assert "SECRET" not in msgspec.json.encode(reply).decode()
    with tenant_scope("other"):
        assert (await connectors.ctx.call(LIST_CONNECTORS, ListConnectorsRequest(tenant_id="other"))).connectors == []
    await connectors.client.delete(f"/api/connectors/{email['id']}")
    reply = await connectors.ctx.call(LIST_CONNECTORS, ListConnectorsRequest(tenant_id="default"))
    assert [c.id for c in reply.connectors] == [social["id"]]

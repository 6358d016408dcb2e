"""connectors through the gateway, every service a process: the stack installs Logto's test
factories (TESSERA_MOCK_CONNECTORS=true from libs/devstack), so a configuration from Logto's
own suite works as is, and the mock connector's code record lands in the temp directory."""

from __future__ import annotations

import json
import secrets
import tempfile
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.e2e

ADMIN = {"development-user-id": "e2e-admin"}
MOCK_MAIL = {"apiKey": "e2e-SECRET", "fromEmail": "noreply@logto.test.io", "templates": [
    {"usageType": u, "type": "text/plain", "subject": u, "content": "code {{code}}"}
    for u in ("SignIn", "Register", "ForgotPassword", "Generic")]}


def test_connectors_through_the_gateway(stack):
    with httpx.Client(base_url=stack.url, headers=ADMIN, timeout=30) as client:
        factories = client.get("/api/connector-factories")
        assert factories.status_code == 200
        assert "mock-email-service" in {f["id"] for f in factories.json()}
        created = client.post("/api/connectors", json={"connectorId": "mock-email-service", "config": MOCK_MAIL})
        assert created.status_code == 200, created.text
        connector_id = created.json()["id"]
        try:
            listed = client.get("/api/connectors", params={"target": "mock-mail"})
            assert [c["id"] for c in listed.json()] == [connector_id]
            email = f"e2e-{secrets.token_hex(4)}@example.com"
            sent = client.post("/api/connectors/mock-email-service/test", json={"email": email, "config": MOCK_MAIL})
            assert sent.status_code == 204, sent.text
            record = json.loads((Path(tempfile.gettempdir()) / "logto_mock_verification_code_record.txt").read_text())
            assert record == {"address": email, "code": "000000", "type": "Generic"}
            unknown = client.get("/api/connectors/nope")
            assert (unknown.status_code, unknown.json()["code"]) == (404, "entity.not_found")
        finally:
            assert client.delete(f"/api/connectors/{connector_id}").status_code == 204


MOCK_SMS = {"accountSID": "AC1", "authToken": "e2e-SECRET", "fromMessagingServiceSID": "MG1",
            "templates": [{"usageType": u, "content": "code {{code}}"} for u in ("SignIn", "Register", "ForgotPassword", "Generic")]}


def test_connectors_just_created_may_be_required_at_once(stack):
    """Logto's verification-code suite: create an Email and an SMS connector, then at once
    require them in the sign-in experience. experience asks connectors (rpc, NATS permission
    included) rather than its read model, which the connectors' events reach a little later."""
    with httpx.Client(base_url=stack.url, headers=ADMIN, timeout=30) as client:
        before = client.get("/api/sign-in-exp").json()
        for _ in range(3):
            created = [client.post("/api/connectors", json={"connectorId": factory, "config": config}).json()["id"]
                       for factory, config in (("mock-email-service", MOCK_MAIL),
                                               ("mock-short-message-service", MOCK_SMS))]
            try:
                required = client.patch("/api/sign-in-exp", json={
                    "signUp": {"identifiers": ["email", "phone"], "password": False, "verify": True},
                    "signIn": {"methods": [{"identifier": i, "password": False, "verificationCode": True,
                                            "isPasswordPrimary": False} for i in ("email", "phone")]}})
                assert required.status_code == 200, required.text
            finally:
                restored = client.patch("/api/sign-in-exp", json={"signUp": before["signUp"], "signIn": before["signIn"]})
                assert restored.status_code == 200, restored.text
                for connector_id in created:
                    assert client.delete(f"/api/connectors/{connector_id}").status_code == 204

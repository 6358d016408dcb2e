"""The internal assertion on its own: keys, signing, and every way a verification fails."""

import base64
import time

import pytest

from tessera_events import SYSTEM, Actor
from tessera_kit.assertion import (
    AssertionSigner,
    AssertionVerifier,
    InvalidAssertion,
    generate_key,
    parse_keys,
)
from tessera_kit.config import ConfigError, ServiceSettings

KEY = generate_key()
ADMIN = Actor(type="user", id="admin-1")


def verify(header: bytes, method: bytes = b"GET", target: bytes = b"/api/users?page=1",
           request_id: bytes = b"rid", key: str = KEY, tenant: str = "default", client: bytes = b"") -> Actor:
    return AssertionVerifier(key, tenant).verify(header, method, target, request_id, client)


def sign(caller: Actor = ADMIN, method: str = "GET", target: bytes = b"/api/users?page=1",
         request_id: bytes = b"rid", key: str = KEY, **kwargs) -> bytes:
    return AssertionSigner(key).sign(method, target, caller, request_id, **kwargs)


def test_keys_are_base64url_or_hex_of_32_bytes_or_more():
    raw = bytes(range(32))
    assert parse_keys(raw.hex()) == (raw,)
    assert parse_keys(base64.urlsafe_b64encode(raw).decode()) == (raw,)  # padded
    assert parse_keys(base64.urlsafe_b64encode(raw).decode().rstrip("=")) == (raw,)
    assert len(parse_keys(generate_key())[0]) == 32
    for bad in ["", " , ", raw[:31].hex(), "x" * 43 + "!", "Zm9v" * 3]:
        with pytest.raises(ConfigError, match="TESSERA_INTERNAL_KEY"):
            parse_keys(bad)


def test_the_key_stays_out_of_the_settings_repr():
    text = repr(ServiceSettings(internal_key=KEY))
    assert KEY not in text and "internal_key=<redacted>" in text


def test_no_password_is_shown_in_the_settings_repr():
    text = repr(ServiceSettings(nats_password="nats-secret", database_url="postgresql://svc:db-secret@db:5432/t",
                                nats_url="nats://n:url-secret@nats:4222"))
    assert "secret" not in text, text
    assert "nats_password=<redacted>" in text
    assert "database_url='postgresql://svc:<redacted>@db:5432/t'" in text
    assert "nats_url='nats://n:<redacted>@nats:4222'" in text
    assert "endpoint='http://localhost:3001'" in text  # a URL without a password is shown as it is


def test_a_signed_request_names_its_caller():
    assert verify(sign()) == ADMIN
    assert verify(sign(Actor(type="application", id="m2m.app"))) == Actor(type="application", id="m2m.app")
    assert verify(sign(SYSTEM)) == SYSTEM
    odd = Actor(type="user", id="dév user.1")  # a development-user-id may be anything printable
    assert verify(sign(odd)) == odd


@pytest.mark.parametrize("changed", [
    {"method": b"POST"}, {"target": b"/api/users?page=2"}, {"target": b"/api/users"},
    {"target": b"/api/users?page=1&x=1"}, {"request_id": b"other"}, {"key": generate_key()},
    {"client": b"6.6.6.6"},
])
def test_an_assertion_for_anything_else_is_refused(changed):
    with pytest.raises(InvalidAssertion, match="signature"):
        verify(sign(), **changed)


def test_the_client_address_is_signed():
    header = sign(client=b"192.0.2.1")
    assert verify(header, client=b"192.0.2.1") == ADMIN
    for other in (b"", b"6.6.6.6", b"192.0.2.10"):
        with pytest.raises(InvalidAssertion, match="signature"):
            verify(header, client=other)


def test_a_tampered_caller_is_refused():
    header = sign()
    claims, _, mac = header.rpartition(b".")
    version, stamp, kind, caller, tenant = claims.split(b".")
    root = base64.urlsafe_b64encode(b"root").rstrip(b"=")
    for forged in [b".".join([version, stamp, kind, root, tenant]),
                   b".".join([version, stamp, b"application", caller, tenant]),
                   b".".join([version, str(int(stamp) + 30).encode(), kind, caller, tenant])]:
        with pytest.raises(InvalidAssertion, match="signature"):
            verify(forged + b"." + mac)


def test_age_skew_tenant_and_shape():
    now = int(time.time())
    assert verify(sign(issued_at=now - 25)) == ADMIN
    with pytest.raises(InvalidAssertion, match="expired"):
        verify(sign(issued_at=now - 31))
    with pytest.raises(InvalidAssertion, match="future"):
        verify(sign(issued_at=now + 10))
    with pytest.raises(InvalidAssertion, match="tenant"):
        verify(sign(), tenant="admin")
    for malformed in [None, b"", b"nodot", b"a" * 2000]:
        with pytest.raises(InvalidAssertion):
            verify(malformed)


def test_keys_rotate_without_downtime():
    old, new = generate_key(), generate_key()
    assert verify(sign(key=old), key=f"{new},{old}") == ADMIN  # still accepted during the rotation
    assert verify(sign(key=f"{new},{old}"), key=new) == ADMIN  # the first key signs
    with pytest.raises(InvalidAssertion):
        verify(sign(key=old), key=new)


def test_a_service_serves_the_tenants_it_is_configured_for():
    verifier = AssertionVerifier(KEY, ["default", "admin"])
    for tenant in ("default", "admin"):
        header = AssertionSigner(KEY, tenant).sign("GET", b"/me", ADMIN, b"rid")
        assert verifier.verify_request(header, b"GET", b"/me", b"rid") == (ADMIN, tenant)
    other = AssertionSigner(KEY, "t3").sign("GET", b"/me", ADMIN, b"rid")
    with pytest.raises(InvalidAssertion, match="another tenant"):
        verifier.verify_request(other, b"GET", b"/me", b"rid")
    assert verifier.tenant_id == "default"  # the first is the default (health probes, tests)


def test_tenants_come_from_the_endpoints():
    settings = ServiceSettings(endpoint="http://id.example/", admin_endpoint="http://console.example:3002",
                               tenant_endpoints="acme=https://acme.example, beta=https://beta.example/")
    assert settings.tenants == {"default": "http://id.example", "admin": "http://console.example:3002",
                                "acme": "https://acme.example", "beta": "https://beta.example"}
    assert settings.endpoint_of("admin") == "http://console.example:3002"
    assert ServiceSettings().tenants == {"default": "http://localhost:3001"}  # no admin endpoint: no admin tenant
    with pytest.raises(ConfigError, match="TESSERA_TENANT_ENDPOINTS"):
        ServiceSettings(tenant_endpoints="acme").tenants


"""Sending messages through real providers: SMTP (aiosmtpd, with AUTH, STARTTLS and implicit
TLS) and HTTP APIs in SendGrid's and Twilio's request shapes; the `send_message` rpc over
NATS with its events; a provider that times out or answers 5xx."""

from __future__ import annotations

import base64
import datetime
import ipaddress
import ssl
from email import message_from_bytes
from email.policy import default as default_policy

import msgspec
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tessera_connectors.factories.smtp import SmtpConfig, tls_context
from tessera_devstack.ports import free_port
from tessera_events.contracts.connectors import SEND_MESSAGE, SendMessageRequest
from tessera_kit.errors import RequestError

USAGES = ("SignIn", "Register", "ForgotPassword", "Generic")
SMTP_TEMPLATES = [{"usageType": u, "contentType": "text/plain", "subject": f"{u} {{{{ code }}}}",
                   "content": f"Your {u} code is {{{{code}}}}."} for u in USAGES]


def self_signed() -> tuple[str, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
            .sign(key, hashes.SHA256()))
    return (cert.public_bytes(serialization.Encoding.PEM).decode(),
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()).decode())


class Inbox:
    def __init__(self) -> None:
        self.messages: list = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 (aiosmtpd's name)
        self.messages.append((envelope.rcpt_tos, message_from_bytes(envelope.content, policy=default_policy),
                              session.authenticated, session.ssl is not None))
        return "250 OK"


def authenticator(server, session, envelope, mechanism, auth_data):
    ok = isinstance(auth_data, LoginPassword) and auth_data.login == b"mailer" and auth_data.password == b"pw-SECRET"
    return AuthResult(success=ok, handled=False)  # not handled: aiosmtpd answers 535 itself


@pytest.fixture(scope="module")
def certificate(tmp_path_factory):
    cert, key = self_signed()
    folder = tmp_path_factory.mktemp("tls")
    (folder / "cert.pem").write_text(cert)
    (folder / "key.pem").write_text(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(folder / "cert.pem", folder / "key.pem")
    return cert, context


def smtp_server(inbox: Inbox, *, tls_context=None, implicit=None, require_starttls=False) -> Controller:
    controller = Controller(inbox, hostname="127.0.0.1", port=free_port(), authenticator=authenticator,
                            auth_require_tls=False, tls_context=tls_context, require_starttls=require_starttls,
                            ssl_context=implicit)
    controller.start()
    return controller


def smtp_config(port: int, **extra) -> dict:
    return {"host": "127.0.0.1", "port": port, "auth": {"user": "mailer", "pass": "pw-SECRET"},
            "fromEmail": "noreply@tessera.test", "templates": SMTP_TEMPLATES, **extra}


async def add(connectors, factory: str, config: dict) -> dict:
    response = await connectors.client.post("/api/connectors", json={"connectorId": factory, "config": config})
    assert response.status_code == 200, response.text
    return response.json()


async def send(connectors, to: str, template: str = "SignIn", type_: str = "Email", code: str = "123456"):
    return await connectors.ctx.call(SEND_MESSAGE, SendMessageRequest(type=type_, to=to, template=template,
                                                                      payload={"code": code}, tenant_id="default"), timeout=10)


async def test_a_code_arrives_by_smtp_with_its_template_and_starttls(connectors, certificate):
    cert, server_context = certificate
    inbox = Inbox()
    server = smtp_server(inbox, tls_context=server_context, require_starttls=True)
    try:
        connector = await add(connectors, "simple-mail-transfer-protocol",
                              smtp_config(server.port, requireTLS=True, tls={"ca": cert}))
        sent = await send(connectors, "jane@example.com", "Register", code="424242")
        assert sent.connector_id == connector["id"]
    finally:
        server.stop()
    [(recipients, message, authenticated, over_tls)] = inbox.messages
    assert recipients == ["jane@example.com"] and authenticated and over_tls
    assert message["Subject"] == "Register 424242" and message["From"] == "noreply@tessera.test"
    assert message.get_content().strip() == "Your Register code is 424242."
    events = await connectors.events("connectors.message.")
    assert events == [("connectors.message.sent", {
        "connector_id": connector["id"], "connector_factory_id": "simple-mail-transfer-protocol", "type": "Email",
        "template": "Register", "recipient": "j***@example.com"})]
    outbox = await connectors.raw_outbox()
    assert b"jane@example.com" not in outbox and b"424242" not in outbox and b"pw-SECRET" not in outbox


async def test_smtp_over_implicit_tls_and_an_untrusted_certificate(connectors, certificate):
    cert, server_context = certificate
    inbox = Inbox()
    server = smtp_server(inbox, implicit=server_context)
    try:
        await add(connectors, "simple-mail-transfer-protocol", smtp_config(server.port, secure=True))
        with pytest.raises(RequestError) as refused:  # the system trust store does not know our CA
            await send(connectors, "a@example.com")
        assert refused.value.code == "connector.general" and refused.value.status == 400
        await connectors.client.patch("/api/connectors/" + (await connectors.client.get("/api/connectors")).json()[0]["id"],
                                      json={"config": smtp_config(server.port, secure=True, tls={"ca": cert})})
        await send(connectors, "a@example.com", "SignIn", code="777777")
    finally:
        server.stop()
    [(_, message, _, _)] = inbox.messages  # the server speaks nothing but TLS
    assert "777777" in message.get_content()
    types = [t for t, _ in await connectors.events("connectors.message.")]
    assert types == ["connectors.message.failed", "connectors.message.sent"]


def test_a_trust_setting_is_loaded_once_and_kept_apart_from_the_others(certificate):
    # Loading the system's CA bundle per message was most of a code's cost: one context per setting.
    cert, _ = certificate

    def context(**extra) -> ssl.SSLContext:
        return tls_context(msgspec.convert(smtp_config(25, **extra), SmtpConfig))

    system = context()
    assert context() is system and system.verify_mode == ssl.CERT_REQUIRED and system.check_hostname
    with_ca = context(tls={"ca": cert})
    assert context(tls={"ca": cert}) is with_ca and with_ca is not system
    ours = {((("commonName", "127.0.0.1"),),)}
    assert any(c["subject"] in ours for c in with_ca.get_ca_certs())
    assert not any(c["subject"] in ours for c in system.get_ca_certs())
    insecure = context(tls={"rejectUnauthorized": False})
    assert context(tls={"rejectUnauthorized": False}) is insecure and insecure is not system
    assert insecure.verify_mode == ssl.CERT_NONE and not insecure.check_hostname
    assert system.verify_mode == ssl.CERT_REQUIRED  # the shared one was not changed


async def test_smtp_wrong_password(connectors):
    inbox = Inbox()
    server = smtp_server(inbox)
    try:
        config = smtp_config(server.port, auth={"user": "mailer", "pass": "wrong"})
        await add(connectors, "simple-mail-transfer-protocol", config)
        with pytest.raises(RequestError) as refused:
            await send(connectors, "a@example.com")
        assert refused.value.code == "connector.general"
        assert "535" in refused.value.message and "wrong" not in refused.value.message  # refused, not timed out
    finally:
        server.stop()
    assert inbox.messages == []
    failed = await connectors.events("connectors.message.failed")
    assert [d["error_code"] for _, d in failed] == ["connector.general"]


async def test_a_recipient_with_a_line_break_is_refused_not_a_500(connectors):
    """A header injection (`a@example.com\r\nBcc: ...`) never reaches the SMTP server."""
    inbox = Inbox()
    server = smtp_server(inbox)
    try:
        await add(connectors, "simple-mail-transfer-protocol", smtp_config(server.port))
        with pytest.raises(RequestError) as refused:
            await send(connectors, "a@example.com\r\nBcc: victim@example.com")
        assert (refused.value.code, refused.value.status) == ("connector.invalid_request_parameters", 400)
    finally:
        server.stop()
    assert inbox.messages == []


async def test_no_connector_of_the_type(connectors):
    with pytest.raises(RequestError) as missing:
        await send(connectors, "5550001", type_="Sms")
    assert (missing.value.code, missing.value.status) == ("connector.not_found", 400)


async def test_sendgrid_request_shape(connectors):
    p = connectors.providers
    p.answer("/v3/mail/send", 202, b"", "text/plain")
    templates = [{"usageType": u, "type": "text/html", "subject": f"{u} subject", "content": "<b>{{code}}</b>"}
                 for u in USAGES]
    await add(connectors, "sendgrid-email-service", {"apiKey": "SG.SECRET", "fromEmail": "no@t.test",
                                                     "fromName": "Tessera", "templates": templates})
    await send(connectors, "bob@example.com", "ForgotPassword", code="999000")
    [seen] = p.requests("/v3/mail/send")
    assert seen.headers["authorization"] == "Bearer SG.SECRET"
    assert seen.json() == {"personalizations": [{"to": [{"email": "bob@example.com"}]}],
                           "from": {"email": "no@t.test", "name": "Tessera"}, "subject": "ForgotPassword subject",
                           "content": [{"type": "text/html", "value": "<b>999000</b>"}]}


async def test_twilio_request_shape_and_a_refusal(connectors):
    p = connectors.providers
    path = "/2010-04-01/Accounts/AC123/Messages.json"
    p.answer(path, 201, {"sid": "SM1"})
    templates = [{"usageType": u, "content": f"{u} {{{{code}}}}"} for u in USAGES]
    await add(connectors, "twilio-short-message-service", {"accountSID": "AC123", "authToken": "tw-SECRET",
                                                           "fromMessagingServiceSID": "MG9", "templates": templates})
    await send(connectors, "+15550001", "SignIn", type_="Sms", code="314159")
    [seen] = p.requests(path)
    assert seen.headers["authorization"] == "Basic " + base64.b64encode(b"AC123:tw-SECRET").decode()
    assert seen.form() == {"To": "+15550001", "MessagingServiceSid": "MG9", "Body": "SignIn 314159"}
    p.answer(path, 400, {"code": 21211, "message": "Invalid 'To' Phone Number", "status": 400})
    with pytest.raises(RequestError) as refused:
        await send(connectors, "+1", "SignIn", type_="Sms")
    assert refused.value.code == "connector.general" and "Invalid 'To'" in refused.value.data["message"]
    [(_, failed)] = await connectors.events("connectors.message.failed")
    assert failed["recipient"] == "+1" and failed["error_code"] == "connector.general"


async def test_a_provider_that_answers_5xx_or_not_at_all(connectors):
    p = connectors.providers
    templates = [{"usageType": u, "type": "text/plain", "subject": "s", "content": "{{code}}"} for u in USAGES]
    await add(connectors, "sendgrid-email-service", {"apiKey": "k", "fromEmail": "no@t.test", "templates": templates})
    p.answer("/v3/mail/send", 503, b"upstream down", "text/plain")
    with pytest.raises(RequestError) as down:
        await send(connectors, "a@example.com")
    assert down.value.code == "connector.general" and "answered 503" in down.value.message
    p.hang("/v3/mail/send")
    with pytest.raises(RequestError) as slow:
        await send(connectors, "a@example.com")
    assert slow.value.code == "connector.general" and "did not answer within 1 s" in slow.value.message


async def test_mock_sms_writes_logtos_record_file(connectors):
    await add(connectors, "mock-short-message-service", {
        "accountSID": "a", "authToken": "b", "fromMessagingServiceSID": "c",
        "templates": [{"usageType": "SignIn", "content": "{{code}}"}]})
    await send(connectors, "5550001", "SignIn", type_="Sms", code="123123")
    assert connectors.record() == {"phone": "5550001", "code": "123123", "type": "SignIn"}
    raw = (connectors.record_dir / "logto_mock_verification_code_record.txt").read_text()
    assert raw == '{"phone":"5550001","code":"123123","type":"SignIn"}\n'
    with pytest.raises(RequestError) as missing:
        await send(connectors, "5550001", "Register", type_="Sms")
    assert (missing.value.code, missing.value.status) == ("connector.template_not_found", 400)

"""TLS to NATS end to end: a CA made here, a server that requires client certificates, and
a service connecting from its settings (TESSERA_NATS_TLS_*) with its own user."""

import asyncio
import datetime
import ipaddress
import ssl

import msgspec
import nats
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from tessera_devstack.nats import NatsAccess, NatsTls, start_nats
from tessera_events import STREAMS
from tessera_events.rpc import Ping, Pong, ping
from tessera_kit import rpc
from tessera_kit.bus import Bus
from tessera_kit.config import ServiceSettings, load_settings


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _write_key(path, key) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))


def _issue(ca_key, ca_name, path, common_name, usage, san=None):
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(common_name)).issuer_name(ca_name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    (path / f"{common_name}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _write_key(path / f"{common_name}.key", key)
    return path / f"{common_name}.pem", path / f"{common_name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    path = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.timezone.utc)
    ca = (
        x509.CertificateBuilder()
        .subject_name(_name("tessera test ca")).issuer_name(_name("tessera test ca"))
        .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                     content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False,
                                     encipher_only=False, decipher_only=False), critical=True)
        .sign(ca_key, hashes.SHA256())
    )
    (path / "ca.pem").write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    server = _issue(ca_key, ca.subject, path, "nats", ExtendedKeyUsageOID.SERVER_AUTH,
                    [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    client = _issue(ca_key, ca.subject, path, "identity", ExtendedKeyUsageOID.CLIENT_AUTH)
    return {"ca": path / "ca.pem", "server": server, "client": client}


async def test_a_service_speaks_tls_with_its_own_user_and_plain_clients_are_refused(pki, tmp_path):
    access = NatsAccess.for_stack(["tls"])
    cert, key = pki["server"]
    with start_nats(tmp_path / "js", access=access, tls=NatsTls(cert, key, ca=pki["ca"])) as server:
        client_cert, client_key = pki["client"]
        settings = load_settings(ServiceSettings, {
            "NATS_URL": server.url,
            "TESSERA_NAMESPACE": "tls",
            **access.service_env("identity", "tls"),
            "TESSERA_NATS_TLS_CA": str(pki["ca"]),
            "TESSERA_NATS_TLS_CERT": str(client_cert),
            "TESSERA_NATS_TLS_KEY": str(client_key),
        })
        bus = await Bus.from_settings(settings, "identity")
        try:
            assert bus.nc.connected_url is not None
            await bus.ensure_stream(STREAMS["identity"])
            ack = await bus.js.publish("tls.identity.user.created", b"{}")
            assert ack.stream == "TLS_IDENTITY"

            async def answer(_: Ping) -> Pong:
                return Pong(service="identity", ready=True)

            await rpc.serve(bus, rpc.RpcHandler(ping("identity"), answer))
            admin = await nats.connect(server.admin_url, tls=_client_context(pki))
            try:
                reply = await admin.request("tls.rpc.identity.ping", b"{}", timeout=5)
                assert msgspec.json.decode(reply.data)["ok"] == {"service": "identity", "ready": True}
            finally:
                await admin.close()
        finally:
            await bus.close()

        # A plaintext client is told TLS is required, and its plaintext CONNECT never gets a PONG.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        info = msgspec.json.decode((await reader.readline()).removeprefix(b"INFO "))
        assert info["tls_required"] is True
        writer.write(b'CONNECT {"verbose":false}\r\nPING\r\n')
        await writer.drain()
        assert b"PONG" not in await reader.read()  # read to EOF: the server hung up
        writer.close()
        # TLS without a client certificate: the handshake fails.
        no_certificate = ssl.create_default_context(cafile=str(pki["ca"]))
        with pytest.raises((ConnectionError, ssl.SSLError)):
            await nats.connect(server.admin_url, tls=no_certificate, allow_reconnect=False,
                               max_reconnect_attempts=0, connect_timeout=5)


def _client_context(pki) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki["ca"]))
    context.load_cert_chain(*map(str, pki["client"]))
    return context

"""Real processes for the gateway's tests: two fake upstreams and gateways in front of them.

- `fake_identity` and `fake_rbac`: `fake_upstream.py` under granian, one per service name.
- `gateway`: the gateway routing identity and audit-log to `fake_identity`, rbac to `fake_rbac`,
  connectors to a port where nothing listens (configured but down); experience and
  webhook-dispatcher are not configured. Identity's JWKS is the fake's, which the tests fill
  with keys they make.
- `dev_gateway`: the same with TESSERA_DEV_AUTH=true and an unreachable JWKS.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import httpx
import pytest
from joserfc import jwk, jwt

from tessera_devstack.ports import free_port, wait_until_listening
from tessera_kit.assertion import generate_key
from tessera_devstack.processes import die_with_parent, stop_process, tail_file, track

TESTS_DIR = Path(__file__).parent
ENDPOINT = "http://tessera.test"
ISSUER = f"{ENDPOINT}/oidc"
AUDIENCE = "https://default.logto.app/api"
READ_TIMEOUT = 2.0
JWKS_REFRESH_INTERVAL = 1.0
# The gateway signs with it, the fake upstreams verify with it.
INTERNAL_KEY = generate_key()


@dataclass
class Server:
    name: str
    port: int
    process: subprocess.Popen
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def logs(self) -> str:
        return tail_file(self.log, 60)


def start_server(name: str, app: str, env: dict[str, str], log_dir: Path) -> Server:
    port = free_port()
    log = log_dir / f"{name}.log"
    environment = {**os.environ, "HOST": "127.0.0.1", "PORT": str(port), "LOG_LEVEL": "warning",
                   "PYTHONUNBUFFERED": "1", **env}
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "tessera_kit.serve", app],
            env=environment, stdout=out, stderr=subprocess.STDOUT, preexec_fn=die_with_parent(),
        )
    track(process)
    server = Server(name, port, process, log)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}:\n{server.logs()}")
        if wait_until_listening(port, timeout=0.2):
            try:
                if httpx.get(f"{server.url}/health/ready", timeout=1.0).status_code == 200:
                    return server
            except httpx.HTTPError:
                pass
        time.sleep(0.05)
    stop_process(process)
    raise RuntimeError(f"{name} did not become ready:\n{server.logs()}")


@pytest.fixture(scope="session")
def internal_key() -> str:
    return INTERNAL_KEY


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway-logs")


def _fake(name: str, log_dir: Path) -> Iterator[Server]:
    env = {"FAKE_SERVICE": name, "TESSERA_INTERNAL_KEY": INTERNAL_KEY, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    server = start_server(f"fake-{name}", "fake_upstream:app", env, log_dir)
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
def fake_identity(log_dir: Path) -> Iterator[Server]:
    yield from _fake("identity", log_dir)


@pytest.fixture(scope="session")
def fake_rbac(log_dir: Path) -> Iterator[Server]:
    yield from _fake("rbac", log_dir)


@pytest.fixture(scope="session")
def down_url() -> str:
    """A URL where nothing listens (connection refused)."""
    return f"http://127.0.0.1:{free_port()}"


# ------------------------------------------------------------------ keys and tokens


@dataclass
class Keys:
    """Signing keys the tests make; `published` are the public ones the fake JWKS serves."""

    ec384: Any = field(default_factory=lambda: jwk.ECKey.generate_key("P-384", {"kid": "ec384"}))
    ec256: Any = field(default_factory=lambda: jwk.ECKey.generate_key("P-256", {"kid": "ec256"}))
    rsa: Any = field(default_factory=lambda: jwk.RSAKey.generate_key(2048, {"kid": "rsa"}))
    # Same kid as ec384, never published: signatures made with it must fail.
    impostor: Any = field(default_factory=lambda: jwk.ECKey.generate_key("P-384", {"kid": "ec384"}))

    @property
    def published(self) -> list[Any]:
        return [self.ec384, self.ec256, self.rsa]


def publish_keys(fake: Server, keys: list[Any]) -> None:
    body = {"keys": [key.as_dict(private=False) for key in keys]}
    httpx.put(f"{fake.url}/oidc/jwks", json=body, timeout=5).raise_for_status()


def jwks_fetches(fake: Server) -> int:
    return httpx.get(f"{fake.url}/oidc/jwks/fetches", timeout=5).json()["fetches"]


_ALGORITHMS = {"EC:P-384": "ES384", "EC:P-256": "ES256", "RSA": "RS256"}


def make_token(key: Any, *, alg: str | None = None, kid: str | None = "<key>", **overrides: Any) -> str:
    """A Management API access token as identity would issue it, with `overrides` applied to
    the claims (a value of None removes the claim)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": ISSUER, "aud": AUDIENCE, "sub": "user-1", "scope": "all", "client_id": "console",
        "iat": now, "exp": now + 3600, "jti": os.urandom(8).hex(),
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    kind = "RSA" if key.key_type == "RSA" else f"EC:{key.curve_name}"
    header = {"alg": alg or _ALGORITHMS[kind], "typ": "at+jwt"}
    if kid is not None:
        header["kid"] = key.kid if kid == "<key>" else kid
    return jwt.encode(header, claims, key, algorithms=[header["alg"]])


@pytest.fixture(scope="session")
def keys(fake_identity: Server) -> Keys:
    made = Keys()
    publish_keys(fake_identity, made.published)
    return made


class Tokens:
    """What the auth tests need, as one fixture (test modules cannot import this conftest)."""

    issuer = ISSUER
    audience = AUDIENCE
    refresh_interval = JWKS_REFRESH_INTERVAL

    def __init__(self, keys: Keys, fake_identity: Server):
        self.keys = keys
        self._fake = fake_identity

    make = staticmethod(make_token)

    def publish(self, keys: list[Any]) -> None:
        publish_keys(self._fake, keys)

    def jwks_fetches(self) -> int:
        return jwks_fetches(self._fake)


@pytest.fixture(scope="session")
def tokens(keys: Keys, fake_identity: Server) -> Tokens:
    return Tokens(keys, fake_identity)


# ------------------------------------------------------------------ gateways


def _gateway_env(fake_identity: Server, fake_rbac: Server, down_url: str, **extra: str) -> dict[str, str]:
    return {
        "ENDPOINT": ENDPOINT,
        "TESSERA_IDENTITY_URL": fake_identity.url,
        "TESSERA_AUDIT_LOG_URL": fake_identity.url,
        "TESSERA_RBAC_URL": fake_rbac.url,
        "TESSERA_CONNECTORS_URL": down_url,
        "TESSERA_EXPERIENCE_URL": "",
        "TESSERA_WEBHOOK_DISPATCHER_URL": "",
        "TESSERA_READ_TIMEOUT": str(READ_TIMEOUT),
        "TESSERA_JWKS_REFRESH_INTERVAL": str(JWKS_REFRESH_INTERVAL),
        "TESSERA_DEV_AUTH": "false",
        "TESSERA_INTERNAL_KEY": INTERNAL_KEY,
        **extra,
    }


@pytest.fixture(scope="session")
def gateway(fake_identity: Server, fake_rbac: Server, down_url: str, keys: Keys, log_dir: Path) -> Iterator[Server]:
    server = start_server("gateway", "tessera_gateway.main:app",
                          _gateway_env(fake_identity, fake_rbac, down_url), log_dir)
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
def dev_gateway(fake_identity: Server, fake_rbac: Server, down_url: str, log_dir: Path) -> Iterator[Server]:
    env = _gateway_env(fake_identity, fake_rbac, down_url, TESSERA_DEV_AUTH="true",
                       TESSERA_JWKS_URL=f"{down_url}/oidc/jwks")
    server = start_server("dev-gateway", "tessera_gateway.main:app", env, log_dir)
    yield server
    stop_process(server.process)


ADMIN_ENDPOINT = "http://console.tessera.test"


@pytest.fixture(scope="session")
def admin_gateway(fake_identity: Server, fake_rbac: Server, down_url: str, keys: Keys, log_dir: Path) -> Iterator[Server]:
    """The admin tenant's listener: the same gateway, TESSERA_TENANT_ID=admin."""
    env = _gateway_env(fake_identity, fake_rbac, down_url, ADMIN_ENDPOINT=ADMIN_ENDPOINT, TESSERA_TENANT_ID="admin",
                       TESSERA_EXPERIENCE_URL=fake_identity.url)
    server = start_server("admin-gateway", "tessera_gateway.main:app", env, log_dir)
    yield server
    stop_process(server.process)


@pytest.fixture(scope="session")
def client(gateway: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        yield http


@pytest.fixture(scope="session")
def token(keys: Keys) -> str:
    return make_token(keys.ec384)


@pytest.fixture(scope="session")
def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}

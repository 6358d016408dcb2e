"""Typed configuration from environment variables.

Variables keep Logto's names where Logto has one (`PORT`, `ENDPOINT`, `DATABASE_URL`);
everything of Tessera's own is `TESSERA_*`. A settings class is a msgspec Struct whose
field `foo_bar` is read from `FOO_BAR` when listed in `PLAIN_NAMES`, else
`TESSERA_FOO_BAR`.
"""

from __future__ import annotations

import os
from typing import Mapping, TypeVar
from urllib.parse import urlsplit, urlunsplit

import msgspec

PLAIN_NAMES = frozenset({"port", "host", "endpoint", "admin_endpoint", "database_url", "nats_url", "log_level"})

ADMIN_TENANT = "admin"


def env_name(field: str) -> str:
    return field.upper() if field in PLAIN_NAMES else f"TESSERA_{field.upper()}"


SECRET_FIELDS = frozenset({"internal_key", "nats_password"})


def is_secret_field(name: str) -> bool:
    """A field that holds a secret, by its name: the listed ones, and every `*_key`, `*secret*`
    and `*password*` (key_encryption_key, cookie_secret, admin_client_secret, ...), so a new
    secret setting is hidden without anyone remembering to list it."""
    return name in SECRET_FIELDS or name.endswith("_key") or "secret" in name or "password" in name


def redacted_repr(settings: msgspec.Struct) -> str:
    """The settings without their secrets: the secret fields, and the password of any URL
    (`postgresql://user:password@host/db`)."""
    def shown(name: str) -> str:
        value = getattr(settings, name)
        if is_secret_field(name):
            return "<redacted>"
        if isinstance(value, str) and "://" in value:
            value = _without_password(value)
        return repr(value)

    fields = ", ".join(f"{name}={shown(name)}" for name in settings.__struct_fields__)
    return f"{type(settings).__name__}({fields})"


def _without_password(url: str) -> str:
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:  # not a URL after all: shown whole would risk nothing it does not already
        return url
    if not password:
        return url
    user = parts.username or ""
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{user}:<redacted>@{host}"))


DB_IDLE_SECONDS = 300.0
DB_POOL_SIZE = 10


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_name):
    port: int = 3000
    host: str = "127.0.0.1"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/tessera"
    nats_url: str = "nats://127.0.0.1:4222"
    endpoint: str = "http://localhost:3001"
    log_level: str = "info"
    # Prefix for NATS subjects and streams, so deployments (or test runs) can share a server.
    namespace: str = ""
    # The tenant ENDPOINT serves (Logto's `default`).
    tenant_id: str = "default"
    # Logto's admin tenant (`admin`: the admin console's users, its application and `/me`), served
    # by the gateway listening on ADMIN_ENDPOINT. Empty: no admin tenant.
    admin_endpoint: str = ""
    # Any further tenants, `id=<endpoint>,id=<endpoint>` (each with a gateway listening there).
    tenant_endpoints: str = ""
    db_pool_size: int = DB_POOL_SIZE
    # A pooled connection unused this long is closed (asyncpg's max_inactive_connection_lifetime):
    # each is a PostgreSQL backend of a few MB; a long-idle service keeps only the one its outbox
    # relay holds. Not shorter by default: opening one costs ~4 ms, and with 30 s Logto's suite
    # lost one of its reads-right-after-a-write per run (a consumer waiting for a new connection).
    db_idle_seconds: float = DB_IDLE_SECONDS
    # Requests one process handles at once; more are answered 503 with Retry-After at once
    # (tessera_kit.backpressure), so a stalled database cannot make requests pile up.
    max_in_flight: int = 256
    # JetStream replicas of the streams a service ensures (3 on a clustered NATS).
    stream_replicas: int = 1
    # Retention of the service's own stream (JetStream limits; 0 / -1 keep everything, the
    # default: subscribers replay from the oldest event kept). See docs/events.md.
    stream_max_age_seconds: float = 0
    stream_max_bytes: int = -1
    stream_max_msgs: int = -1
    # The service's own NATS user (see tessera_kit.access for what it may do); empty: none.
    nats_user: str = ""
    nats_password: str = ""
    # TLS to NATS: the CA that signed the server's certificate, and a client certificate
    # and key when the server asks for one (mutual TLS). Empty: plain TCP (or the URL's tls://).
    nats_tls_ca: str = ""
    nats_tls_cert: str = ""
    nats_tls_key: str = ""
    # The key the gateway signs each forwarded request with (`tessera_kit.assertion`): base64url
    # or hex of at least 32 random bytes, the same for the gateway and every service. No default:
    # a service without it refuses to start.
    internal_key: str = ""

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return redacted_repr(self)

    @property
    def tenants(self) -> dict[str, str]:
        """Every tenant this deployment serves -> its public endpoint (no trailing slash)."""
        return tenant_endpoints(self.tenant_id, self.endpoint, self.admin_endpoint, self.tenant_endpoints)

    def endpoint_of(self, tenant_id: str) -> str:
        """A served tenant's public endpoint (the issuer is `<endpoint>/oidc`)."""
        return self.tenants[tenant_id]


def tenant_endpoints(default_tenant: str, endpoint: str, admin_endpoint: str = "", more: str = "") -> dict[str, str]:
    tenants = {default_tenant: endpoint.rstrip("/")}
    if admin_endpoint:
        tenants[ADMIN_TENANT] = admin_endpoint.rstrip("/")
    for item in (part.strip() for part in more.split(",")):
        if not item:
            continue
        tenant, equals, url = item.partition("=")
        if not equals or not tenant.strip() or not url.strip():
            raise ConfigError(f"TESSERA_TENANT_ENDPOINTS: {item!r} is not <tenant>=<endpoint>")
        tenants[tenant.strip()] = url.strip().rstrip("/")
    return tenants


S = TypeVar("S", bound=msgspec.Struct)


class ConfigError(Exception):
    pass


def load_settings(cls: type[S], environ: Mapping[str, str] | None = None) -> S:
    """Read `cls` from the environment; empty values count as unset."""
    environ = os.environ if environ is None else environ
    names = {f.encode_name for f in msgspec.structs.fields(cls)}
    raw = {k: v for k, v in environ.items() if k in names and v != ""}
    try:
        return msgspec.convert(raw, cls, strict=False)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid configuration: {exc}") from exc

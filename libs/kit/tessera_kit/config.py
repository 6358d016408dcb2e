"""Typed configuration from environment variables.

Variables keep Logto's names where Logto has one (`PORT`, `ENDPOINT`, `DATABASE_URL`);
everything of Tessera's own is `TESSERA_*`. A settings class is a msgspec Struct whose
field `foo_bar` is read from `FOO_BAR` when listed in `PLAIN_NAMES`, else
`TESSERA_FOO_BAR`.
"""

from __future__ import annotations

import os
from typing import Mapping, TypeVar

import msgspec

PLAIN_NAMES = frozenset({"port", "host", "endpoint", "database_url", "nats_url", "log_level"})


def env_name(field: str) -> str:
    return field.upper() if field in PLAIN_NAMES else f"TESSERA_{field.upper()}"


class ServiceSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_name):
    port: int = 3000
    host: str = "127.0.0.1"
    database_url: str = "postgresql://postgres@127.0.0.1:5432/tessera"
    nats_url: str = "nats://127.0.0.1:4222"
    endpoint: str = "http://localhost:3001"
    log_level: str = "info"
    # Prefix for NATS subjects and streams, so deployments (or test runs) can share a server.
    namespace: str = ""
    tenant_id: str = "default"
    db_pool_size: int = 10
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

"""Each service of a local stack gets its own identities: a PostgreSQL role that owns its
schema (made here with the admin DSN, by `tessera_kit.provision`) and a NATS user (from the
server's `NatsAccess`). What each may reach is in `tessera_kit.access`.

The stack's shared environment keeps the admin's DSN and NATS URL, for tests and tools;
each service's own environment replaces them with its own.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

from .nats import NatsAccess
from .postgres import _run_sync


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[-1]))


@dataclass
class ServiceIdentities:
    """Per-service environment (`ServiceStack(service_env=...)`) and the roles to drop later."""

    env: dict[str, dict[str, str]] = field(default_factory=dict)
    roles: list[str] = field(default_factory=list)

    def drop_roles(self, admin_dsn: str) -> None:
        from tessera_kit.provision import drop_roles

        if self.roles:
            _run_sync(lambda: drop_roles(admin_dsn, self.roles))


def service_identities(
    names: Iterable[str],
    *,
    admin_dsn: str | None,
    nats_access: NatsAccess | None,
    nats_url: str,
    namespace: str = "",
) -> ServiceIdentities:
    """Roles (when `admin_dsn` is given) and NATS users (when the server has `nats_access`)
    for the services `names`; a service missing from tessera_kit.access is an error."""
    from tessera_kit.access import service_access
    from tessera_kit.provision import provision, role_name, service_dsn

    identities = ServiceIdentities()
    entries = [service_access(name) for name in names]
    if admin_dsn:
        database = urlsplit(admin_dsn).path.lstrip("/")
        dsns = {
            entry.name: service_dsn(admin_dsn, role_name(database, entry.name), secrets.token_urlsafe(32))
            for entry in entries
            if entry.uses_database
        }
        if dsns:
            _run_sync(lambda: provision(admin_dsn, dsns))
        for name, dsn in dsns.items():
            identities.env.setdefault(name, {})["DATABASE_URL"] = dsn
            identities.roles.append(urlsplit(dsn).username or "")
    if nats_access is not None:
        for entry in entries:
            if entry.uses_nats:
                identities.env.setdefault(entry.name, {}).update(
                    {"NATS_URL": without_credentials(nats_url),
                     **nats_access.service_env(entry.name, namespace)}
                )
    return identities


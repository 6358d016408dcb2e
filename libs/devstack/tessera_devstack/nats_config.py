"""The `authorization` block of a NATS cluster for Tessera, from tessera_kit.access.

    TESSERA_IDENTITY_NATS_PASSWORD=... TESSERA_RBAC_NATS_PASSWORD=... \\
        python -m tessera_devstack.nats_config [--namespace NS] > tessera-authorization.conf

One user per service (named after it), its permissions from the access table, its password
bcrypt-hashed (cost 11: a deployment's passwords may be chosen by people). A service whose
variable is unset gets a placeholder hash to fill in. The output is JSON, which nats-server
reads as configuration; `include` it from the cluster's config (deploy/nats/README.md).
Outside subscribers (TESSERA_SUBSCRIBERS) get read-only users, their passwords in
TESSERA_SUBSCRIBER_<NAME>_NATS_PASSWORD.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


def password_variable(service: str) -> str:
    return f"TESSERA_{service.upper().replace('-', '_')}_NATS_PASSWORD"


@dataclass(frozen=True)
class UserEntry:
    """A NATS user of a deployment: its name, its permissions, and the variable that holds
    its password when the authorization block is generated."""

    name: str
    permissions: dict[str, Any]
    password_variable: str


def nats_users(namespace: str = "",
               subscribers: Mapping[str, tuple[str, ...]] | None = None) -> list[UserEntry]:
    """One user per service (permissions from the access table), then one per outside
    subscriber (`TESSERA_SUBSCRIBERS`, read-only on its events)."""
    from tessera_kit.access import nats_permissions, nats_services, nats_user, subscriber_permissions

    return [
        *(UserEntry(nats_user(namespace, entry.name), nats_permissions(entry, namespace),
                    password_variable(entry.name))
          for entry in nats_services()),
        *(UserEntry(nats_user(namespace, name), subscriber_permissions(name, patterns, namespace),
                    password_variable(f"subscriber-{name}"))
          for name, patterns in (subscribers or {}).items()),
    ]


def authorization(namespace: str = "", environ: Mapping[str, str] | None = None,
                  rounds: int = 11) -> dict:
    import bcrypt

    from tessera_events.subscribers import parse_subscribers

    environ = os.environ if environ is None else environ
    users = []
    for entry in nats_users(namespace, parse_subscribers(environ.get("TESSERA_SUBSCRIBERS", ""))):
        password = environ.get(entry.password_variable)
        hashed = (bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode() if password
                  else f"BCRYPT_HASH_OF_{entry.password_variable}")
        users.append({"user": entry.name, "password": hashed, "permissions": entry.permissions})
    return {"authorization": {"users": users}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tessera_devstack.nats_config", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--namespace", default="", help="TESSERA_NAMESPACE of the deployment")
    args = parser.parse_args(argv)
    json.dump(authorization(args.namespace), sys.stdout, indent=2)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())

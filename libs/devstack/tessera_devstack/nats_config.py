"""The `authorization` block of a NATS cluster for Tessera, from tessera_kit.access.

    TESSERA_IDENTITY_NATS_PASSWORD=... TESSERA_RBAC_NATS_PASSWORD=... \\
        python -m tessera_devstack.nats_config [--namespace NS] > tessera-authorization.conf

One user per service (named after it), its permissions from the access table, its password
bcrypt-hashed (cost 11: a deployment's passwords may be chosen by people). A service whose
variable is unset gets a placeholder hash to fill in. The output is JSON, which nats-server
reads as configuration; `include` it from the cluster's config (deploy/nats/README.md).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping


def password_variable(service: str) -> str:
    return f"TESSERA_{service.upper().replace('-', '_')}_NATS_PASSWORD"


def authorization(namespace: str = "", environ: Mapping[str, str] | None = None,
                  rounds: int = 11) -> dict:
    import bcrypt

    from tessera_events.subscribers import parse_subscribers
    from tessera_kit.access import nats_permissions, nats_services, nats_user, subscriber_permissions

    environ = os.environ if environ is None else environ
    users = []
    for entry in nats_services():
        password = environ.get(password_variable(entry.name))
        hashed = (bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode() if password
                  else f"BCRYPT_HASH_OF_{password_variable(entry.name)}")
        users.append({"user": nats_user(namespace, entry.name), "password": hashed,
                      "permissions": nats_permissions(entry, namespace)})
    # Outside subscribers (TESSERA_SUBSCRIBERS), read-only; password TESSERA_SUBSCRIBER_<NAME>_NATS_PASSWORD.
    for name, patterns in parse_subscribers(environ.get("TESSERA_SUBSCRIBERS", "")).items():
        variable = f"TESSERA_SUBSCRIBER_{name.upper().replace('-', '_')}_NATS_PASSWORD"
        password = environ.get(variable)
        hashed = (bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds)).decode() if password
                  else f"BCRYPT_HASH_OF_{variable}")
        users.append({"user": nats_user(namespace, name), "password": hashed,
                      "permissions": subscriber_permissions(name, patterns, namespace)})
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

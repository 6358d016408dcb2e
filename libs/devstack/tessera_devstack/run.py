"""`make run`: PostgreSQL, NATS and every installed service on this machine, until Ctrl-C.

    python -m tessera_devstack.run [--exit-on-crash] [--state-dir .tessera] [--replicas N]

- DATABASE_URL unset: embedded PostgreSQL with its data in .tessera/postgres, database `tessera`.
- NATS_URL unset: nats-server with JetStream, store in .tessera/nats, admitting only its users:
  one per service (permissions from tessera_kit.access) and an admin (`.tessera/nats-admin-url`,
  for tools); new random passwords on every start, only bcrypt hashes in its config.
- Each service connects to PostgreSQL as its own role, which owns its schema (created or
  updated on every start with DATABASE_URL's admin credentials, see tessera_kit.provision).
- Admin client: TESSERA_ADMIN_CLIENT_ID/SECRET, else generated once into .tessera/admin-client.json.
- Internal key (the gateway signs what it forwards, the services check it): TESSERA_INTERNAL_KEY,
  else a new one for each run, given to every service's environment and nowhere else.
- Gateway on $PORT (default 3001, the default tenant) and $ADMIN_PORT (default 3002, the admin
  tenant: ADMIN_ENDPOINT); the other services on free ports the OS picks (so a second
  checkout can run beside this one), unless pinned: TESSERA_<NAME>_PORT, e.g.
  TESSERA_AUDIT_LOG_PORT=3105; the banner lists them.
- --replicas N (`make run RUN_ARGS="--replicas 2"`): N processes of every service but the
  gateway (identity, identity-2, ...), each on a free port; the gateway balances among them.
- Logs: every line on stdout as `[service] ...`, and in .tessera/logs/<name>.log
  (postgres.log and nats.log only go to files).

When a service dies, a loud report (name, exit code, last lines) goes to stderr and the other
services keep running, so you can read its log and keep using the rest; the runner then exits
with status 1 when you stop it. With --exit-on-crash it stops everything and exits 1 at once.
A service that fails while starting always aborts the start (status 1).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import FrameType

from .admin_client import AdminClient, load_or_create_admin_client
from .identities import service_identities
from tessera_events.subscribers import parse_subscribers
from tessera_kit.access import nats_user

from .nats import NatsAccess, NatsError, start_nats
from .ports import free_ports, port_is_free
from .postgres import PostgresError, connections_for, create_database, start_postgres
from .processes import DirectoryInUse
from .services import ADMIN_GATEWAY, ADMIN_GATEWAY_SPEC, GATEWAY, ServiceSpec, ServiceStack, ServiceStartError, available_services
from .supervisor import Supervisor

DATABASE_NAME = "tessera"
MANAGEMENT_API_RESOURCE = "https://default.logto.app/api"


def _raise_keyboard_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _say(text: str) -> None:
    print(f"[devstack] {text}", flush=True)


def port_variable(spec: ServiceSpec) -> str:
    """Pins a service's port in `make run`, e.g. TESSERA_AUDIT_LOG_PORT (the gateway's is PORT)."""
    return "PORT" if spec.name == GATEWAY else spec.url_variable.removesuffix("_URL") + "_PORT"


def choose_ports(services: Sequence[ServiceSpec], environ: Mapping[str, str]) -> dict[str, int]:
    """The gateway on $PORT (default 3001); every other service on its pinned port, else on a
    free one: only the gateway's port matters to a user, and fixed ones collide with a second
    `make run` on the same machine."""
    pinned = {
        spec.name: int(environ[port_variable(spec)])
        for spec in services
        if environ.get(port_variable(spec))
    }
    pinned.setdefault(GATEWAY, 3001)
    unpinned = [spec.name for spec in services if spec.name not in pinned]
    return {
        **{spec.name: pinned[spec.name] for spec in services if spec.name in pinned},
        **dict(zip(unpinned, free_ports(len(unpinned)))),
    }


def _banner(stack: ServiceStack, admin: AdminClient) -> str:
    rule = "=" * 72
    services = ", ".join(f"{name} :{stack.ports[name]}" for name in stack.names)
    lines = [
        rule,
        f"Tessera is running at {stack.url}"
        + ("" if GATEWAY in stack.names else "  (no gateway installed yet: nothing answers there)"),
        *([f"  admin tenant (the console's users, /me): {stack.admin_url}"] if stack.admin_url else []),
        f"  services: {services or 'none installed'}",
        f"  admin client id:     {admin.id}",
        f"  admin client secret: {admin.secret}",
        "  Management API token:",
        f'    curl -s -u "{admin.id}:{admin.secret}" -d grant_type=client_credentials \\',
        f"      -d resource={MANAGEMENT_API_RESOURCE} -d scope=all {stack.url}/oidc/token",
        "Ctrl-C stops everything.",
        rule,
    ]
    return "\n".join(lines)


def _write_secret(path: Path, value: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(value + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tessera_devstack.run",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--state-dir", default=".tessera", help="data, logs, credentials")
    parser.add_argument(
        "--exit-on-crash",
        action="store_true",
        help="stop everything and exit 1 as soon as a service dies",
    )
    parser.add_argument("--replicas", type=int, default=1,
                        help="processes per service behind the gateway (default 1)")
    args = parser.parse_args(argv)
    if args.replicas < 1:
        parser.error("--replicas must be at least 1")

    state_dir = Path(args.state_dir).absolute()
    log_dir = state_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    previous_handlers = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    # Ctrl-C and `kill` both stop everything; installed explicitly because a shell starting us
    # in the background would leave SIGINT ignored.
    signal.signal(signal.SIGINT, _raise_keyboard_interrupt)
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)

    supervisor = Supervisor(log_dir=log_dir, echo=True)
    cleanup = contextlib.ExitStack()
    cleanup.callback(supervisor.close)
    exit_code = 0
    try:
        services = available_services()
        ports = choose_ports(services, os.environ)
        # The admin tenant's listener (Logto's admin endpoint): ADMIN_PORT, default 3002.
        # A stack whose gateway was moved with PORT puts its admin listener on a free port (the
        # banner says which), so a second checkout runs beside the first with PORT alone.
        default_admin = free_ports(1)[0] if os.environ.get("PORT") else ADMIN_GATEWAY_SPEC.default_port
        admin_port = int(os.environ.get("ADMIN_PORT", str(default_admin)))
        if any(s.name == GATEWAY for s in services):
            ports[ADMIN_GATEWAY] = admin_port
        busy = {name: port for name, port in ports.items() if not port_is_free(port)}
        if busy:  # before starting anything: fail in a second, not after PostgreSQL
            raise ServiceStartError(
                "ports already in use: "
                + ", ".join(f"{n} :{p}" for n, p in busy.items())
                + " (another `make run`? set PORT and ADMIN_PORT to move the gateway's listeners, or unset TESSERA_<NAME>_PORT)"
            )

        database_url = os.environ.get("DATABASE_URL")
        if not database_url:
            _say(
                f"starting PostgreSQL (data {state_dir / 'postgres'}, "
                f"log {log_dir / 'postgres.log'})"
            )
            postgres = start_postgres(
                state_dir / "postgres", log_path=log_dir / "postgres.log",
                max_connections=connections_for([s.name for s in services], replicas=args.replicas),
            )
            cleanup.callback(postgres.stop)
            database_url = create_database(postgres.dsn, DATABASE_NAME)
            _say(f"PostgreSQL ready: {database_url}")

        namespace = os.environ.get("TESSERA_NAMESPACE", "")
        nats_url = os.environ.get("NATS_URL")
        nats_access: NatsAccess | None = None
        if not nats_url:
            _say(f"starting nats-server (store {state_dir / 'nats'}, log {log_dir / 'nats.log'})")
            # Outside subscribers (tessera-subscriber), read-only on the events they are given:
            # TESSERA_SUBSCRIBERS="crm=identity.user.created,identity.user.*;mailer=experience.>"
            subscribers = parse_subscribers(os.environ.get("TESSERA_SUBSCRIBERS", ""))
            nats_access = NatsAccess.for_stack([namespace], subscribers=subscribers)
            nats = start_nats(state_dir / "nats", log_path=log_dir / "nats.log", access=nats_access)
            cleanup.callback(nats.stop)
            nats_url = nats.admin_url
            _write_secret(state_dir / "nats-admin-url", nats_url)
            _say(f"NATS ready: {nats.url} (one user per service; admin URL in {state_dir / 'nats-admin-url'})")
            for name in subscribers:
                user = nats_access.user(nats_user(namespace, name))
                _write_secret(state_dir / f"nats-subscriber-{name}", f"{user.name}\n{user.password}\n")
                _say(f"subscriber {name}: NATS user {user.name}, password in {state_dir / f'nats-subscriber-{name}'}")

        admin = load_or_create_admin_client(state_dir / "admin-client.json")
        if not services:
            _say("no service is installed yet (no tessera_*.main module importable)")
        try:
            identities = service_identities(
                [s.name for s in services], admin_dsn=database_url, nats_access=nats_access,
                nats_url=nats_url, namespace=namespace,
            )
        except Exception as error:  # e.g. a DATABASE_URL whose role may not create roles
            raise ServiceStartError(
                f"cannot create the services' PostgreSQL roles ({type(error).__name__}: {error});"
                " DATABASE_URL must name a superuser or a CREATEROLE owner of the database"
            ) from error
        stack = ServiceStack(
            supervisor=supervisor,
            services=services,
            ports={name: port for name, port in ports.items() if name != ADMIN_GATEWAY},
            database_url=database_url,
            nats_url=nats_url,
            namespace=namespace,
            service_env=identities.env,
            endpoint=os.environ.get("ENDPOINT"),
            admin_port=ports.get(ADMIN_GATEWAY),
            admin_endpoint=os.environ.get("ADMIN_ENDPOINT"),
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            admin_client=admin,
            # Fixed by the caller if set (e.g. to call a service's port by hand), else a new one.
            internal_key=os.environ.get("TESSERA_INTERNAL_KEY") or None,
            replicas=args.replicas,
        )
        cleanup.callback(stack.stop_all)  # runs before supervisor.close: gateway first
        _say(f"starting {', '.join(stack.names) or 'nothing'}")
        stack.start_all()
        supervisor.release_fork_server()  # ~20 MB: a service restarted later is exec'd
        print(_banner(stack, admin), flush=True)

        while True:
            death = supervisor.wait_for_death(timeout=1.0)
            if death is None:
                continue
            exit_code = 1
            if args.exit_on_crash:
                _say(f"{death.name} died and --exit-on-crash is set: stopping everything")
                break
            _say(f"{death.name} is down; the others keep running (Ctrl-C to stop, exit status 1)")
    except KeyboardInterrupt:
        print(flush=True)
        _say("stopping")
        exit_code = 1 if supervisor.deaths else exit_code
    except (PostgresError, NatsError, ServiceStartError, DirectoryInUse) as error:
        print(f"\n[devstack] cannot start: {error}", file=sys.stderr, flush=True)
        exit_code = 1
    finally:
        # A second Ctrl-C must not cut the cleanup short; every stop has its own timeout.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            cleanup.close()
        finally:
            for sig, handler in previous_handlers.items():
                signal.signal(sig, handler)
    _say(f"stopped (exit status {exit_code})")
    return exit_code


if __name__ == "__main__":
    sys.exit(main())

"""The service table and a stack that runs the importable services as processes.

A service is started as `python -m tessera_kit.serve <module>:app` with its configuration in
the environment. Services that are not installed (module not importable) are skipped, so a
new service joins `make run` and the e2e stack just by existing. The gateway starts last,
once every upstream it routes to is ready.

With `replicas=N` every service but the gateway runs as N processes: `identity`, `identity-2`,
... each on its own port, and the gateway gets their URLs comma-separated (it balances among
them, tessera_gateway.replicas). Each replica is a process name of its own for the Supervisor,
so one can be stopped, killed or started alone.

Each process is forked from the Supervisor's fork server (tessera_kit.forkserver: the
services share the interpreter and libraries it preloaded, ~100 MB less for a stack) unless
`fork=False` or TESSERA_FORK_SERVER=off; either way it is a process of its own with its own
pid, environment, port and log.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from .admin_client import AdminClient
from .internal_key import INTERNAL_KEY_VARIABLE, generate_internal_key
from .ports import LOCALHOST, free_ports, port_is_free
from .supervisor import Supervisor

GATEWAY = "gateway"
SERVE_MODULE = "tessera_kit.serve"


@dataclass(frozen=True)
class ServiceSpec:
    name: str
    default_port: int
    package_name: str = ""  # default: tessera_<name>

    @property
    def package(self) -> str:
        return self.package_name or "tessera_" + self.name.replace("-", "_")

    @property
    def module(self) -> str:
        """The python module holding the ASGI app, e.g. tessera_audit_log.main."""
        return self.package + ".main"

    @property
    def app(self) -> str:
        return self.module + ":app"

    @property
    def url_variable(self) -> str:
        """How the gateway learns where this service is, e.g. TESSERA_AUDIT_LOG_URL."""
        return f"TESSERA_{self.name.upper().replace('-', '_')}_URL"

    def is_available(self) -> bool:
        # find_spec on the package first: checking "pkg.main" would import a missing "pkg" and raise
        if importlib.util.find_spec(self.package) is None:
            return False
        return importlib.util.find_spec(self.module) is not None


SERVICES: tuple[ServiceSpec, ...] = (
    ServiceSpec(GATEWAY, 3001),
    ServiceSpec("identity", 3101),
    ServiceSpec("rbac", 3102),
    ServiceSpec("connectors", 3103),
    ServiceSpec("experience", 3104),
    ServiceSpec("audit-log", 3105),
    ServiceSpec("webhook-dispatcher", 3106),
)


# The admin tenant's listener (Logto's admin endpoint, 3002): the gateway again, for the tenant
# `admin`. Not in SERVICES: it is no service of its own (no database, no NATS user).
ADMIN_GATEWAY = "gateway-admin"
ADMIN_GATEWAY_SPEC = ServiceSpec(ADMIN_GATEWAY, 3002, package_name="tessera_gateway")
GATEWAYS = frozenset({GATEWAY, ADMIN_GATEWAY})
ADMIN_TENANT = "admin"


def service_spec(name: str) -> ServiceSpec:
    for spec in SERVICES:
        if spec.name == name:
            return spec
    raise KeyError(f"unknown service {name!r}; known: {[s.name for s in SERVICES]}")


def available_services(specs: Iterable[ServiceSpec] = SERVICES) -> list[ServiceSpec]:
    """Installed services in start order: upstreams in table order, the gateway last."""
    found = [spec for spec in specs if spec.is_available()]
    return [s for s in found if s.name != GATEWAY] + [s for s in found if s.name == GATEWAY]


class ServiceStartError(RuntimeError):
    pass


FORK_SERVER_VARIABLE = "TESSERA_FORK_SERVER"


def fork_by_default(environ: Mapping[str, str]) -> bool:
    return environ.get(FORK_SERVER_VARIABLE, "on").strip().lower() not in ("off", "0", "false", "no")


class ServiceStack:
    """Services of one environment (make run, or one pytest session) under one Supervisor."""

    def __init__(
        self,
        *,
        supervisor: Supervisor,
        services: Sequence[ServiceSpec],
        ports: Mapping[str, int],
        database_url: str,
        nats_url: str,
        namespace: str = "",
        endpoint: str | None = None,
        log_level: str = "INFO",
        extra_env: Mapping[str, str] | None = None,  # e.g. admin client, TESSERA_DEV_AUTH
        base_env: Mapping[str, str] | None = None,
        cwd: Path | str | None = None,
        admin_client: AdminClient | None = None,
        # Per service, on top of the shared env: its own DATABASE_URL and NATS user
        # (identities.service_identities).
        service_env: Mapping[str, Mapping[str, str]] | None = None,
        internal_key: str | None = None,  # default: a new one for this stack
        # The admin tenant's gateway port (with a gateway in the stack); None: no admin tenant.
        admin_port: int | None = None,
        admin_endpoint: str | None = None,
        # Processes per service (the gateway excepted); replica k > 1 is `<name>-<k>` on a port
        # of `ports` if given there, else on a free one.
        replicas: int = 1,
        # Fork the processes from the Supervisor's fork server (default: unless the base
        # environment says TESSERA_FORK_SERVER=off).
        fork: bool | None = None,
    ):
        if replicas < 1:
            raise ValueError(f"replicas must be at least 1, not {replicas}")
        self.supervisor = supervisor
        self.replicas = replicas
        self.service_env = {name: dict(values) for name, values in (service_env or {}).items()}
        self.admin_client = admin_client
        self.services = list(services)
        self.ports = dict(ports)
        gateway_port = self.ports.get(GATEWAY, service_spec(GATEWAY).default_port)
        self.url = (endpoint or f"http://localhost:{gateway_port}").rstrip("/")
        self.admin_url: str | None = None
        if admin_port is not None and any(spec.name == GATEWAY for spec in self.services):
            self.services.append(ADMIN_GATEWAY_SPEC)
            self.ports[ADMIN_GATEWAY] = admin_port
            self.admin_url = (admin_endpoint or f"http://localhost:{admin_port}").rstrip("/")
        # Process name -> its service, in start order (replicas of a service side by side).
        self._instances: dict[str, ServiceSpec] = {}
        for spec in self.services:
            copies = 1 if spec.name in GATEWAYS else replicas
            for name in [spec.name] + [f"{spec.name}-{k}" for k in range(2, copies + 1)]:
                self._instances[name] = spec
        missing = [name for name in self._instances if name not in self.ports]
        self.ports.update(zip(missing, free_ports(len(missing)) if missing else []))
        self.cwd = cwd
        # Shared by the gateway (signs) and every service (verifies); nothing else has it.
        self.internal_key = internal_key or generate_internal_key()
        self._base_env = dict(os.environ if base_env is None else base_env)
        self.fork = fork_by_default(self._base_env) if fork is None else fork
        # What every service shares; per-service values (PORT, upstream URLs) come on top.
        self.env: dict[str, str] = {
            # Logto's test connectors (mock-email-service, ...), so Logto's suite and SDK test
            # setups run unchanged against a local stack; never set in deploy/.
            "TESSERA_MOCK_CONNECTORS": "true",
            # Local receivers (localhost) must work in `make run` and the tests; deploy/ never
            # sets it, so production hooks cannot reach private addresses (SSRF guard).
            "TESSERA_WEBHOOKS_ALLOW_PRIVATE": self._base_env.get("TESSERA_WEBHOOKS_ALLOW_PRIVATE", "true"),
            # ... and which send codes to one address in quick succession: no resend cooldown
            # (the other code limits keep their defaults; deploy/ keeps the cooldown).
            "TESSERA_VERIFICATION_CODE_RESEND_COOLDOWN": "off",
            **(admin_client.as_env() if admin_client else {}),
            **(extra_env or {}),
            "HOST": LOCALHOST,
            "DATABASE_URL": database_url,
            "NATS_URL": nats_url,
            "TESSERA_NAMESPACE": namespace,
            "ENDPOINT": self.url,
            **({"ADMIN_ENDPOINT": self.admin_url} if self.admin_url else {}),
            "LOG_LEVEL": log_level,
            INTERNAL_KEY_VARIABLE: self.internal_key,
        }

    # -------------------------------------------------------------- description

    @property
    def names(self) -> list[str]:
        """Every process of the stack: each replica of each service, then the gateways."""
        return list(self._instances)

    def replica_names(self, service: str) -> list[str]:
        """The processes of one service, e.g. ["identity", "identity-2"]."""
        return [name for name, spec in self._instances.items() if spec.name == service]

    def spec(self, name: str) -> ServiceSpec:
        """The service a process (a service's name, or one of its replicas') runs."""
        try:
            return self._instances[name]
        except KeyError:
            raise KeyError(f"service {name!r} is not in this stack; running: {self.names}") from None

    def service_url(self, name: str) -> str:
        self.spec(name)
        return f"http://{LOCALHOST}:{self.ports[name]}"

    def environment_for(self, name: str) -> dict[str, str]:
        spec = self.spec(name)
        env = {**self._base_env, **self.env, "PORT": str(self.ports[name]), "PYTHONUNBUFFERED": "1"}
        env.update(self.service_env.get(GATEWAY if name == ADMIN_GATEWAY else spec.name, {}))
        if spec.name in GATEWAYS:
            for upstream in self.services:
                if upstream.name not in GATEWAYS:
                    env[upstream.url_variable] = ",".join(
                        self.service_url(replica) for replica in self.replica_names(upstream.name))
        if spec.name == ADMIN_GATEWAY:
            env["TESSERA_TENANT_ID"] = ADMIN_TENANT  # the tenant of the endpoint it listens on
        return env

    def command_for(self, name: str) -> list[str]:
        return [sys.executable, "-m", SERVE_MODULE, self.spec(name).app]

    # -------------------------------------------------------------- lifecycle

    def start_all(self, timeout: float = 90.0) -> None:
        """Start the upstreams together, wait until they are ready, then the gateway."""
        upstreams = [name for name in self.names if name not in GATEWAYS]
        for name in upstreams:
            self._launch(name)
        self.wait_ready(upstreams, timeout)
        gateways = [name for name in self.names if name in GATEWAYS]
        for name in gateways:
            self._launch(name)
        self.wait_ready(gateways, timeout)

    def start_service(self, name: str, timeout: float = 60.0, wait: bool = True) -> None:
        self._launch(name)
        if wait:
            self.wait_ready([name], timeout)

    def stop_service(self, name: str, timeout: float = 10.0) -> int | None:
        """Stop one service on purpose (not reported as a crash); returns its exit code."""
        self.spec(name)
        return self.supervisor.stop(name, timeout=timeout)

    def stop_all(self, timeout: float = 10.0) -> None:
        """Gateway first, then the upstreams in reverse order."""
        for name in reversed(self.names):
            if name in self.supervisor.names:
                self.supervisor.stop(name, timeout=timeout)

    def _launch(self, name: str) -> None:
        port = self.ports[name]
        if not port_is_free(port):
            raise ServiceStartError(f"[{name}] port {port} on {LOCALHOST} is already in use")
        self.supervisor.start(
            name, self.command_for(name), env=self.environment_for(name), cwd=self.cwd, fork=self.fork
        )

    # -------------------------------------------------------------- readiness

    def is_ready(self, name: str) -> bool:
        try:
            response = httpx.get(f"{self.service_url(name)}/health/ready", timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def wait_ready(self, names: Sequence[str], timeout: float = 60.0) -> None:
        """Poll GET /health/ready of each until 200; fail fast if one exits, with its last lines."""
        deadline = time.monotonic() + timeout
        pending = list(names)
        while pending:
            for name in list(pending):
                process = self.supervisor.get(name)
                if process.returncode is not None:
                    raise ServiceStartError(
                        f"[{name}] exited with code {process.returncode} before it was ready.\n"
                        f"--- last lines of {name} ---\n{self._tail(name)}"
                    )
                if self.is_ready(name):
                    pending.remove(name)
            if not pending:
                return
            if time.monotonic() > deadline:
                details = "\n".join(
                    f"--- last lines of {name} ({self.service_url(name)}/health/ready) ---\n"
                    f"{self._tail(name)}"
                    for name in pending
                )
                raise ServiceStartError(
                    f"not ready after {timeout:.0f}s: {', '.join(pending)}\n{details}"
                )
            time.sleep(0.1)

    # -------------------------------------------------------------- logs

    def log_path(self, name: str) -> Path | None:
        return self.supervisor.log_path(name)

    def logs(self, name: str) -> str:
        return self.supervisor.logs(name)

    def _tail(self, name: str, lines: int = 40) -> str:
        return self.supervisor.get(name).tail(lines) or "(no output)"

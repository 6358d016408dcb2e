"""PostgreSQL: one asyncpg pool per service, its own schema, SQL migrations at start.

Migrations are plain `.sql` files applied in name order, each in its own
transaction, under an advisory lock keyed by the schema, so several replicas of a
service starting together migrate once. The kit's own tables (outbox, inbox, dead
letters) are migrated first, into the same schema.
"""

from __future__ import annotations

import asyncio
import zlib
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator

import asyncpg
import msgspec

from tessera_kit.config import DB_IDLE_SECONDS
from tessera_kit.logging import get_logger

KIT_MIGRATIONS = Path(__file__).parent / "migrations"
# A brief connection's statement waits this long for a lock (then fails: the job's next run
# tries again), and runs this long at most (a connection that stopped answering); the second
# is far above what an unbatched purge of a large backlog takes.
BRIEF_LOCK_TIMEOUT_SECONDS = 60.0
BRIEF_COMMAND_TIMEOUT_SECONDS = 900.0
log = get_logger(__name__)


async def _init_connection(conn: asyncpg.Connection) -> None:
    for pg_type in ("json", "jsonb"):
        await conn.set_type_codec(
            pg_type,
            encoder=lambda value: msgspec.json.encode(value).decode(),
            decoder=msgspec.json.decode,
            schema="pg_catalog",
        )


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Replaces asyncpg's reset on release (advisory unlock, CLOSE ALL, UNLISTEN, RESET ALL:
    four statements and a round trip on every release, ~9 % of a busy service's CPU).
    Services keep no session state on pooled connections: no SET, and the two users of
    session locks, LISTEN or SET (migrate, the outbox relay) undo them in `finally`. asyncpg
    still rolls back a transaction left open before calling this."""


def _server_settings(schema: str) -> dict[str, str]:
    # JIT only slows the short queries services run.
    return {"search_path": f"{schema},public", "jit": "off"}


async def create_pool(dsn: str, schema: str, *, max_size: int = 10,
                      idle_seconds: float = DB_IDLE_SECONDS) -> asyncpg.Pool:
    await ensure_schema(dsn, schema)
    return await asyncpg.create_pool(
        dsn,
        min_size=1,
        max_size=max_size,
        max_inactive_connection_lifetime=idle_seconds,
        init=_init_connection,
        reset=_keep_session,
        server_settings=_server_settings(schema),
    )


@asynccontextmanager
async def brief_connection(dsn: str, schema: str, *, timeout: float = 10.0,
                           lock_timeout: float = BRIEF_LOCK_TIMEOUT_SECONDS,
                           command_timeout: float = BRIEF_COMMAND_TIMEOUT_SECONDS) -> AsyncIterator[asyncpg.Connection]:
    """A connection of its own, set up as the pool's are, closed when the block ends: for work
    done every half minute or more (timed purges, key refreshes), which would otherwise keep a
    pooled connection, a PostgreSQL backend of ~2 MB, alive through `db_idle_seconds`.
    A statement waiting `lock_timeout` seconds for a lock fails (LockNotAvailableError), and
    one still running after `command_timeout` is cancelled (TimeoutError): a job stuck behind
    a lock or on a dead connection fails that run instead of holding its job for good."""
    settings = {**_server_settings(schema), "lock_timeout": f"{round(lock_timeout * 1000)}ms"}
    conn = await asyncpg.connect(dsn, timeout=timeout, command_timeout=command_timeout, server_settings=settings)
    try:
        await _init_connection(conn)
        yield conn
    finally:
        # A close that fails or hangs ends the session at once instead, and never replaces
        # what the block raised (or fails a run that worked).
        try:
            await asyncio.wait_for(conn.close(), timeout)
        except asyncio.CancelledError:
            conn.terminate()
            raise
        except Exception as exc:
            conn.terminate()
            log.warning("closing a brief connection failed", error=repr(exc))


async def ensure_schema(dsn: str, schema: str) -> None:
    """The schema must exist. A service's own role (see tessera_kit.provision) finds it made
    by the admin step and may not create schemas; a superuser DSN (unit tests) creates it."""
    conn = await asyncpg.connect(dsn)
    try:
        if await conn.fetchval("SELECT 1 FROM pg_namespace WHERE nspname = $1", schema):
            return
        try:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
        except asyncpg.UniqueViolationError:
            pass  # a replica created it at the same moment
        except asyncpg.InsufficientPrivilegeError as exc:
            raise RuntimeError(
                f"schema {schema!r} does not exist and this role may not create it: run the"
                " admin step first (python -m tessera_kit.provision)"
            ) from exc
    finally:
        await conn.close()


def _lock_key(schema: str) -> int:
    return zlib.crc32(f"tessera-migrate:{schema}".encode())


def migration_files(*folders: Path) -> list[tuple[str, Path]]:
    """(name, path) of every migration; kit files are named `kit/<file>`."""
    files: list[tuple[str, Path]] = []
    for folder in folders:
        prefix = "kit/" if folder == KIT_MIGRATIONS else ""
        files.extend((prefix + p.name, p) for p in sorted(folder.glob("*.sql")))
    return files


async def migrate(pool: asyncpg.Pool, schema: str, folder: Path | None) -> list[str]:
    """Apply pending migrations; returns the names applied now."""
    folders = [KIT_MIGRATIONS] + ([folder] if folder else [])
    applied_now: list[str] = []
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(schema))
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " name text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            for name, path in migration_files(*folders):
                if name in done:
                    continue
                async with conn.transaction():
                    await conn.execute(path.read_text())
                    await conn.execute("INSERT INTO schema_migrations (name) VALUES ($1)", name)
                applied_now.append(name)
                log.info("migration applied", schema=schema, migration=name)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(schema))
    if applied_now:
        # The backend that ran the DDL keeps the catalog entries of every table and index it
        # created (~3 MB of PostgreSQL memory per service, for as long as the pool keeps the
        # connection): replace it with a fresh one, which caches only what queries use.
        await pool.expire_connections()
    return applied_now

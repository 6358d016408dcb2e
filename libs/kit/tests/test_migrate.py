"""Migrations with several replicas: a rolling update starts new pods together, each runs
`migrate` at start-up; the advisory lock makes exactly one of them apply each file."""

import asyncio

import asyncpg

from tessera_kit.db import _lock_key, create_pool, migrate
from tessera_kit.testing import sessions_ended


async def test_replicas_starting_together_migrate_once(database_url, unique, tmp_path):
    # Neither file may run twice: the CREATE would fail, the INSERT would add a second row.
    (tmp_path / "0001_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    (tmp_path / "0002_first_thing.sql").write_text("INSERT INTO things VALUES (1);")
    replicas = [await create_pool(database_url, unique, max_size=1) for _ in range(4)]
    try:
        applied = await asyncio.gather(*(migrate(pool, unique, tmp_path) for pool in replicas))
        mine = [names for names in applied if "0001_things.sql" in names]
        assert len(mine) == 1 and "0002_first_thing.sql" in mine[0]
        assert all(
            not {"0001_things.sql", "0002_first_thing.sql"} & set(names)
            for names in applied if names is not mine[0]
        )
        async with replicas[0].acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM things") == 1
            names = await conn.fetch("SELECT name FROM schema_migrations WHERE name NOT LIKE 'kit/%'")
            assert sorted(r["name"] for r in names) == ["0001_things.sql", "0002_first_thing.sql"]
            # the session lock is released: the next deploy's migrate does not wait forever
            assert await _migration_locks_held(conn, unique) == 0
            await conn.execute("SELECT pg_advisory_lock($1)", _lock_key(unique))
            assert await _migration_locks_held(conn, unique) == 1  # the query sees a held one
            await conn.execute("SELECT pg_advisory_unlock($1)", _lock_key(unique))
    finally:
        for pool in replicas:
            await pool.close()


async def test_a_failing_migration_leaves_nothing_half_applied(database_url, unique, tmp_path):
    (tmp_path / "0001_ok.sql").write_text("CREATE TABLE kept (id int);")
    (tmp_path / "0002_broken.sql").write_text("CREATE TABLE half (id int); SELECT no_such_function();")
    pool = await create_pool(database_url, unique, max_size=1)
    try:
        try:
            await migrate(pool, unique, tmp_path)
        except asyncpg.UndefinedFunctionError:
            pass
        else:
            raise AssertionError("the broken migration did not fail")
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT to_regclass('kept') IS NOT NULL")
            assert await conn.fetchval("SELECT to_regclass('half') IS NULL")
            done = {r["name"] for r in await conn.fetch("SELECT name FROM schema_migrations")}
            assert "0001_ok.sql" in done and "0002_broken.sql" not in done
    finally:
        await pool.close()


async def _migration_locks_held(conn, schema: str) -> int:
    # a bigint advisory key below 2**32 shows as objid, with classid 0 and objsubid 1
    return await conn.fetchval(
        "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
        " AND classid = 0 AND objid = $1 AND objsubid = 1",
        _lock_key(schema),
    )


async def test_the_backend_that_ran_the_migrations_is_not_kept_in_the_pool(database_url, unique, tmp_path):
    """It holds the catalog entries of every table it created (PostgreSQL memory, idle); the
    pool goes on with a fresh connection. A start with nothing to apply keeps its connection."""
    (tmp_path / "0001_things.sql").write_text("CREATE TABLE things (id int PRIMARY KEY);")
    pool = await create_pool(database_url, unique, max_size=2)
    try:
        async with pool.acquire() as conn:
            before = await conn.fetchval("SELECT pg_backend_pid()")
        assert await migrate(pool, unique, tmp_path)  # applied something
        async with pool.acquire() as conn:
            after = await conn.fetchval("SELECT pg_backend_pid()")
            assert after != before
            await sessions_ended(conn, [before])  # the backend that ran the migrations ends
        assert await migrate(pool, unique, tmp_path) == []
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_backend_pid()") == after
    finally:
        await pool.close()

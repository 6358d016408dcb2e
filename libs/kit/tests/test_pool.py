"""A service's pool gives back to PostgreSQL what it does not use: each connection is a backend
of a few MB, and an idle service should hold only what a task keeps (its outbox relay's)."""

import asyncio

from tessera_kit.db import create_pool


async def test_connections_unused_for_the_idle_time_are_closed_and_a_held_one_stays(database_url, unique):
    pool = await create_pool(database_url, unique, idle_seconds=0.3)
    try:
        held = await pool.acquire()  # as the relay holds its own

        async def query() -> None:
            async with pool.acquire() as conn:
                await conn.execute("SELECT pg_sleep(0.05)")

        await asyncio.gather(*(query() for _ in range(4)))
        assert pool.get_size() == 5
        for _ in range(100):
            if pool.get_size() == 1:
                break
            await asyncio.sleep(0.02)
        assert pool.get_size() == 1  # only the one in use
        assert await held.fetchval("SELECT 1") == 1
        await pool.release(held)
        async with pool.acquire() as conn:  # and a new request opens one again
            assert await conn.fetchval("SELECT 2") == 2
    finally:
        await pool.close()

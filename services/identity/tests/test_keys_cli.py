"""The operator's key command (`python -m tessera_identity.oidc.keys`), on a database of its own."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import asyncpg

import tessera_identity
from tessera_kit.db import create_pool, migrate


async def test_rotate_now_then_list_on_a_connection_closed_after(fresh_database):
    url = fresh_database()
    pool = await create_pool(url, "identity", max_size=1)
    try:
        await migrate(pool, "identity", Path(tessera_identity.__file__).parent / "migrations")
    finally:
        await pool.close()

    printed = await _keys(url, "rotate", "--now")
    assert len(printed) == 3, printed
    staged, promoted, listed = printed
    kid = staged.split()[1].rstrip(";")  # "staged <kid>; it signs after ..."
    assert promoted == f"promoted {kid}"
    assert listed.split()[:3] == ["current", "ES384", kid]
    assert (await _keys(url, "list"))[0].split()[:3] == ["current", "ES384", kid]

    # Its session is over once it returns (a server process leaves moments after its client).
    conn = await asyncpg.connect(url)
    try:
        for _ in range(250):
            if not await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                       " AND pid <> pg_backend_pid()"):
                break
            await asyncio.sleep(0.02)
        assert await conn.fetchval("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                                   " AND pid <> pg_backend_pid()") == 0
        assert await conn.fetchval("SELECT count(*) FROM identity.oidc_signing_keys") == 1
    finally:
        await conn.close()


_PRINTED = {"staged", "promoted", "current", "next", "retired"}


async def _keys(database_url: str, *args: str) -> list[str]:
    """Run the command as an operator does; the lines it printed for them (not its log lines)."""
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "tessera_identity.oidc.keys", *args],
        env={**os.environ, "DATABASE_URL": database_url}, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return [line for line in done.stdout.splitlines() if line.split(" ", 1)[0] in _PRINTED]

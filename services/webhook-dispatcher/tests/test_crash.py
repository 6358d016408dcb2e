"""kill -9 of the dispatcher while a delivery is in flight: it is delivered after a restart,
with the same delivery id and body (at least once)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncpg
import pytest

from tessera_devstack.ports import free_port
from tessera_events import STREAMS
from tessera_events.experience import InteractionContext, InteractionSignedIn
from tessera_kit.db import create_pool
from tessera_kit.testing import publisher
from tessera_webhook_dispatcher.hooks import store as hooks

SCHEMA = "webhook_dispatcher"


async def _start(env: dict[str, str], log) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tessera_kit.serve", "tessera_webhook_dispatcher.main:app",
        env=env, stdout=log, stderr=log, stdin=asyncio.subprocess.DEVNULL,
    )


async def _until(condition, timeout: float = 60.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not (value := await condition()):
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met")
        await asyncio.sleep(0.05)
    return value


async def test_kill_9_mid_request_then_restart_delivers(fresh_database, nats_url, namespace, receiver, tmp_path):
    database = fresh_database()
    ns = f"{namespace}crash"
    env = {
        **os.environ, "DATABASE_URL": database, "NATS_URL": nats_url, "TESSERA_NAMESPACE": ns,
        "HOST": "127.0.0.1", "PORT": str(free_port()), "LOG_LEVEL": "warning", "PYTHONUNBUFFERED": "1",
        "TESSERA_WEBHOOKS_ALLOW_PRIVATE": "true",
        # A lease that runs out soon after the crash; the timeout stays below it.
        "TESSERA_WEBHOOKS_LEASE_SECONDS": "3", "TESSERA_WEBHOOKS_TIMEOUT_SECONDS": "2",
    }
    log = open(tmp_path / "dispatcher.log", "ab")
    processes: list[asyncio.subprocess.Process] = []
    pool = None
    try:
        processes.append(await _start(env, log))
        conn = await asyncpg.connect(database)
        try:
            await _until(lambda: conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"{SCHEMA}.deliveries"))
        finally:
            await conn.close()
        pool = await create_pool(database, SCHEMA, max_size=2)
        async with pool.acquire() as conn:
            hook = await hooks.insert_hook(conn, "default", {
                "name": "crash", "event": None, "events": ["PostSignIn"], "config": {"url": receiver.url},
                "enabled": True})
        receiver.hold = asyncio.Event()  # the first request hangs until the process is gone
        async with publisher(database, nats_url, namespace=ns, stream=STREAMS["experience"],
                             schema="experience") as experience:
            await experience.publish(InteractionSignedIn(user_id="u1", context=InteractionContext(interaction_id="i1")))
            await receiver.wait_for(1, timeout=60)
        first = processes[-1]
        first.send_signal(signal.SIGKILL)
        assert await first.wait() == -signal.SIGKILL
        row = await pool.fetchrow("SELECT id, status, attempts FROM deliveries WHERE hook_id = $1", hook["id"])
        assert (row["status"], row["attempts"]) == ("pending", 0)  # in flight when it died
        receiver.hold.set()
        processes.append(await _start(env, log))
        await receiver.wait_for(2, timeout=60)
        delivered = await _until(lambda: pool.fetchrow(
            "SELECT status, attempts FROM deliveries WHERE id = $1 AND status = 'succeeded'", row["id"]))
        assert delivered["attempts"] == 1
        first_request, second_request = receiver.requests[:2]
        assert first_request.headers["webhook-id"] == second_request.headers["webhook-id"] == row["id"]
        assert first_request.body == second_request.body
    finally:
        for process in processes:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if pool is not None:
            await pool.close()
        log.close()


pytestmark = pytest.mark.timeout(180)

"""Upkeep on a timer (purging what expired): one task per job, started and stopped with the
service, surviving failures (the database may be away a while).

    purge = Periodic("lockout-purge", 600, lambda: lockout.purge_expired(ctx.pool), pool=ctx.pool)
    purge.start()  ...  await purge.stop()

With `pool`, one replica at a time runs the job: the leader, which holds a PostgreSQL advisory
lock (keyed by the schema and the job's name) on a connection of its own for as long as it
lives. The others try for the lock every few seconds, so when the leader dies (its session ends
and the lock with it) another takes over within `retry_seconds`. `tessera_periodic_leader{job}`
says which replica leads. Without `pool` the job runs in every replica.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Awaitable, Callable

import asyncpg

from tessera_kit import metrics
from tessera_kit.logging import get_logger

log = get_logger(__name__)

_TRY_LOCK = "SELECT pg_try_advisory_lock(hashtext('tessera-periodic:' || current_schema() || ':' || $1))"


_UNLOCK_TIMEOUT_SECONDS = 2.0


class Periodic:
    def __init__(self, name: str, every_seconds: float, job: Callable[[], Awaitable[object]], *,
                 at_start: bool = True, pool: asyncpg.Pool | None = None,
                 retry_seconds: float = 5.0) -> None:
        self.name = name
        self.every_seconds = every_seconds
        self.job = job
        self.at_start = at_start  # first run at once (at once on becoming leader), else after one period
        self.pool = pool
        self.retry_seconds = min(retry_seconds, every_seconds)  # how often a follower tries to lead
        self.runs = 0
        self.failures = 0
        self.is_leader = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            work = self._forever() if self.pool is None else self._lead_when_possible()
            self._task = asyncio.get_running_loop().create_task(work, name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _forever(self) -> None:
        if not self.at_start:
            await asyncio.sleep(self.every_seconds)
        while True:
            await self._run_once()
            await asyncio.sleep(self.every_seconds)

    async def _run_once(self) -> None:
        try:
            await self.job()
            self.runs += 1
            metrics.PERIODIC_RUNS.labels(self.name).inc()
        except Exception as exc:  # the next round will do
            self.failures += 1
            log.warning("periodic job failed", job=self.name, error=repr(exc))

    async def _lead_when_possible(self) -> None:
        assert self.pool is not None
        while True:
            try:
                async with self.pool.acquire() as conn:
                    try:
                        while not await conn.fetchval(_TRY_LOCK, self.name):
                            await asyncio.sleep(self.retry_seconds)  # another replica leads
                        self._set_leader(True)
                        await self._lead(conn)
                    finally:
                        self._set_leader(False)
                        try:  # bounded: a half-dead session must not hold up a shutdown
                            await asyncio.wait_for(conn.execute("SELECT pg_advisory_unlock_all()"),
                                                   _UNLOCK_TIMEOUT_SECONDS)
                        except BaseException:
                            conn.terminate()  # the lock must not stay with a pooled connection
                            raise
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database went away: try to lead again later
                log.warning("periodic job lost its lock connection", job=self.name, error=repr(exc))
                await asyncio.sleep(self.retry_seconds)

    async def _lead(self, conn: asyncpg.Connection) -> None:
        if not self.at_start:
            await self._hold(conn, self.every_seconds)
        while True:
            await conn.fetchval("SELECT 1")  # the session (and so the lock) is still ours
            await self._run_once()
            await self._hold(conn, self.every_seconds)

    async def _hold(self, conn: asyncpg.Connection, seconds: float) -> None:
        """Wait `seconds` as the leader, looking at the lock's session every `retry_seconds`: if
        it ended, another replica may lead by now, and this one stops saying it does (the error
        ends `_lead`) rather than at its next run, up to a period later."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(left, self.retry_seconds))
            await conn.fetchval("SELECT 1")

    def _set_leader(self, leading: bool) -> None:
        if leading != self.is_leader:
            log.info("periodic job leader" if leading else "periodic job no longer leader", job=self.name)
        self.is_leader = leading
        metrics.PERIODIC_LEADER.labels(self.name).set(1 if leading else 0)

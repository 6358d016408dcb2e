"""Upkeep on a timer (purging what expired): one task per job, started and stopped with the
service, surviving failures (the database may be away a while).

    purge = Periodic("lockout-purge", 600, purge_expired, leader=ctx.relay)
    purge.start()  ...  await purge.stop()

A service's timed database work goes through `ServiceContext.upkeep`, which builds this with its
relay as the leader and runs each job on a connection of its own, closed after
(tessera_kit.db.brief_connection).

With `leader` (the service's outbox relay), one replica at a time runs the job: the one whose
relay leads. The relay holds its advisory lock on the connection every replica keeps for it
anyway, so the jobs need no connection of their own (each was a PostgreSQL backend, ~2 MB, per
job and replica). A job looks at the leadership (`OutboxRelay.leads`: the lock held and its
connection answering lately) every `retry_seconds`: when the leader dies (its session ends and
the lock with it) another replica's relay takes over and its jobs follow within
`retry_seconds`, and a replica whose relay lost the lead, or whose connection stopped
answering, stops saying it leads as soon, not at its next run. A relay that loses the lead
and takes it back (NATS away a while) runs its `at_start` jobs again: they are idempotent
purges. `tessera_periodic_leader{job}` says which replica leads. Without `leader`
the job runs in every replica.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable, Protocol

from tessera_kit import metrics
from tessera_kit.logging import get_logger
from tessera_kit.tasks import cancel_and_wait

log = get_logger(__name__)


class Leader(Protocol):
    def leads(self) -> bool: ...


class _NoLongerLeading(Exception):
    pass


class Periodic:
    def __init__(self, name: str, every_seconds: float, job: Callable[[], Awaitable[object]], *,
                 at_start: bool = True, leader: Leader | None = None, retry_seconds: float = 5.0) -> None:
        self.name = name
        self.every_seconds = every_seconds
        self.job = job
        self.at_start = at_start  # first run at once (at once on becoming leader), else after one period
        self.leader = leader
        self.retry_seconds = min(retry_seconds, every_seconds)  # how often the leadership is looked at
        self.runs = 0
        self.failures = 0
        self.is_leader = False
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            work = self._forever() if self.leader is None else self._follow_the_leader()
            self._task = asyncio.get_running_loop().create_task(work, name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

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

    async def _follow_the_leader(self) -> None:
        assert self.leader is not None
        try:
            while True:
                while not self.leader.leads():
                    await asyncio.sleep(self.retry_seconds)
                self._set_leader(True)
                try:
                    if not self.at_start:
                        await self._lead_for(self.every_seconds)
                    while True:
                        await self._run_once()
                        await self._lead_for(self.every_seconds)
                except _NoLongerLeading:
                    self._set_leader(False)
        finally:
            self._set_leader(False)

    async def _lead_for(self, seconds: float) -> None:
        """Wait `seconds` as the leader, looking at the leadership every `retry_seconds`."""
        loop = asyncio.get_running_loop()
        until = loop.time() + seconds
        while (left := until - loop.time()) > 0:
            await asyncio.sleep(min(left, self.retry_seconds))
            if not self.leader.leads():
                raise _NoLongerLeading

    def _set_leader(self, leading: bool) -> None:
        if leading != self.is_leader:
            log.info("periodic job leader" if leading else "periodic job no longer leader", job=self.name)
        self.is_leader = leading
        metrics.PERIODIC_LEADER.labels(self.name).set(1 if leading else 0)

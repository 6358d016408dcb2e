"""Upkeep that runs on a timer in every replica (purging what expired): one task per job,
started and stopped with the service, surviving failures (the database may be away a while).

    purge = Periodic("lockout-purge", 600, lambda: lockout.purge_expired(ctx.pool))
    purge.start()  ...  await purge.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Awaitable, Callable

from tessera_kit.logging import get_logger

log = get_logger(__name__)


class Periodic:
    def __init__(self, name: str, every_seconds: float, job: Callable[[], Awaitable[object]], *,
                 at_start: bool = True) -> None:
        self.name = name
        self.every_seconds = every_seconds
        self.job = job
        self.at_start = at_start  # first run at once, else after one period
        self.runs = 0
        self.failures = 0
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._forever(), name=self.name)

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
            try:
                await self.job()
                self.runs += 1
            except Exception as exc:  # the next round will do
                self.failures += 1
                log.warning("periodic job failed", job=self.name, error=repr(exc))
            await asyncio.sleep(self.every_seconds)

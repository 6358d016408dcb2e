"""Stopping a background task for sure.

Python 3.11's `asyncio.wait_for` returns the inner result when a cancel arrives in the same
loop turn as that result (gh-86296, fixed in 3.12), and nats.py waits for every reply with it:
a task cancelled during an rpc or a fetch may go on as if never cancelled, and a stop that
cancels once and awaits the task waits for ever (seen in CI: a test's teardown hung 600 s on
identity's rbac-link retry loop). So cancel again until the task ends, within a bound.
"""

from __future__ import annotations

import asyncio

from tessera_kit.logging import get_logger

log = get_logger(__name__)


async def cancel_and_wait(task: asyncio.Task | None, *, every: float = 0.05, give_up_after: float = 10.0) -> bool:
    """Cancel `task` until it is done; False (logged) if it still runs after `give_up_after`."""
    if task is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    while not task.done():
        if loop.time() >= deadline:
            log.warning("task would not stop", task=task.get_name())
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=every)
    if not task.cancelled():
        task.exception()  # retrieved: asyncio would log an ending failure as never seen
    return True


async def cancel_all_and_wait(tasks, **kwargs) -> None:
    await asyncio.gather(*(cancel_and_wait(task, **kwargs) for task in tasks))

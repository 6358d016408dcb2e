"""Stopping a background task for sure.

Python 3.11's `asyncio.wait_for` returns the inner result when a cancel arrives in the same
loop turn as that result (gh-86296, fixed in 3.12), and nats.py waits for every reply with it:
a task cancelled during an rpc or a fetch may go on as if never cancelled, and a stop that
cancels once and awaits the task waits for ever (seen in CI: a test's teardown hung 600 s on
identity's rbac-link retry loop). So cancel again while the task still runs, within a bound.
A task may rightly take a while after a cancel (the outbox relay marks what it published and
lets go of its lock in `finally`): the first cancel gets `grace` seconds, then they come
quickly.
"""

from __future__ import annotations

import asyncio

from tessera_kit.logging import get_logger

log = get_logger(__name__)


async def cancel_and_wait(task: asyncio.Task | None, *, grace: float = 2.5, every: float = 0.05,
                          give_up_after: float = 10.0) -> bool:
    """Cancel `task` until it is done: the first cancel gets `grace` seconds, later ones `every`
    (still running past the grace, it lost the cancel rather than tidying up: a loop that
    loses two in three would outlive a few spaced cancels). False (logged) if it still runs
    after `give_up_after`."""
    if task is None:
        return True
    loop = asyncio.get_running_loop()
    deadline = loop.time() + give_up_after
    wait = grace
    while not task.done():
        if loop.time() >= deadline:
            log.warning("task would not stop", task=task.get_name())
            return False
        task.cancel()
        await asyncio.wait({task}, timeout=min(wait, max(0.0, deadline - loop.time())))
        wait = every
    if not task.cancelled() and task.exception() is not None:
        log.warning("task ended with an error while stopping", task=task.get_name(), error=repr(task.exception()))
    return True


async def cancel_all_and_wait(tasks, **kwargs) -> None:
    await asyncio.gather(*(cancel_and_wait(task, **kwargs) for task in tasks))


async def stop_within(task: asyncio.Task | None, seconds: float) -> None:
    """Let `task` end on its own (it was told to stop) for `seconds`, then cancel it. A cancel
    of the caller is not swallowed (unlike `wait_for`, which would also cancel `task` at once)."""
    if task is None:
        return
    try:
        await asyncio.wait({task}, timeout=seconds)
    except asyncio.CancelledError:
        task.cancel()  # the caller gives up: the task does not outlive its stop
        raise
    await cancel_and_wait(task)

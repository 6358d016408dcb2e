"""Stopping a background task for sure, and sharing one call among concurrent callers.

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
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

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


K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SharedCalls(Generic[K, V]):
    """Concurrent callers asking for the same key share one call (a cache miss under load is
    one read or one rpc, not one per request in flight). The call runs as a task of its own:
    a caller that goes away (cancelled) does not cancel it for the others."""

    def __init__(self) -> None:
        self._under_way: dict[K, asyncio.Future[V]] = {}

    async def call(self, key: K, start: Callable[[], Awaitable[V]]) -> V:
        """The answer of the call under way for `key`, else of `start()`, begun now."""
        under_way = self._under_way.get(key)
        if under_way is None:
            under_way = self._under_way[key] = asyncio.ensure_future(start())
            under_way.add_done_callback(lambda done: self._ended(key, done))
        # shield: a caller cancelled leaves the call running for the others.
        return await asyncio.shield(under_way)

    def _ended(self, key: K, done: asyncio.Future) -> None:
        if self._under_way.get(key) is done:  # not a newer call begun after forget()
            del self._under_way[key]
        # A failure reaches every caller still waiting; when all went away before it (shield
        # then drops its own retrieval), it is retrieved here, not logged as "never retrieved".
        if not done.cancelled():
            done.exception()

    def forget(self, key: K | None = None) -> None:
        """Callers from now on start a new call (for `key`, or for every key): the one under
        way answers only those who already wait for it."""
        if key is None:
            self._under_way.clear()
        else:
            self._under_way.pop(key, None)


"""Stopping background work for sure: a cancel that Python 3.11's wait_for swallows (nats.py
waits for every reply with it) is sent again; a stop never waits for ever."""

import asyncio
import random
import sys

import asyncpg
import pytest
from nats.errors import NoRespondersError

from tessera_kit.app import ServiceSpec, start_context, stop_context
from tessera_kit import app as kit_app
from tessera_kit.config import ServiceSettings
from tessera_kit.periodic import Periodic
from tessera_kit.tasks import cancel_and_wait, stop_within
from tessera_kit.testing import INTERNAL_KEY


async def _ends_within(work, seconds: float) -> bool:
    """Not wait_for: cancelling a stop that waits on a task that swallows cancels hangs too."""
    task = asyncio.create_task(work)
    await asyncio.wait({task}, timeout=seconds)
    return task.done() and task.result() is None


async def _asking_nobody(bus) -> None:
    while True:
        try:
            await bus.nc.request(bus.subject("nobody.answers"), b"", timeout=3)
        except NoRespondersError:
            pass


async def test_a_task_waiting_on_nats_replies_stops_when_cancelled_during_a_reply(bus):
    """A cancel arriving with the "no responders" reply is lost in wait_for; once was not enough
    (measured here: 2 of 3 such loops went on after one cancel)."""
    for _ in range(20):
        task = asyncio.create_task(_asking_nobody(bus))
        await asyncio.sleep(random.random() * 0.003)
        assert await cancel_and_wait(task, grace=0.05, give_up_after=5.0)
        assert task.cancelled()
    # The loop above is the one that hung teardowns; a cancel sent once loses to it:
    lost = 0
    for _ in range(20):
        task = asyncio.create_task(_asking_nobody(bus))
        await asyncio.sleep(random.random() * 0.003)
        task.cancel()
        await asyncio.wait({task}, timeout=0.1)
        lost += not task.done()
        await cancel_and_wait(task, grace=0.05)
    if sys.version_info < (3, 12):  # fixed in 3.12
        assert lost > 0  # the hazard is real here, so the first loop tested something


async def test_a_task_tidying_up_after_a_cancel_is_given_its_grace():
    """The outbox relay marks what it published in `finally`: a second cancel would cut it."""
    tidied = []

    async def tidy() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            await asyncio.sleep(0.2)
            tidied.append(True)

    task = asyncio.create_task(tidy())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, grace=1.0)
    assert tidied == [True]


async def test_a_task_that_swallows_cancels_is_given_up_on_within_the_bound():
    released = asyncio.Event()

    async def stubborn() -> None:
        while not released.is_set():
            try:
                await asyncio.sleep(10)
            except asyncio.CancelledError:
                pass

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    assert await cancel_and_wait(task, grace=0.05, give_up_after=0.3) is False
    assert not task.done()
    released.set()
    assert await cancel_and_wait(task)
    # what a well-behaved task gets: the first cancel ends it
    assert await cancel_and_wait(asyncio.create_task(asyncio.sleep(10)))


async def test_a_periodic_job_in_an_rpc_retry_loop_stops(bus):
    """identity's rbac-link loop (ask, no answer, ask again) made the whole stop hang."""
    periodic = Periodic("asks-nobody", 0.001, lambda: _asking_nobody(bus))
    for _ in range(4):  # a cancel is lost 2 times in 3 here: the old stop hung (99 % of runs)
        periodic.start()
        job = periodic._task
        await asyncio.sleep(random.random() * 0.003)
        assert await _ends_within(periodic.stop(), 12.0)  # cancel_and_wait gives up after 10 s
        assert job.done()  # stopped, not given up on


async def test_stopping_a_service_ends_even_if_a_pool_connection_is_never_given_back(
        database_url, nats_url, unique, monkeypatch):
    monkeypatch.setattr(kit_app, "POOL_CLOSE_SECONDS", 0.5)
    spec = ServiceSpec(name=f"svc-{unique}", route_handlers=[],
                       settings=ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=unique,
                                                internal_key=INTERNAL_KEY))
    ctx = await start_context(spec)
    kept = await ctx.pool.acquire()
    backend = kept.get_server_pid()
    assert await _ends_within(stop_context(spec, ctx), 5.0)
    with pytest.raises(asyncpg.InterfaceError):
        await kept.fetchval("SELECT 1")
    other = await asyncpg.connect(database_url)
    try:
        for _ in range(100):  # the backend goes once PostgreSQL sees the socket closed
            if not await other.fetchval("SELECT count(*) FROM pg_stat_activity WHERE pid = $1", backend):
                break
            await asyncio.sleep(0.02)
        else:
            pytest.fail("the connection kept by nobody still has its backend")
    finally:
        await other.close()


async def test_a_stop_given_up_by_its_caller_does_not_leave_the_task_running():
    task = asyncio.create_task(asyncio.sleep(10))
    stopping = asyncio.create_task(stop_within(task, 5.0))
    await asyncio.sleep(0.05)
    stopping.cancel()
    await asyncio.wait({stopping})
    await asyncio.sleep(0)
    assert task.cancelled()

"""A periodic job runs again after it failed, and stops when asked."""

import asyncio

from tessera_kit.periodic import Periodic


async def test_a_failing_job_runs_again_and_stop_ends_it():
    calls: list[int] = []

    async def job() -> None:
        calls.append(len(calls))
        if len(calls) == 1:
            raise RuntimeError("database away")

    periodic = Periodic("test-job", 0.01, job)
    periodic.start()
    for _ in range(500):
        if periodic.runs >= 2:
            break
        await asyncio.sleep(0.01)
    await periodic.stop()
    assert periodic.failures == 1 and periodic.runs >= 2
    count = len(calls)
    await asyncio.sleep(0.05)
    assert len(calls) == count  # stopped: no run after stop()


async def test_a_job_may_wait_one_period_before_its_first_run():
    calls: list[int] = []

    async def job() -> None:
        calls.append(1)

    periodic = Periodic("later", 3600, job, at_start=False)
    periodic.start()
    await asyncio.sleep(0.05)
    await periodic.stop()
    assert calls == []

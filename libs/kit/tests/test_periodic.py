"""A periodic job runs again after it failed, and stops when asked."""

import asyncio

import asyncpg

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


async def _until(condition, tries: int = 500) -> None:
    for _ in range(tries):
        if condition():
            return
        await asyncio.sleep(0.01)


async def test_with_a_pool_one_replica_leads_and_another_takes_over_when_it_stops(pool):
    runs: dict[str, int] = {"a": 0, "b": 0}

    def job_of(replica: str):
        async def job() -> None:
            runs[replica] += 1
        return job

    first = Periodic("leader-job", 0.01, job_of("a"), pool=pool)
    second = Periodic("leader-job", 0.01, job_of("b"), pool=pool, retry_seconds=0.01)
    first.start()
    await _until(lambda: first.is_leader)
    second.start()
    await _until(lambda: runs["a"] >= 5)
    # The follower tried for the lock many times meanwhile, and never ran the job.
    assert (first.is_leader, second.is_leader, runs["b"]) == (True, False, 0)
    await first.stop()
    await _until(lambda: second.is_leader and runs["b"] >= 2)
    assert (first.is_leader, second.is_leader) == (False, True) and runs["b"] >= 2
    await second.stop()
    async with pool.acquire() as conn:  # stopping let go of the lock: anyone may take it now
        key = "hashtext('tessera-periodic:' || current_schema() || ':leader-job')"
        assert await conn.fetchval(f"SELECT pg_try_advisory_lock({key})")
        await conn.execute(f"SELECT pg_advisory_unlock({key})")


async def test_a_leader_whose_lock_connection_dies_stops_leading_before_its_next_run(pool, database_url):
    """The leader's session ends (PostgreSQL restarted, the backend killed): its lock went with
    it and another replica may lead, so it must say it no longer leads long before its next run
    (an hour away here), not keep the metric, and the belief, until then."""
    runs: dict[str, int] = {"a": 0, "b": 0}

    def job_of(replica: str):
        async def job() -> None:
            runs[replica] += 1
        return job

    first = Periodic("dying-leader", 3600, job_of("a"), pool=pool, retry_seconds=0.01)
    first.start()
    await _until(lambda: first.is_leader and runs["a"] == 1)
    second = Periodic("dying-leader", 3600, job_of("b"), pool=pool, retry_seconds=0.01)
    second.start()
    try:
        admin = await asyncpg.connect(database_url)  # the pool's connections may all be taken
        try:
            killed = await admin.fetchval(
                "SELECT pg_terminate_backend(pid) FROM pg_locks WHERE locktype = 'advisory' AND granted")
        finally:
            await admin.close()
        assert killed
        # The new leader says so just before its first run (an await apart): wait for both.
        await _until(lambda: second.is_leader and not first.is_leader and runs["b"] == 1)
        assert (first.is_leader, second.is_leader) == (False, True)
        assert runs == {"a": 1, "b": 1}
    finally:
        await first.stop()
        await second.stop()

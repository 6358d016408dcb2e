"""A periodic job runs again after it failed, and stops when asked."""

import asyncio
import math

from tessera_kit.outbox import Outbox, OutboxRelay
from tessera_kit.periodic import Periodic
from tessera_kit.testing import end_the_relays_session


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


def _relays(pool, bus, unique) -> tuple[OutboxRelay, OutboxRelay]:
    """Two replicas' relays on one schema, quick to notice a change of leader."""
    outbox = Outbox(unique)
    return (OutboxRelay(pool, bus, outbox, poll_interval=0.02),
            OutboxRelay(pool, bus, outbox, poll_interval=0.02))


async def test_with_a_leader_the_replica_whose_relay_leads_runs_it_and_another_takes_over(pool, bus, unique):
    runs: dict[str, int] = {"a": 0, "b": 0}

    def job_of(replica: str):
        async def job() -> None:
            runs[replica] += 1
        return job

    relay_a, relay_b = _relays(pool, bus, unique)
    relay_a.start()
    await _until(lambda: relay_a.is_leader)
    relay_b.start()
    first = Periodic("leader-job", 0.01, job_of("a"), leader=relay_a)
    second = Periodic("leader-job", 0.01, job_of("b"), leader=relay_b, retry_seconds=0.01)
    first.start()
    second.start()
    try:
        await _until(lambda: runs["a"] >= 5)
        # The follower looked at the leadership many times meanwhile, and never ran the job.
        assert (first.is_leader, second.is_leader, runs["b"]) == (True, False, 0)
        await relay_a.stop()  # the leading replica goes: its relay lets go of the lock
        await _until(lambda: second.is_leader and runs["b"] >= 2)
        assert (first.is_leader, second.is_leader) == (False, True) and runs["b"] >= 2
    finally:
        await first.stop()
        await second.stop()
        await relay_a.stop()
        await relay_b.stop()


async def test_a_leader_whose_relay_connection_dies_stops_leading_before_its_next_run(pool, bus, unique,
                                                                                      database_url):
    """The leader's session ends (PostgreSQL restarted, the backend killed): the relay's lock
    went with it and another replica leads, so its jobs must say they no longer lead long
    before their next run (an hour away here), not keep the metric, and the belief, until then."""
    runs: dict[str, int] = {"a": 0, "b": 0}

    def job_of(replica: str):
        async def job() -> None:
            runs[replica] += 1
        return job

    relay_a, relay_b = _relays(pool, bus, unique)
    relay_a.start()
    await _until(lambda: relay_a.is_leader)
    relay_b.start()
    first = Periodic("dying-leader", 3600, job_of("a"), leader=relay_a, retry_seconds=0.01)
    second = Periodic("dying-leader", 3600, job_of("b"), leader=relay_b, retry_seconds=0.01)
    first.start()
    await _until(lambda: first.is_leader and runs["a"] == 1)
    second.start()
    try:
        await end_the_relays_session(database_url, relay_a)
        await _until(lambda: second.is_leader and not first.is_leader and runs["b"] == 1)
        assert (first.is_leader, second.is_leader) == (False, True)
        assert runs == {"a": 1, "b": 1}
    finally:
        await first.stop()
        await second.stop()
        await relay_a.stop()
        await relay_b.stop()


async def test_the_relay_carries_the_services_other_listens(pool, bus, unique, database_url):
    """`OutboxRelay.listen`: a NOTIFY on another channel reaches its callback through the
    relay's connection, also after that connection was replaced."""
    relay, _ = _relays(pool, bus, unique)
    heard: list[str] = []
    relay.start()
    relay.listen(f"{unique}_other", lambda _conn, _pid, _channel, payload: heard.append(payload))
    try:
        async def notify(payload: str) -> None:
            async with pool.acquire() as conn:
                await conn.execute("SELECT pg_notify($1, $2)", f"{unique}_other", payload)

        for _ in range(200):  # until the relay has added the LISTEN (which also calls it once, with "")
            await notify("first")
            if "first" in heard:
                break
            await asyncio.sleep(0.01)
        assert "first" in heard
        await _until(lambda: relay.is_leader)  # it holds the lock the helper finds its session by
        await end_the_relays_session(database_url, relay)  # it reconnects and listens again
        for _ in range(300):
            await notify("again")
            if "again" in heard:
                break
            await asyncio.sleep(0.01)
        assert "again" in heard
    finally:
        await relay.stop()


async def test_a_job_stops_leading_when_its_relays_connection_has_not_answered_lately(pool, bus, unique):
    """A relay stuck in a query on a half-open connection keeps its flag, while the lock may be
    another replica's by now: leadership counts only with an answer from the lock's connection
    in the last few seconds (OutboxRelay.leads)."""
    relay = OutboxRelay(pool, bus, Outbox(unique), poll_interval=3600)  # no query of its own for an hour
    relay.start()
    job = Periodic("stale-leader", 3600, _nothing, leader=relay, retry_seconds=0.01)
    try:
        # Its first round done (the purge comes after that round's answer), it sleeps for an
        # hour: nothing confirms its leadership again behind the test's back.
        await _until(lambda: relay.leads() and relay._last_purge > -math.inf)
        job.start()
        await _until(lambda: job.is_leader)
        relay._confirmed_at -= 3 * 3600 + 60  # as if its last answer were long ago
        await _until(lambda: not job.is_leader)
        assert relay.is_leader and not relay.leads()
    finally:
        await job.stop()
        await relay.stop()


async def _nothing() -> None:
    pass

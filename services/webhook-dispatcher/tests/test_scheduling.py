"""How the scheduler claims and records: each hook's deliveries up to its free slots (a hook
with a backlog never hides another's), and outcomes written together, lease by lease."""

from __future__ import annotations

import asyncio
import datetime as dt

from tessera_kit.ids import new_id
from tessera_webhook_dispatcher.deliveries import store
from tessera_webhook_dispatcher.deliveries.domain import NewDelivery, Outcome


async def _due(dispatcher, hook_id: str, count: int, at: dt.datetime) -> list[str]:
    """Deliveries due at `at` and after (one second apart), beyond the dispatcher's own clock so
    its scheduler leaves them to the test."""
    sources = [new_id() for _ in range(count)]
    async with dispatcher.ctx.pool.acquire() as conn:
        for n, source in enumerate(sources):
            new = NewDelivery(tenant_id="default", hook_id=hook_id, event="PostSignIn", source_event_id=source,
                              body=b'{"event":"PostSignIn"}', max_attempts=3)
            await store.insert_deliveries(conn, [new], now=at + dt.timedelta(seconds=n), channel="unheard")
        found = dict(await conn.fetch("SELECT source_event_id, id FROM deliveries WHERE source_event_id = ANY($1)",
                                      sources))
    return [found[source] for source in sources]


async def test_a_claim_takes_each_hooks_free_slots_and_reaches_a_hook_behind_a_backlog(dispatcher, receiver):
    busy = await dispatcher.create_hook(receiver.url)
    quiet = await dispatcher.create_hook(receiver.url)
    later = dispatcher.clock.now() + dt.timedelta(hours=1)
    backlog = await _due(dispatcher, busy["id"], 10, later)
    (behind,) = await _due(dispatcher, quiet["id"], 1, later + dt.timedelta(seconds=30))
    now = later + dt.timedelta(minutes=1)

    async def claim(in_flight: dict[str, int]) -> list[str]:
        async with dispatcher.ctx.pool.acquire() as conn:
            rows = await store.claim_due(conn, now=now, per_hook=4, in_flight=in_flight, limit=8,
                                         token=new_id(), lease_seconds=30)
        return [r["id"] for r in rows]

    first = await claim({busy["id"]: 1})
    # Three free slots of the busy hook (its oldest), and the quiet hook's delivery.
    assert sorted(first) == sorted(backlog[:3] + [behind])
    leased = await dispatcher.ctx.pool.fetchval("SELECT count(*) FROM deliveries WHERE lease_token IS NOT NULL")
    assert leased == 4  # nothing claimed beyond the free slots
    # Another replica, same free slots: the next of the backlog, never a leased one.
    second = await claim({})
    assert sorted(second) == sorted(backlog[3:7])


async def test_outcomes_arriving_together_are_written_in_one_transaction_and_a_lost_lease_is_dropped(
        dispatcher, receiver):
    hook = await dispatcher.create_hook(receiver.url)
    later = dispatcher.clock.now() + dt.timedelta(hours=1)
    await _due(dispatcher, hook["id"], 3, later)
    token = new_id()
    async with dispatcher.ctx.pool.acquire() as conn:
        rows = await store.claim_due(conn, now=later + dt.timedelta(minutes=1), per_hook=4, in_flight={},
                                     limit=8, token=token, lease_seconds=30)
    assert len(rows) == 3
    stolen = rows[1]["id"]  # its lease ran out and another replica took it
    await dispatcher.ctx.pool.execute("UPDATE deliveries SET lease_token = 'another' WHERE id = $1", stolen)

    recorder = dispatcher.scheduler.recorder
    await asyncio.gather(*(recorder.record(row, token, Outcome(True, status_code=200, body='{"ok":true}'))
                           for row in rows))

    states = {r["id"]: (r["status"], r["attempts"]) for r in await dispatcher.ctx.pool.fetch(
        "SELECT id, status, attempts FROM deliveries")}
    assert states == {rows[0]["id"]: ("succeeded", 1), stolen: ("pending", 0), rows[2]["id"]: ("succeeded", 1)}
    attempts = await dispatcher.ctx.pool.fetch(
        "SELECT delivery_id, number, result, response, xmin::text AS tx FROM delivery_attempts")
    assert sorted((a["delivery_id"], a["number"], a["result"]) for a in attempts) == sorted(
        [(rows[0]["id"], 1, "Success"), (rows[2]["id"], 1, "Success")])
    assert attempts[0]["response"] == {"statusCode": 200, "body": {"ok": True}}
    assert len({a["tx"] for a in attempts}) == 1  # one transaction for the batch
    succeeded = await dispatcher.events("webhooks.delivery.succeeded")
    assert sorted(data["attempt"]["delivery_id"] for _, data in succeeded) == sorted([rows[0]["id"], rows[2]["id"]])


async def test_a_disabled_hooks_backlog_is_not_read_by_the_schedulers_looks(dispatcher, receiver):
    """The scheduler's looks (claim_due, and next_attempt_at after each claim that found
    nothing) probe each enabled hook's own deliveries: with the only backlog a disabled hook's
    (a receiver that failed for days), a plan by due time across hooks read all of it each time."""
    disabled = await dispatcher.create_hook(receiver.url, enabled=False)
    await dispatcher.create_hook(receiver.url)
    pool = dispatcher.ctx.pool
    await pool.execute(
        "INSERT INTO deliveries (tenant_id, id, hook_id, event, source_event_id, body, status, attempts,"
        " max_attempts, next_attempt_at, created_at, updated_at)"
        " SELECT 'default', 'd' || g, $1, 'PostSignIn', 's' || g, '{}', 'pending', 0, 3,"
        " now() - interval '1 hour', now(), now() FROM generate_series(1, 5000) g", disabled["id"])
    await pool.execute("ANALYZE deliveries")  # statistics that know only the disabled hook's rows
    async with pool.acquire() as conn, conn.transaction():
        assert await store.claim_due(conn, now=dt.datetime.now(dt.timezone.utc), per_hook=4, in_flight={},
                                     limit=8, token=new_id(), lease_seconds=30) == []
        assert await store.next_attempt_at(conn) is None
        read = await conn.fetchval(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
            " WHERE schemaname = current_schema() AND relname = 'deliveries'")
    assert read < 50  # index probes; the backlog is 5,000 rows


async def test_a_full_dispatcher_sends_the_next_as_soon_as_an_attempt_ends(saturated, receiver):
    """With every slot taken (webhooks_max_in_flight), the end of an attempt frees one, and the
    next due delivery goes out then: not after a poll interval (here ten minutes), nor only
    when some other wake-up comes."""
    hook = await saturated.create_hook(receiver.url)
    receiver.hold = asyncio.Event()  # the first attempt waits until the test has looked
    await _due(saturated, hook["id"], 3, saturated.clock.now() - dt.timedelta(minutes=1))
    saturated.scheduler.wake()
    await receiver.wait_for(1)
    await asyncio.sleep(0.2)
    assert len(receiver.requests) == 1  # one slot
    receiver.hold.set()
    await receiver.wait_for(3)

    async def all_succeeded() -> bool:
        return await saturated.ctx.pool.fetchval(
            "SELECT count(*) FILTER (WHERE status = 'succeeded') FROM deliveries WHERE hook_id = $1",
            hook["id"]) == 3
    await saturated.until(all_succeeded)


async def test_a_claim_and_its_outcomes_touch_only_their_own_rows_of_a_backlog(dispatcher, receiver):
    """Claiming a few of a hook's 5,000 due deliveries, and recording their outcomes, reads those
    rows by key. With the whole dispatcher's slots free (512) the planner expected the claim to
    lease hundreds and joined them to every row of the table: a receiver that was down for an
    hour made each look read the backlog."""
    hook = await dispatcher.create_hook(receiver.url)
    pool = dispatcher.ctx.pool
    due = dispatcher.clock.now() + dt.timedelta(hours=1)  # beyond the dispatcher's own clock
    await pool.execute(
        "INSERT INTO deliveries (tenant_id, id, hook_id, event, source_event_id, body, status, attempts,"
        " max_attempts, next_attempt_at, created_at, updated_at)"
        " SELECT 'default', 'd' || g, $1, 'PostSignIn', 's' || g, '{}', 'pending', 0, 3,"
        " $2::timestamptz + g * interval '1 ms', $2::timestamptz + g * interval '1 ms', $2 FROM generate_series(1, 5000) g",
        hook["id"], due)
    await pool.execute("ANALYZE deliveries")
    token = new_id()
    async with pool.acquire() as conn, conn.transaction():
        rows = await store.claim_due(conn, now=due + dt.timedelta(minutes=1), per_hook=16, in_flight={},
                                     limit=512, token=token, lease_seconds=30)
        assert len(rows) == 16
        assert await store.finish_attempts(
            conn, [r["id"] for r in rows], [token] * 16, ["succeeded"] * 16, [None] * 16, due) \
            == {r["id"]: 1 for r in rows}
        read = await conn.fetchval(
            "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) FROM pg_stat_xact_user_tables"
            " WHERE schemaname = current_schema() AND relname = 'deliveries'")
    assert read < 200  # index probes; the backlog is 5,000 rows

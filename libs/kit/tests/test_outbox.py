"""The transactional outbox and its relay against real PostgreSQL and JetStream."""

import asyncio

import asyncpg
import pytest
from nats.js.errors import NoStreamResponseError

from tessera_events import STREAMS, decode_envelope
from tessera_events.identity import UserCreated, UserSnapshot, UserUpdated
from tessera_kit.outbox import Outbox, OutboxRelay
from tessera_kit.testing import end_the_relays_session, relays_backend

IDENTITY = STREAMS["identity"]


def user_created(user_id: str) -> UserCreated:
    return UserCreated(user=UserSnapshot(id=user_id, username=user_id))


async def stream_messages(bus) -> list:
    """Every message in the IDENTITY stream of this namespace, decoded."""
    name = bus.stream_name(IDENTITY.name)
    info = await bus.js.stream_info(name)
    messages = []
    for seq in range(info.state.first_seq, info.state.last_seq + 1):
        raw = await bus.js.get_msg(name, seq)
        messages.append(decode_envelope(raw.data))
    return messages


async def emit_committed(pool, outbox, events):
    async with pool.acquire() as conn, conn.transaction():
        return [await outbox.emit(conn, e, aggregate_id=getattr(e, "user", None) and e.user.id) for e in events]


async def unpublished(pool) -> int:
    return await pool.fetchval("SELECT count(*) FROM outbox WHERE published_at IS NULL")


async def wait_until(predicate, timeout=10.0):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


async def test_an_event_jetstream_refuses_holds_back_those_after_it_in_the_batch(pool, bus, unique):
    """The relay sends a batch at once; if the third is refused, the fourth and fifth must not
    be stored before it (the stream keeps the outbox's order), and all go out, in order, once
    the third can be."""
    await bus.ensure_stream(IDENTITY)
    outbox = Outbox(unique)
    sent = await emit_committed(pool, outbox, [user_created(f"u{i}") for i in range(5)])
    third = await pool.fetchrow("SELECT seq, subject FROM outbox ORDER BY seq OFFSET 2 LIMIT 1")
    await pool.execute("UPDATE outbox SET subject = 'nowhere.bound' WHERE seq = $1", third["seq"])
    async with pool.acquire() as conn:
        with pytest.raises(NoStreamResponseError):  # nothing stores `nowhere.bound`
            await OutboxRelay(pool, bus, outbox).publish_pending(conn)
    assert [m.id for m in await stream_messages(bus)] == [e.id for e in sent[:2]]
    assert await unpublished(pool) == 3

    await pool.execute("UPDATE outbox SET subject = $2 WHERE seq = $1", third["seq"], third["subject"])
    async with pool.acquire() as conn:
        assert await OutboxRelay(pool, bus, outbox).publish_pending(conn) == 3
    assert [m.id for m in await stream_messages(bus)] == [e.id for e in sent]
    assert await unpublished(pool) == 0


async def test_an_event_jetstream_answers_with_an_error_fails_the_batch_with_that_error(pool, bus, unique):
    """JetStream refuses the third event of a batch with an error answer (the stream is full
    and discards new messages): the relay fails with JetStream's error, not by waiting out its
    publish timeout (nats-py's publish_async never resolved a refused publish), and only what
    was stored is marked."""
    from nats.js.api import DiscardPolicy, StorageType, StreamConfig
    from nats.js.errors import APIError

    await bus.js.add_stream(StreamConfig(
        name=bus.stream_name(IDENTITY.name), subjects=[bus.subject(IDENTITY.subjects)],
        storage=StorageType.MEMORY, max_msgs=2, discard=DiscardPolicy.NEW))
    outbox = Outbox(unique)
    sent = await emit_committed(pool, outbox, [user_created(f"u{i}") for i in range(4)])
    async with pool.acquire() as conn:
        with pytest.raises(APIError) as refused:
            await OutboxRelay(pool, bus, outbox).publish_pending(conn)
    assert "maximum messages" in str(refused.value)
    assert [m.id for m in await stream_messages(bus)] == [e.id for e in sent[:2]]
    assert await unpublished(pool) == 2
    assert bus.acks.waiting == 0  # the refused batch's acks are not waited for any more


async def test_emit_outside_a_transaction_is_refused(pool, unique):
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            await Outbox(unique).emit(conn, user_created("u1"))


async def test_rolled_back_change_announces_nothing(pool, unique):
    outbox = Outbox(unique)
    with pytest.raises(ZeroDivisionError):
        async with pool.acquire() as conn, conn.transaction():
            await outbox.emit(conn, user_created("u1"))
            1 / 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_committed_events_survive_a_crash_before_publishing(pool, bus, unique):
    """Service killed after commit, before its relay ran: on restart the events go out once."""
    await bus.ensure_stream(IDENTITY)
    outbox = Outbox(unique)
    sent = await emit_committed(pool, outbox, [user_created(f"u{i}") for i in range(3)])
    assert await unpublished(pool) == 3  # nothing published: the "process" died here

    relay = OutboxRelay(pool, bus, outbox)  # the restarted service's relay
    relay.start()
    await wait_until(lambda: _zero(unpublished(pool)))
    await relay.stop()
    second = OutboxRelay(pool, bus, outbox)  # and once more, to be sure nothing repeats
    second.start()
    await asyncio.sleep(0.3)
    await second.stop()

    assert [m.id for m in await stream_messages(bus)] == [e.id for e in sent]


async def _zero(awaitable) -> bool:
    return await awaitable == 0


class CrashAfterPublish(Exception):
    pass


class RelayDyingBeforeMark(OutboxRelay):
    """A relay that publishes, then dies before it can mark the rows."""

    async def mark_published(self, conn, seqs):
        raise CrashAfterPublish()


async def test_relay_killed_after_publish_before_mark_publishes_once(pool, bus, unique):
    await bus.ensure_stream(IDENTITY)
    outbox = Outbox(unique)
    sent = await emit_committed(pool, outbox, [user_created(f"u{i}") for i in range(5)])
    async with pool.acquire() as conn:
        with pytest.raises(CrashAfterPublish):
            await RelayDyingBeforeMark(pool, bus, outbox).publish_pending(conn)
    assert len(await stream_messages(bus)) == 5
    assert await unpublished(pool) == 5  # rows still look unsent

    relay = OutboxRelay(pool, bus, outbox)
    relay.start()
    await wait_until(lambda: _zero(unpublished(pool)))
    await relay.stop()
    assert [m.id for m in await stream_messages(bus)] == [e.id for e in sent]  # deduplicated


async def test_relay_wakes_on_notify_and_keeps_order_per_aggregate(pool, bus, unique):
    await bus.ensure_stream(IDENTITY)
    outbox = Outbox(unique)
    relay = OutboxRelay(pool, bus, outbox, poll_interval=60.0)  # only NOTIFY can wake it in time
    relay.start()
    await asyncio.sleep(0.2)
    snapshot = UserSnapshot(id="u1", username="alice")
    sent = []
    for n in range(30):
        async with pool.acquire() as conn, conn.transaction():
            sent.append(await outbox.emit(conn, UserUpdated(user=snapshot, changed=[f"f{n}"]), aggregate_id="u1"))
    await wait_until(lambda: _zero(unpublished(pool)), timeout=10)
    await relay.stop()
    assert [m.id for m in await stream_messages(bus)] == [e.id for e in sent]


async def test_one_relay_leads_per_schema(pool, bus, unique):
    outbox = Outbox(unique)
    first, second = OutboxRelay(pool, bus, outbox), OutboxRelay(pool, bus, outbox)
    first.start()
    second.start()
    try:
        await asyncio.sleep(0.5)
        assert [first.is_leader, second.is_leader].count(True) == 1
        # Leading or standing by, each one's connection answers (readiness asks this).
        assert first.answered_lately() and second.answered_lately()
    finally:
        await first.stop()
        await second.stop()


async def test_a_relay_whose_query_failed_no_longer_vouches_for_the_database(pool, bus, unique, database_url):
    relay = OutboxRelay(pool, bus, Outbox(unique), poll_interval=30.0)  # no retry within the test
    relay.start()
    try:
        await wait_until(lambda: _true(relay.is_leader))
        assert relay.answered_lately()
        # Idle, between rounds (only its sleep waits on the wake): a query of its first round cut
        # by the end of the session would fail before the wake below, and the wake would then cut
        # the retry's wait short, so it would lead again at once on a new connection.
        await wait_until(lambda: _true(bool(relay._wake._waiters)))
        await end_the_relays_session(database_url, relay)
        relay._wake.set()  # its next query, on the dead connection
        # It answered a second ago, but its last query failed: it no longer vouches (and with
        # poll_interval=30 it would for a minute more without the reset).
        await wait_until(lambda: _true(not relay.answered_lately()))
        assert not relay.is_leader
    finally:
        await relay.stop()


async def test_the_relay_hands_its_connection_back_with_commits_waiting_for_the_flush_again(pool, bus, unique,
                                                                                            database_url):
    """The relay's own commits (marks, purges) do not wait for the WAL flush, a setting of its
    session: when it lets go, the pool gets the connection back as it was, so no other
    caller's commit returns before it is durable."""
    from tessera_kit.db import _keep_session

    # One connection (the relay's, then the test's) on the schema `pool` migrated, not reset
    # on release, as the services' pools, whose sessions start with commits waiting for the
    # flush (the test server's own default is not to).
    one = await asyncpg.create_pool(database_url, min_size=1, max_size=1, reset=_keep_session, server_settings={
        "search_path": f"{unique},public", "synchronous_commit": "on"})
    try:
        relay = OutboxRelay(one, bus, Outbox(unique), poll_interval=60.0)
        sessions: list[asyncpg.Connection] = []  # a listener is handed the relay's connection
        relay.listen(f"{unique}_seen", lambda conn, *_: sessions.append(conn))
        relay.start()
        try:
            await wait_until(lambda: _true(relay.is_leader and bool(sessions)))

            async def relay_asleep() -> bool:  # its first round ends with the purge, then it sleeps
                return bool(await pool.fetchval(
                    "SELECT true FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid"
                    " WHERE l.locktype = 'advisory' AND l.objid = $1::bigint::oid AND a.state = 'idle'"
                    " AND a.query LIKE 'DELETE FROM outbox%'", relay.lock_key))
            await wait_until(relay_asleep)
            # Asked on its connection while it sleeps (nothing to publish, no wake for a minute).
            relays_pid, setting = await sessions[0].fetchrow(
                "SELECT pg_backend_pid(), current_setting('synchronous_commit')")
            assert setting == "off"
        finally:
            await relay.stop()
        # The same session, back in the pool (not one opened anew after a failed reset).
        assert tuple(await one.fetchrow("SELECT pg_backend_pid(), current_setting('synchronous_commit')")) \
            == (relays_pid, "on")
    finally:
        await one.close()


async def test_a_listener_looks_once_its_listen_starts_and_again_on_each_new_connection(pool, bus, unique,
                                                                                          database_url):
    """A NOTIFY sent while no connection listened reached no one (before the LISTEN, or while
    the relay was between connections): the relay calls the listener as each LISTEN starts,
    so it looks for what it may have missed."""
    calls: list[str] = []
    relay = OutboxRelay(pool, bus, Outbox(unique), poll_interval=0.1)
    relay.start()
    try:
        relay.listen(f"{unique}_woken", lambda _conn, _pid, _channel, payload: calls.append(payload))
        await wait_until(lambda: _true(calls == [""]))  # its LISTEN started
        await pool.execute("SELECT pg_notify($1, 'news')", f"{unique}_woken")
        await wait_until(lambda: _true(calls == ["", "news"]))
        await end_the_relays_session(database_url, relay)  # it takes another connection, listens again
        await wait_until(lambda: _true(calls == ["", "news", ""]))
    finally:
        await relay.stop()


async def test_a_listener_that_raises_leaves_the_relay_and_the_other_listeners_alone(pool, bus, unique,
                                                                                     database_url):
    """A listener's failure is its own: called as its LISTEN starts or for a NOTIFY, what it
    raises never reaches the relay's loop, which goes on with the same connection, the
    listeners after it, and its events."""
    def broken(*_args) -> None:
        raise RuntimeError("a listener's bug")

    calls: list[str] = []
    relay = OutboxRelay(pool, bus, Outbox(unique), poll_interval=0.1)
    await bus.ensure_stream(IDENTITY)
    relay.start()
    try:
        relay.listen(f"{unique}_broken", broken)
        relay.listen(f"{unique}_fine", lambda _conn, _pid, _channel, payload: calls.append(payload))
        await wait_until(lambda: _true(calls == [""]))
        backend = await relays_backend(pool, relay)
        await pool.execute("SELECT pg_notify($1, 'x'), pg_notify($2, 'news')", f"{unique}_broken", f"{unique}_fine")
        await wait_until(lambda: _true(calls == ["", "news"]))
        await emit_committed(pool, Outbox(unique), [user_created("u1")])
        await wait_until(lambda: _zero(unpublished(pool)))
        # The same session all along: a relay that had let it go would have listened anew on
        # another one, and called the listeners again as each LISTEN started.
        assert relay.is_leader and calls == ["", "news"]
        assert await relays_backend(pool, relay) == backend
    finally:
        await relay.stop()


async def _true(value: bool) -> bool:
    return value


async def test_envelope_carries_request_id_and_actor(pool, bus, unique):
    from tessera_events import Actor
    from tessera_kit.context import actor_var, request_id_var

    tokens = request_id_var.set("req-123"), actor_var.set(Actor(type="application", id="app1"))
    await bus.ensure_stream(IDENTITY)
    outbox = Outbox(unique)
    await emit_committed(pool, outbox, [user_created("u1")])
    request_id_var.reset(tokens[0])
    actor_var.reset(tokens[1])
    async with pool.acquire() as conn:
        await OutboxRelay(pool, bus, outbox).publish_pending(conn)
    (message,) = await stream_messages(bus)
    assert message.request_id == "req-123"
    assert message.actor == Actor(type="application", id="app1")
    assert message.type == "identity.user.created" and message.version == 1


async def test_group_commit_writes_concurrent_events_in_one_transaction_before_returning(pool, unique):
    from tessera_kit.outbox import GroupCommitEmitter

    emitter = GroupCommitEmitter(pool, Outbox(unique))
    envelopes = await asyncio.gather(*(emitter.emit(user_created(f"u{i}")) for i in range(20)))
    # Every caller returned only after its row was committed.
    rows = await pool.fetch("SELECT id, xmin::text AS tx FROM outbox")
    assert sorted(r["id"] for r in rows) == sorted(e.id for e in envelopes)
    assert len({r["tx"] for r in rows}) < 20  # batched: fewer transactions than events


async def test_group_commit_failure_reaches_every_caller_of_the_batch(pool, unique):
    from tessera_kit.outbox import GroupCommitEmitter

    await pool.execute("ALTER TABLE outbox ADD CONSTRAINT no_rows CHECK (false) NOT VALID")
    emitter = GroupCommitEmitter(pool, Outbox(unique))
    results = await asyncio.gather(*(emitter.emit(user_created(f"u{i}")) for i in range(5)),
                                   return_exceptions=True)
    assert all(isinstance(r, Exception) for r in results)
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0


async def test_emit_many_writes_every_event_in_order_in_the_callers_transaction(pool, bus, unique):
    await bus.ensure_stream(IDENTITY)
    outbox = Outbox(unique)
    async with pool.acquire() as conn:
        with pytest.raises(RuntimeError):
            await outbox.emit_many(conn, [(user_created("u0"), "u0", None)])
    with pytest.raises(ZeroDivisionError):
        async with pool.acquire() as conn, conn.transaction():
            await outbox.emit_many(conn, [(user_created("u0"), "u0", None)])
            1 / 0
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    async with pool.acquire() as conn, conn.transaction():
        sent = await outbox.emit_many(conn, [(user_created(f"u{i}"), f"u{i}", "tenant-b") for i in range(3)])
    rows = await pool.fetch("SELECT id, aggregate_id, tenant_id FROM outbox ORDER BY seq")
    assert [(r["id"], r["aggregate_id"], r["tenant_id"]) for r in rows] == [
        (e.id, f"u{i}", "tenant-b") for i, e in enumerate(sent)]
    async with pool.acquire() as conn:
        await OutboxRelay(pool, bus, outbox).publish_pending(conn)
    assert [m.id for m in await stream_messages(bus)] == [e.id for e in sent]


async def test_a_change_and_its_events_in_one_statement_commit_together(pool, unique):
    """execute_with_events: no transaction of the caller's, yet the change and its events are
    one: both written, or (the change failing) neither."""
    outbox = Outbox(unique)
    async with pool.acquire() as conn:
        await conn.execute("CREATE TABLE IF NOT EXISTS noted_changes (id text PRIMARY KEY)")
        written = await outbox.execute_with_events(
            conn, "INSERT INTO noted_changes (id) VALUES ($1)", ("a",),
            [(user_created("u1"), "u1"), (user_created("u2"), "u2")])
        assert [e.type for e in written] == ["identity.user.created", "identity.user.created"]
        rows = await conn.fetch("SELECT id, aggregate_id FROM outbox ORDER BY seq")
        assert [(r["id"], r["aggregate_id"]) for r in rows] == [(written[0].id, "u1"), (written[1].id, "u2")]
        assert await conn.fetchval("SELECT count(*) FROM noted_changes") == 1
        with pytest.raises(Exception):  # the same key again: the change fails, its events go too
            await outbox.execute_with_events(
                conn, "INSERT INTO noted_changes (id) VALUES ($1)", ("a",), [(user_created("u3"), "u3")])
        assert await conn.fetchval("SELECT count(*) FROM outbox") == 2
        await conn.execute("DROP TABLE noted_changes")


async def test_the_relay_marks_a_batch_with_the_next_batchs_select(pool, bus, unique):
    """defer_mark (the relay's loop): a published batch is marked by the next read, in the same
    statement; the rows of the later batch are not read twice, nothing is published twice,
    and what is still unmarked when the relay stops is marked then."""
    await bus.ensure_stream(IDENTITY)
    outbox = Outbox(unique)
    first = await emit_committed(pool, outbox, [user_created(f"u{i}") for i in range(3)])
    relay = OutboxRelay(pool, bus, outbox)
    async with pool.acquire() as conn:
        assert await relay.publish_pending(conn, defer_mark=True) == 3
        assert await unpublished(pool) == 3  # published, not marked yet
        second = await emit_committed(pool, outbox, [user_created(f"v{i}") for i in range(2)])
        assert await relay.publish_pending(conn, defer_mark=True) == 2  # the first three not again
        assert await unpublished(pool) == 2  # the first batch marked by that read
        assert await relay.publish_pending(conn, defer_mark=True) == 0
        assert await unpublished(pool) == 0
    assert [m.id for m in await stream_messages(bus)] == [e.id for e in first + second]

    third = await emit_committed(pool, outbox, [user_created("w")])
    relay = OutboxRelay(pool, bus, outbox, poll_interval=60.0)
    relay.start()
    await wait_until(lambda: _equals(stream_length(bus), 6))
    await relay.stop()  # marked by then: after a short wait for a wake, or on the way out
    assert await unpublished(pool) == 0
    assert [m.id for m in await stream_messages(bus)] == [e.id for e in first + second + third]


async def stream_length(bus) -> int:
    return (await bus.js.stream_info(bus.stream_name(IDENTITY.name))).state.messages


async def _equals(awaitable, expected) -> bool:
    return await awaitable == expected


async def test_events_written_only_if_the_change_wrote_a_row(pool, unique):
    """execute_with_events(if_changed=True): a change that returned no row writes no event
    (and answers none); one that did writes them, in the same statement."""
    outbox = Outbox(unique)
    await pool.execute("CREATE TABLE IF NOT EXISTS guarded (id text PRIMARY KEY)")
    insert = "INSERT INTO guarded (id) SELECT $1::text WHERE $2::bool RETURNING 1"
    assert await outbox.execute_with_events(pool, insert, ("no", False), [(user_created("u0"), "u0")],
                                            if_changed=True) == []
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 0
    written = await outbox.execute_with_events(pool, insert, ("yes", True), [(user_created("u1"), "u1")],
                                               if_changed=True)
    assert [r["id"] for r in await pool.fetch("SELECT id FROM outbox")] == [e.id for e in written]
    assert await pool.fetchval("SELECT count(*) FROM guarded") == 1


async def test_several_changes_and_their_events_in_one_statement(pool, unique):
    """execute_with_events with a tuple of changes: they share the arguments and commit with
    the events, all or nothing."""
    outbox = Outbox(unique)
    await pool.execute("CREATE TABLE IF NOT EXISTS first_change (id text PRIMARY KEY)")
    await pool.execute("CREATE TABLE IF NOT EXISTS second_change (id text PRIMARY KEY, note text)")
    changes = ("INSERT INTO first_change (id) VALUES ($1)", "INSERT INTO second_change (id, note) VALUES ($1, $2)")
    written = await outbox.execute_with_events(pool, changes, ("a", "note"), [(user_created("u1"), "u1")])
    assert await pool.fetchval("SELECT note FROM second_change WHERE id = 'a'") == "note"
    assert await pool.fetchval("SELECT count(*) FROM first_change") == 1
    assert [r["id"] for r in await pool.fetch("SELECT id FROM outbox")] == [e.id for e in written]
    await pool.execute("INSERT INTO second_change (id) VALUES ('c')")
    with pytest.raises(asyncpg.UniqueViolationError):  # the second change fails: nothing of it stays
        await outbox.execute_with_events(pool, changes, ("c", "x"), [(user_created("u2"), "u2")])
    assert await pool.fetchval("SELECT count(*) FROM first_change") == 1
    assert await pool.fetchval("SELECT count(*) FROM outbox") == 1


async def test_a_change_that_wrote_no_event_wakes_no_relay(pool, unique):
    """The NOTIFY goes with the outbox rows: a change that wrote none wakes no relay (each
    wake is a SELECT that finds nothing)."""
    outbox = Outbox(unique)
    await pool.execute("CREATE TABLE IF NOT EXISTS quiet_guarded (id text PRIMARY KEY)")
    insert = "INSERT INTO quiet_guarded (id) SELECT $1::text WHERE $2::bool RETURNING 1"
    heard: list[str] = []

    def on_notify(_conn, _pid, channel, _payload) -> None:
        heard.append(channel)

    async with pool.acquire() as listener:
        await listener.add_listener(outbox.channel, on_notify)
        try:
            await outbox.execute_with_events(pool, insert, ("no", False), [(user_created("u0"), "u0")],
                                             if_changed=True)
            await asyncio.sleep(0.2)
            assert heard == []
            await outbox.execute_with_events(pool, insert, ("yes", True), [(user_created("u1"), "u1")],
                                             if_changed=True)
            for _ in range(100):
                if heard:
                    break
                await asyncio.sleep(0.01)
            assert heard == [outbox.channel]
        finally:
            await listener.remove_listener(outbox.channel, on_notify)


async def test_a_standby_relay_woken_by_notify_does_not_spin(pool, bus, unique):
    """A NOTIFY wakes every replica's relay; the one that does not lead goes back to waiting
    its poll interval (it never cleared the wake, so it tried the lock without pause)."""
    outbox = Outbox(unique)
    leader, standby = OutboxRelay(pool, bus, outbox), OutboxRelay(pool, bus, outbox)
    leader.start()
    for _ in range(200):
        if leader.is_leader:
            break
        await asyncio.sleep(0.01)
    sleeps = 0
    original = standby._sleep

    async def counting(seconds: float) -> bool:
        nonlocal sleeps
        sleeps += 1
        return await original(seconds)

    standby._sleep = counting
    standby.start()
    try:
        await asyncio.sleep(0.1)
        async with pool.acquire() as conn:
            for _ in range(3):
                await conn.execute("SELECT pg_notify($1, '')", outbox.channel)
        await asyncio.sleep(0.5)
        assert leader.is_leader and not standby.is_leader
        assert sleeps <= 6  # one per try (poll interval 1 s), one per NOTIFY at most
    finally:
        await standby.stop()
        await leader.stop()

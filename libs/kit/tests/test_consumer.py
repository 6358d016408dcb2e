"""Idempotent consumers against real PostgreSQL and JetStream."""

import asyncio
import contextlib

import msgspec
import pytest
from prometheus_client import REGISTRY

from tessera_events import STREAMS, Envelope
from tessera_events.identity import UserCreated, UserDeleted, UserSnapshot
from tessera_kit.consumer import EventConsumer, Subscription
from tessera_kit.context import current_tenant, tenant_scope
from tessera_kit.outbox import build_envelope

IDENTITY = STREAMS["identity"]


async def publish(bus, envelope: Envelope, msg_id: str | None = None):
    await bus.js.publish(
        bus.subject(envelope.type), msgspec.json.encode(envelope),
        headers={"Nats-Msg-Id": msg_id or envelope.id},
    )


def created(user_id: str) -> Envelope:
    return build_envelope(UserCreated(user=UserSnapshot(id=user_id)))


async def effects_table(pool):
    await pool.execute("CREATE TABLE IF NOT EXISTS effects (event_id text, user_id text)")


async def record_effect(conn, envelope: Envelope):
    data = msgspec.json.decode(envelope.data)
    await conn.execute("INSERT INTO effects VALUES ($1, $2)", envelope.id, data["user"]["id"])


async def wait_until(predicate, timeout=15.0):
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


@contextlib.asynccontextmanager
async def running(pool, bus, subscription: Subscription):
    """A consumer of the identity stream, started, and stopped on the way out."""
    consumer = EventConsumer(pool, bus, subscription, IDENTITY)
    await consumer.ensure()
    consumer.start()
    try:
        yield consumer
    finally:
        await consumer.stop()


async def count(pool, sql, *args) -> int:
    return await pool.fetchval(sql, *args)


async def test_consumer_down_while_events_published_applies_all_on_start(pool, bus):
    await effects_table(pool)
    await bus.ensure_stream(IDENTITY)
    sent = [created(f"u{i}") for i in range(25)]
    for envelope in sent:
        await publish(bus, envelope)

    async with running(pool, bus, Subscription("reader", (IDENTITY,), record_effect)) as consumer:
        await wait_until(lambda: _equals(count(pool, "SELECT count(*) FROM effects"), 25))
        await wait_until(lambda: _equals(consumer.pending(), 0))
    applied = [r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects")]
    assert sorted(applied) == sorted(e.id for e in sent)
    assert await count(pool, "SELECT count(*) FROM inbox WHERE consumer = 'reader'") == 25


async def _equals(awaitable, expected) -> bool:
    return await awaitable == expected


async def test_redelivered_event_is_applied_once(pool, bus):
    """The same event twice on the stream (e.g. published outside the dedupe window)."""
    await effects_table(pool)
    await bus.ensure_stream(IDENTITY)
    envelope = created("u1")
    await publish(bus, envelope, msg_id="first")
    await publish(bus, envelope, msg_id="second")
    async with running(pool, bus, Subscription("once", (IDENTITY,), record_effect)) as consumer:
        await wait_until(lambda: _equals(consumer.pending(), 0))
    assert await count(pool, "SELECT count(*) FROM effects") == 1


async def test_transient_failures_are_retried_then_applied(pool, bus):
    await effects_table(pool)
    await bus.ensure_stream(IDENTITY)
    attempts = []

    async def flaky(conn, envelope):
        attempts.append(envelope.id)
        if len(attempts) < 3:
            raise RuntimeError("database hiccup")
        await record_effect(conn, envelope)

    subscription = Subscription("flaky", (IDENTITY,), flaky, backoff_seconds=(0.05,))
    async with running(pool, bus, subscription) as consumer:
        await publish(bus, created("u1"))
        await wait_until(lambda: _equals(count(pool, "SELECT count(*) FROM effects"), 1))
    assert len(attempts) == 3
    assert await count(pool, "SELECT count(*) FROM dead_letters") == 0


async def test_an_outage_is_waited_out_never_dead_lettered(pool, bus):
    """A handler failing because a dependency is down (here: a PostgreSQL port nobody listens
    on) is retried for as long as it takes; max_deliveries counts only real failures, or a
    long outage would turn every event of that time into a dead letter (lost to the read model)."""
    import asyncpg

    from tessera_devstack.ports import free_port

    await effects_table(pool)
    await bus.ensure_stream(IDENTITY)
    await bus.ensure_dead_letter_stream()
    down = f"postgresql://nobody:none@127.0.0.1:{free_port()}/none"
    attempts = []

    async def during_an_outage(conn, envelope):
        attempts.append(envelope.id)
        if len(attempts) <= 4:
            await asyncpg.connect(down, timeout=2)  # refused
        await record_effect(conn, envelope)

    subscription = Subscription("patient", (IDENTITY,), during_an_outage, max_deliveries=2,
                                backoff_seconds=(0.05,))
    async with running(pool, bus, subscription):
        await publish(bus, created("u1"))
        await wait_until(lambda: _equals(count(pool, "SELECT count(*) FROM effects"), 1))
    assert len(attempts) == 5
    assert await count(pool, "SELECT count(*) FROM dead_letters") == 0


async def test_failing_handler_sends_message_to_dead_letter_subject_with_error(pool, bus):
    await bus.ensure_stream(IDENTITY)
    await bus.ensure_dead_letter_stream()
    dead = await bus.nc.subscribe(bus.dead_letter_subject("broken"))

    async def broken(conn, envelope):
        raise ValueError("cannot apply this")

    subscription = Subscription("broken", (IDENTITY,), broken, max_deliveries=3, backoff_seconds=(0.05,))
    envelope = created("u1")
    async with running(pool, bus, subscription) as consumer:
        dead_letters = ("tessera_consumer_dead_letters_total", {"consumer": consumer.durable})
        before = REGISTRY.get_sample_value(*dead_letters) or 0
        await publish(bus, envelope)
        message = await dead.next_msg(timeout=15)
        await wait_until(lambda: _equals(consumer.pending(), 0))  # acked, not redelivered forever
    assert REGISTRY.get_sample_value(*dead_letters) == before + 1  # on /metrics
    assert message.headers["Tessera-Error"] == "ValueError: cannot apply this"
    assert message.headers["Tessera-Deliveries"] == "3"
    assert message.headers["Tessera-Subject"] == "identity.user.created"
    assert msgspec.json.decode(message.data, type=Envelope).id == envelope.id
    row = await pool.fetchrow("SELECT event_id, deliveries, error FROM dead_letters")
    assert (row["event_id"], row["deliveries"]) == (envelope.id, 3)
    assert "cannot apply this" in row["error"]
    # The failed attempts left no inbox row: the effect was never half-applied.
    assert await count(pool, "SELECT count(*) FROM inbox") == 0


async def test_message_that_is_not_an_envelope_is_dead_lettered_at_once(pool, bus):
    await bus.ensure_stream(IDENTITY)
    await bus.ensure_dead_letter_stream()
    dead = await bus.nc.subscribe(bus.dead_letter_subject("strict"))
    calls = []

    async def handler(conn, envelope):
        calls.append(envelope)

    async with running(pool, bus, Subscription("strict", (IDENTITY,), handler)) as consumer:
        await bus.js.publish(bus.subject("identity.user.created"), b"not json")
        message = await dead.next_msg(timeout=10)
    assert message.data == b"not json"
    assert message.headers["Tessera-Deliveries"] == "1"
    assert calls == []


async def test_event_type_filter(pool, bus):
    await bus.ensure_stream(IDENTITY)
    seen = []

    async def handler(conn, envelope):
        seen.append(envelope.type)

    subscription = Subscription("deletions", (IDENTITY,), handler, event_types=("identity.user.deleted",))
    async with running(pool, bus, subscription) as consumer:
        await publish(bus, created("u1"))
        await publish(bus, build_envelope(UserDeleted(user_id="u1")))
        await wait_until(lambda: _equals(consumer.pending(), 0))
        await wait_until(lambda: _truthy(seen))
    assert seen == ["identity.user.deleted"]


async def _is(value, expected) -> bool:
    return value == expected


async def _truthy(value) -> bool:
    return bool(value)


@pytest.mark.parametrize("max_per_transaction", [100, 1])
async def test_a_backlog_is_applied_in_stream_order_sharing_transactions_up_to_the_limit(
        pool, bus, max_per_transaction):
    await bus.ensure_stream(IDENTITY)
    await pool.execute("DROP TABLE IF EXISTS batched")
    await pool.execute("CREATE TABLE batched (event_id text, txid bigint, seq serial)")
    sent = [created(f"u{i}") for i in range(40)]
    for envelope in sent:
        await publish(bus, envelope)

    async def record_with_transaction(conn, envelope):
        await conn.execute("INSERT INTO batched (event_id, txid) VALUES ($1, txid_current())", envelope.id)

    subscription = Subscription(f"batched{max_per_transaction}", (IDENTITY,), record_with_transaction,
                                max_per_transaction=max_per_transaction)
    async with running(pool, bus, subscription) as consumer:
        await wait_until(lambda: _equals(consumer.pending(), 0))
    rows = await pool.fetch("SELECT event_id, txid FROM batched ORDER BY seq")
    assert [r["event_id"] for r in rows] == [e.id for e in sent]
    transactions = len({r["txid"] for r in rows})
    if max_per_transaction == 1:
        assert transactions == len(sent)
    else:
        assert transactions < len(sent)  # several events shared a transaction
    assert consumer.applied == 40


async def test_a_steady_stream_is_gathered_into_shared_transactions(pool, bus):
    """gather_seconds: once events come one by one at a steady pace (here every 5 ms, the
    consumer idle in between), they wait for company and share transactions; without it each
    has a transaction of its own."""
    await bus.ensure_stream(IDENTITY)
    await pool.execute("DROP TABLE IF EXISTS gathered")
    await pool.execute("CREATE TABLE gathered (event_id text, txid bigint, seq serial)")

    async def record_with_transaction(conn, envelope):
        await conn.execute("INSERT INTO gathered (event_id, txid) VALUES ($1, txid_current())", envelope.id)

    sent = [created(f"g{i}") for i in range(40)]
    subscription = Subscription("gathering", (IDENTITY,), record_with_transaction, gather_seconds=0.2)
    async with running(pool, bus, subscription) as consumer:
        await asyncio.sleep(0.3)  # its pull request is out
        for envelope in sent:
            await publish(bus, envelope)
            await asyncio.sleep(0.005)
        await wait_until(lambda: _equals(consumer.pending(), 0))
    rows = await pool.fetch("SELECT event_id, txid FROM gathered ORDER BY seq")
    assert [r["event_id"] for r in rows] == [e.id for e in sent]
    # The pace is known after the first dozen or so; the last 20 came within ~0.1 s.
    assert len({r["txid"] for r in rows[-20:]}) <= 3


async def test_an_event_of_a_quiet_moment_is_applied_without_gathering(pool, bus):
    """A lone event (a request's, read back right after by its client) is not held for
    company that is not coming."""
    await effects_table(pool)
    await bus.ensure_stream(IDENTITY)
    subscription = Subscription("quiet", (IDENTITY,), record_effect, gather_seconds=1.0)
    async with running(pool, bus, subscription):
        await asyncio.sleep(0.3)
        loop = asyncio.get_running_loop()
        for name in ("first", "second"):  # the second a second later: still quiet
            lone = created(name)
            published = loop.time()
            await publish(bus, lone)
            await wait_until(lambda: _equals(count(pool, "SELECT count(*) FROM effects WHERE event_id = $1",
                                                    lone.id), 1))
            # Gathering would sleep the whole gather_seconds first: the only bound that tells.
            assert loop.time() - published < subscription.gather_seconds
            await asyncio.sleep(1.0)


async def test_a_consumer_stopped_while_it_gathers_hands_the_events_back_at_once(pool, bus):
    """Messages in hand when stop() is called are given back, not left to run out their ack
    wait (here a minute) in the stopped consumer's pull request: the next instance applies
    them now."""
    await effects_table(pool)
    await bus.ensure_stream(IDENTITY)
    subscription = Subscription("handing-back", (IDENTITY,), record_effect, gather_seconds=1.0,
                                ack_wait_seconds=60.0)
    first = EventConsumer(pool, bus, subscription, IDENTITY)
    await first.ensure()
    first.start()
    first._gap = 0.0  # a stream, as far as it knows: the next message gathers
    await asyncio.sleep(0.3)
    envelope = created("handed back")
    await publish(bus, envelope)

    async def in_hand() -> bool:
        return not first._idle.is_set()
    await wait_until(in_hand)
    await first.stop()
    assert not first._task.cancelled()  # it ended as it handed them back: no pulling afterwards
    assert await count(pool, "SELECT count(*) FROM effects WHERE event_id = $1", envelope.id) == 0
    async with running(pool, bus, subscription):
        await wait_until(lambda: _equals(count(pool, "SELECT count(*) FROM effects WHERE event_id = $1",
                                                envelope.id), 1), timeout=10.0)


def test_gathering_is_at_most_a_second() -> None:
    with pytest.raises(ValueError):
        Subscription("slow", (IDENTITY,), record_effect, gather_seconds=5.0)


async def test_a_batch_handler_gets_the_new_events_of_a_batch_at_once_in_stream_order(pool, bus):
    """The batch path: one call for the events a transaction applies (each once, in stream
    order, an event already applied left out); a lone message still goes to `handler`."""
    await bus.ensure_stream(IDENTITY)
    sent = [created(f"u{i}") for i in range(40)]
    for envelope in sent[:10]:
        await publish(bus, envelope)
    batches: list[list[str]] = []
    one_by_one: list[str] = []

    async def handler(conn, envelope):
        one_by_one.append(envelope.id)

    async def batch_handler(conn, envelopes):
        assert await conn.fetchval("SELECT count(*) FROM inbox WHERE event_id = ANY($1::text[])",
                                   [e.id for e in envelopes]) == len(envelopes)  # in the inbox's transaction
        batches.append([e.id for e in envelopes])

    subscription = Subscription("batch-handler", (IDENTITY,), handler, batch_handler=batch_handler)
    async with running(pool, bus, subscription) as consumer:
        await wait_until(lambda: _is(consumer.applied, 10))
        await publish(bus, sent[3])  # again: already applied
        for envelope in sent[10:]:
            await publish(bus, envelope)
        await wait_until(lambda: _is(consumer.applied, 40))
        await wait_until(lambda: _equals(consumer.pending(), 0))
    applied = [event_id for batch in batches for event_id in batch] + one_by_one
    assert sorted(applied) == sorted(e.id for e in sent)  # each exactly once
    assert len(applied) == 40
    assert batches and all(len(batch) > 1 for batch in batches)
    order = {e.id: n for n, e in enumerate(sent)}
    assert all(batch == sorted(batch, key=order.get) for batch in batches)


async def test_one_bad_event_in_a_backlog_holds_back_none_of_the_others(pool, bus):
    await effects_table(pool)
    await bus.ensure_stream(IDENTITY)
    await bus.ensure_dead_letter_stream()
    dead = await bus.nc.subscribe(bus.dead_letter_subject("picky"))
    sent = [created(f"u{i}") for i in range(30)]
    bad = sent[11]
    for envelope in sent:
        await publish(bus, envelope)

    async def picky(conn, envelope):
        if envelope.id == bad.id:
            raise ValueError("not this one")
        await record_effect(conn, envelope)

    subscription = Subscription("picky", (IDENTITY,), picky, max_deliveries=2, backoff_seconds=(0.05,))
    async with running(pool, bus, subscription) as consumer:
        message = await dead.next_msg(timeout=15)
        await wait_until(lambda: _equals(consumer.pending(), 0))
    assert msgspec.json.decode(message.data, type=Envelope).id == bad.id
    applied = [r["event_id"] for r in await pool.fetch("SELECT event_id FROM effects")]
    assert sorted(applied) == sorted(e.id for e in sent if e is not bad)  # each once
    assert await count(pool, "SELECT count(*) FROM inbox WHERE consumer = 'picky'") == 29


async def test_a_handler_acts_for_the_tenant_of_its_event(pool, bus):
    """The event's tenant is the handler's (what it stores, the events and rpc it causes)."""
    await bus.ensure_stream(IDENTITY)
    await pool.execute("CREATE TABLE IF NOT EXISTS tenant_effects (event_id text, tenant text, emitted text)")

    async def record_tenant(conn, envelope: Envelope):
        caused = build_envelope(UserDeleted(user_id="x"))  # stamped with the handler's tenant
        await conn.execute("INSERT INTO tenant_effects VALUES ($1, $2, $3)",
                           envelope.id, current_tenant(), caused.tenant_id)

    sent = []
    for tenant in ("admin", "default", "admin"):
        with tenant_scope(tenant):
            sent.append(created(f"t-{tenant}"))
    assert [e.tenant_id for e in sent] == ["admin", "default", "admin"]
    for envelope in sent:
        await publish(bus, envelope)
    async with running(pool, bus, Subscription("tenants", (IDENTITY,), record_tenant)) as consumer:
        await wait_until(lambda: _equals(count(pool, "SELECT count(*) FROM tenant_effects"), 3))
        await wait_until(lambda: _equals(consumer.pending(), 0))
    rows = {r["event_id"]: (r["tenant"], r["emitted"]) for r in await pool.fetch("SELECT * FROM tenant_effects")}
    assert rows == {e.id: (e.tenant_id, e.tenant_id) for e in sent}
    assert current_tenant() == "default"


async def test_a_statement_applies_events_with_their_inbox_rows_in_one_statement(pool, bus):
    """Subscription.statement: the effect and the inbox rows in one statement, for a batch and
    for a lone event, each event once (a repeat in the batch, a redelivery); None hands the
    events to the handlers."""
    await bus.ensure_stream(IDENTITY)
    await pool.execute("DROP TABLE IF EXISTS stated")
    await pool.execute("CREATE TABLE stated (event_id text, user_id text, txid bigint)")
    handled: list[str] = []

    async def handler(conn, envelope):
        handled.append(envelope.id)
        await record_effect(conn, envelope)

    def statement(envelopes, first):
        users = [msgspec.json.decode(e.data)["user"]["id"] for e in envelopes]
        if "by-handler" in users:
            return None
        return ([f"effect AS (INSERT INTO stated SELECT event_id, user_id, txid_current()"
                 f" FROM unnest(${first}::text[], ${first + 1}::text[]) AS t(event_id, user_id)"
                 f" WHERE event_id IN (SELECT event_id FROM fresh))"],
                [[e.id for e in envelopes], users])

    await effects_table(pool)
    subscription = Subscription("stated", (IDENTITY,), handler, statement=statement)
    consumer = EventConsumer(pool, bus, subscription, IDENTITY)
    batch = [created(f"u{i}") for i in range(5)]
    assert await consumer.apply_many([*batch, batch[1]]) == 5
    assert await consumer.apply_many(batch[:2]) == 0  # delivered again: nothing twice
    lone = created("lone")
    assert await consumer.apply(lone) is True
    assert await consumer.apply(lone) is False
    rows = await pool.fetch("SELECT event_id, user_id, txid FROM stated")
    assert sorted(r["event_id"] for r in rows) == sorted(e.id for e in [*batch, lone])
    assert len({r["txid"] for r in rows if r["event_id"] != lone.id}) == 1  # the batch: one transaction
    assert handled == []
    assert await count(pool, "SELECT count(*) FROM inbox WHERE consumer = 'stated'") == 6
    assert consumer.applied == 6

    other = created("by-handler")
    assert await consumer.apply_many([other, created("u9")]) == 2  # the handlers' path
    assert other.id in handled
    # And from the stream: published events arrive through the same path.
    streamed = [created(f"s{i}") for i in range(10)]
    async with running(pool, bus, subscription) as running_consumer:
        for envelope in streamed:
            await publish(bus, envelope)
        await wait_until(lambda: _equals(count(pool, "SELECT count(*) FROM stated WHERE user_id LIKE 's%'"), 10))
        await wait_until(lambda: _equals(running_consumer.pending(), 0))


async def test_a_statement_with_a_condition_leaves_the_events_to_the_handlers_when_it_fails(pool, bus):
    """The builder's condition: when it holds the statement applies the events; when it does
    not, nothing is written (no inbox row either) and the handlers apply them."""
    await pool.execute("DROP TABLE IF EXISTS conditioned")
    await pool.execute("CREATE TABLE conditioned (event_id text, path text)")
    await effects_table(pool)
    gate = {"open": True}
    handled: list[str] = []

    async def handler(conn, envelope):
        handled.append(envelope.id)
        await conn.execute("INSERT INTO conditioned VALUES ($1, 'handler')", envelope.id)

    def statement(envelopes, first):
        return ([f"effect AS (INSERT INTO conditioned SELECT event_id, 'statement' FROM unnest(${first}::text[])"
                 " AS t(event_id) WHERE event_id IN (SELECT event_id FROM fresh))"],
                [[e.id for e in envelopes], gate["open"]], f"${first + 1}::bool")

    consumer = EventConsumer(pool, bus, Subscription("conditioned", (IDENTITY,), handler, statement=statement),
                             IDENTITY)
    first, second = created("u1"), created("u2")
    assert await consumer.apply(first) is True
    gate["open"] = False
    assert await consumer.apply(second) is True
    assert await consumer.apply(second) is False  # the handlers' path keeps its inbox row too
    rows = {r["event_id"]: r["path"] for r in await pool.fetch("SELECT event_id, path FROM conditioned")}
    assert rows == {first.id: "statement", second.id: "handler"} and handled == [second.id]
    assert await count(pool, "SELECT count(*) FROM inbox WHERE consumer = 'conditioned'") == 2

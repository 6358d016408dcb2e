"""Transactional outbox: events are rows written with the change they announce.

`Outbox.emit` inserts the envelope in the caller's transaction and notifies the
relay. `OutboxRelay` publishes unpublished rows to JetStream in `seq` order with
`Nats-Msg-Id` = event id and the CloudEvents `ce-*` headers (binary mode), then marks them
published. A crash between commit and
publish loses nothing (the row waits); a crash between publish and mark publishes
nothing twice (JetStream drops the repeated id within its duplicate window).

Order per aggregate: a change to an aggregate locks its row, so a later change's
outbox row gets a later `seq` and is published after. One relay per schema is the
leader (an advisory lock), so replicas do not interleave.

The relay's connection is the service's one long-lived session: every replica holds it
(leading or waiting to), so the service's timed jobs follow its leadership
(tessera_kit.periodic) and its other LISTENs ride on it (`listen`) rather than each holding a
connection, a PostgreSQL backend of ~2 MB, of its own.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
import zlib
from typing import Callable

import asyncpg
import msgspec

from tessera_events import Actor, Envelope, EventData, cloudevents, event_type_of
from tessera_kit.bus import Bus
from tessera_kit.context import current_actor, current_request_id, current_tenant
from tessera_kit.ids import new_id
from tessera_kit import metrics
from tessera_kit.logging import get_logger
from tessera_kit.tasks import stop_within

log = get_logger(__name__)
_encoder = msgspec.json.Encoder()


def now_ms() -> int:
    return int(time.time() * 1000)


def build_envelope(
    data: EventData,
    *,
    tenant_id: str | None = None,
    actor: Actor | None = None,
    request_id: str | None = None,
) -> Envelope:
    entry = event_type_of(data)
    return Envelope(
        id=new_id(),
        type=entry.type,
        version=entry.version,
        tenant_id=tenant_id or current_tenant(),
        occurred_at=now_ms(),
        actor=actor or current_actor(),
        request_id=request_id or current_request_id(),
        data=msgspec.Raw(_encoder.encode(data)),
    )


# The row and its notification in one statement (one round trip); the NOTIFY is delivered
# at commit, not before, so the relay never sees uncommitted rows.
_INSERT_AND_NOTIFY = (
    "WITH inserted AS (INSERT INTO outbox (id, tenant_id, subject, aggregate_id, envelope)"
    " VALUES ($1, $2, $3, $4, $5) RETURNING 1)"
    " SELECT pg_notify($6, '') FROM inserted"
)


def _insert_events(first: int, *, if_changed: bool = False) -> str:
    """The outbox rows of a batch of events (five arrays from `$first`) and their NOTIFY (the
    channel after them), as the tail of one WITH statement: the insert commits with the NOTIFY
    or not at all, in one round trip. `if_changed`: only if the CTE `change` returned a row."""
    p = [f"${first + i}" for i in range(6)]
    condition = " WHERE EXISTS (SELECT FROM change)" if if_changed else ""
    return (
        f"inserted AS (INSERT INTO outbox (id, tenant_id, subject, aggregate_id, envelope)"
        f" SELECT * FROM unnest({p[0]}::text[], {p[1]}::text[], {p[2]}::text[], {p[3]}::text[],"
        f" {p[4]}::bytea[]){condition} RETURNING 1)"
        # The NOTIFY only with a row: a change that wrote no event wakes no relay.
        f" SELECT (SELECT pg_notify({p[5]}, '') FROM inserted LIMIT 1), (SELECT count(*) FROM inserted)"
    )


_INSERT_MANY_AND_NOTIFY = "WITH " + _insert_events(1)


def _row(envelope: Envelope, aggregate_id: str | None) -> tuple:
    return (envelope.id, envelope.tenant_id, envelope.type, aggregate_id, _encoder.encode(envelope))


class Outbox:
    def __init__(self, schema: str) -> None:
        self.schema = schema
        self.channel = f"outbox_{schema}"

    async def emit(
        self,
        conn: asyncpg.Connection,
        data: EventData,
        *,
        aggregate_id: str | None = None,
        tenant_id: str | None = None,
        actor: Actor | None = None,
    ) -> Envelope:
        """Write `data` as an event in the caller's (open) transaction."""
        if not conn.is_in_transaction():
            raise RuntimeError("Outbox.emit must run inside the transaction of the change")
        envelope = build_envelope(data, tenant_id=tenant_id, actor=actor)
        await conn.execute(_INSERT_AND_NOTIFY, *_row(envelope, aggregate_id), self.channel)
        return envelope

    async def emit_many(
        self, conn: asyncpg.Connection, events: list[tuple[EventData, str | None, str | None]],
    ) -> list[Envelope]:
        """Write several events, each `(data, aggregate_id, tenant_id)`, in the caller's (open)
        transaction: one statement for all of them and one notification."""
        if not conn.is_in_transaction():
            raise RuntimeError("Outbox.emit_many must run inside the transaction of the change")
        if not events:
            return []
        envelopes = [build_envelope(data, tenant_id=tenant_id) for data, _, tenant_id in events]
        rows = [_row(envelope, aggregate_id) for envelope, (_, aggregate_id, _) in zip(envelopes, events)]
        await conn.fetchrow(_INSERT_MANY_AND_NOTIFY, *zip(*rows), self.channel)
        return envelopes

    async def execute_with_events(
        self,
        executor: asyncpg.Connection | asyncpg.Pool,
        change_sql: str | tuple[str, ...],
        change_args: tuple | list,
        events: list[tuple[EventData, str | None]],
        *,
        tenant_id: str | None = None,
        if_changed: bool = False,
    ) -> list[Envelope]:
        """Run one data-changing statement and write its events (`(data, aggregate_id)`) in
        one round trip: outside a transaction it is atomic by itself (see
        `with_events_statement`); inside one it commits with the rest. With `if_changed`
        (`change_sql` has a RETURNING clause) the events are written only if the change
        returned a row, and none are returned otherwise. Several changes (a tuple) share the
        arguments and run in the same statement (`if_changed` looks at the first)."""
        envelopes = [build_envelope(data, tenant_id=tenant_id) for data, _ in events]
        rows = [_row(envelope, aggregate_id) for envelope, (_, aggregate_id) in zip(envelopes, events)]
        columns = [list(column) for column in zip(*rows)] if rows else [[], [], [], [], []]
        row = await executor.fetchrow(with_events_statement(change_sql, len(change_args), if_changed),
                                      *change_args, *columns, self.channel)
        if if_changed and rows and not row[1]:
            return []
        return envelopes


@functools.cache  # a handful of change statements, built once each (asyncpg caches by text)
def with_events_statement(change_sql: str | tuple[str, ...], change_args: int, if_changed: bool = False) -> str:
    """`change_sql` (one INSERT, UPDATE or DELETE taking $1..$`change_args`) and the outbox
    rows of its events (the next five arrays) and their NOTIFY (the channel after them) as ONE
    statement. A single statement is atomic by itself: the change and its events commit
    together or not at all, with no BEGIN and COMMIT round trips. PostgreSQL runs a
    data-modifying WITH exactly once whether or not the query reads it. `if_changed`: the
    events only if the change returned a row (its RETURNING)."""
    changes = (change_sql,) if isinstance(change_sql, str) else change_sql
    ctes = "".join(f"change{f'_{n}' if n else ''} AS ({sql}), " for n, sql in enumerate(changes))
    return f"WITH {ctes}" + _insert_events(change_args + 1, if_changed=if_changed)


class GroupCommitEmitter:
    """For events that announce no row change (a stateless JWT was issued): each caller
    waits until its event is committed, but the events of concurrent callers share one
    transaction, so a burst of N costs one commit instead of N.

    Nothing is lost: `emit` returns only once the event is durable (a caller answers its
    client after that), and a failed commit raises in every caller of that batch.
    """

    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, *, commits_in_flight: int = 4) -> None:
        self.pool = pool
        self.outbox = outbox
        self.commits_in_flight = commits_in_flight
        self._waiting: list[tuple[tuple, asyncio.Future]] = []
        self._committers: set[asyncio.Task] = set()

    async def emit(
        self, data: EventData, *, aggregate_id: str | None = None, tenant_id: str | None = None
    ) -> Envelope:
        envelope = build_envelope(data, tenant_id=tenant_id)
        done = asyncio.get_running_loop().create_future()
        self._waiting.append((_row(envelope, aggregate_id), done))
        if len(self._committers) < self.commits_in_flight:
            committer = asyncio.create_task(self._commit_while_waiting())
            self._committers.add(committer)
            committer.add_done_callback(self._committers.discard)
        await asyncio.shield(done)
        return envelope

    async def _commit_while_waiting(self) -> None:
        # While a batch commits, the next gathers; each round takes all who wait. A few
        # committers overlap, so a request waits for about one commit, not a queue of them.
        while self._waiting:
            batch, self._waiting = self._waiting, []
            columns = list(zip(*(row for row, _ in batch)))
            try:
                await self.pool.fetchrow(_INSERT_MANY_AND_NOTIFY, *columns, self.outbox.channel)
            except Exception as exc:
                for _, done in batch:
                    if not done.done():
                        done.set_exception(exc)
                continue
            for _, done in batch:
                if not done.done():
                    done.set_result(None)


# The relay's read of the next batch, marking the batch before it published in the same
# statement ($2, maybe empty). The SELECT sees the rows as they were before the UPDATE, so it
# leaves those out itself.
_MARK_AND_SELECT = (
    "WITH marked AS (UPDATE outbox SET published_at = now() WHERE seq = ANY($2::bigint[]))"
    " SELECT seq, id, subject, aggregate_id, envelope,"
    " extract(epoch FROM clock_timestamp() - created_at)::float8 AS waited FROM outbox"
    " WHERE published_at IS NULL AND seq <> ALL($2::bigint[]) ORDER BY seq LIMIT $1"
)

# How long a published batch may wait for the next wake to mark it (in its SELECT) before it is
# marked alone: longer than the gap between wakes under load, short for the backlog gauge.
MARK_DELAY_SECONDS = 0.1

# How long the relay waits for JetStream to acknowledge a batch it sent (nats-py's default
# for one publish).
PUBLISH_TIMEOUT_SECONDS = 5.0


class OutboxRelay:
    def __init__(
        self,
        pool: asyncpg.Pool,
        bus: Bus,
        outbox: Outbox,
        *,
        poll_interval: float = 1.0,
        batch_size: int = 200,
        retention_seconds: int = 86400,
    ) -> None:
        self.pool = pool
        self.bus = bus
        self.outbox = outbox
        self.poll_interval = poll_interval
        self.batch_size = batch_size
        self.retention_seconds = retention_seconds
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        # Its advisory lock's key: one relay leads per schema.
        self.lock_key = zlib.crc32(f"tessera-relay:{outbox.schema}".encode())
        self._last_purge = -math.inf  # the first round purges (the monotonic clock counts from boot)
        self._stopping = False
        self.is_leader = False  # holds the advisory lock
        # When its connection last answered a query (loop time); -inf: not since it was opened,
        # or its last query failed (0.0 would not do: the loop's clock counts from boot).
        self._confirmed_at = -math.inf
        self._answered = asyncio.Event()  # its connection has answered once
        self._unmarked: list[int] = []  # published, to be marked with the next SELECT
        # The channels LISTENed on the relay's connection: its own, then the service's others.
        self._listeners: list[tuple[str, Callable[..., None]]] = [(outbox.channel, self._on_notify)]
        self._listening = 0  # how many of them the current connection listens on

    def listen(self, channel: str, callback: Callable[..., None]) -> None:
        """LISTEN on `channel` too, on this relay's connection (and again on each new one).
        `callback` is also called once each time that LISTEN starts: what was notified before
        it (the listener new, or the connection replaced) reached no one, so look now."""
        self._listeners.append((channel, callback))
        self._wake.set()

    async def _listen_to_new(self, conn: asyncpg.Connection) -> None:
        while self._listening < len(self._listeners):
            channel, callback = self._listeners[self._listening]
            await conn.add_listener(channel, callback)
            self._listening += 1
            if self._listening > 1:  # the relay's own looks at the outbox anyway
                # Soon, as asyncpg calls it for a NOTIFY: what it raises stays out of this loop.
                asyncio.get_running_loop().call_soon(callback, conn, 0, channel, "")

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"outbox-relay-{self.outbox.schema}")

    async def stop(self) -> None:
        """Finish the batch in flight (cancelling mid-query would break the connection)."""
        self._stopping = True
        self._wake.set()
        await stop_within(self._task, 5.0)

    def _on_notify(self, *_args) -> None:
        if self.is_leader:  # a commit's NOTIFY is for the leader; a standby tries on its timer
            self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                async with self.pool.acquire() as conn:
                    self._listening = 0
                    try:
                        # Its commits (marks, purges) do not wait for the WAL flush: what a server
                        # crash loses of them (up to ~3 wal_writer_delay) is published again once
                        # the database is back, and dropped as repeats by JetStream (within its
                        # duplicate window) or by the consumers' inboxes (after it).
                        await conn.execute("SET synchronous_commit = off")
                        await self._listen_to_new(conn)
                        while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", self.lock_key):
                            self._confirm()
                            # Another replica leads: try again in a while, or at once for
                            # stop() or a new listen() (a wake during the query is kept).
                            await self._sleep(self.poll_interval)
                            self._wake.clear()
                            if self._stopping:
                                return
                            await self._listen_to_new(conn)
                        self.is_leader = True
                        self._confirm()
                        await self._lead(conn)
                    finally:
                        self.is_leader = False
                        self._confirmed_at = -math.inf  # vouches for nothing until it answers again
                        await self._let_go(conn)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._confirmed_at = -math.inf
                log.warning("outbox relay restarting", error=str(exc))
                await self._sleep(self.poll_interval)

    def _confirm(self) -> None:
        self._confirmed_at = asyncio.get_running_loop().time()
        self._answered.set()

    async def first_answer(self, timeout: float) -> None:
        """Wait (at most `timeout`) for its connection's first answer: readiness, asked as soon
        as the service starts, then needs no pooled connection either (without one in time,
        readiness asks the pool)."""
        try:
            await asyncio.wait_for(self._answered.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def leads(self) -> bool:
        """Holds the lock, as its connection confirmed lately: the leader queries at least every
        `poll_interval` (a batch may wait PUBLISH_TIMEOUT_SECONDS for NATS), so a relay stuck on a
        dead connection (whose lock another replica may hold by now) stops counting as the
        leader within seconds, long before a TCP timeout would end it.
        Timed jobs follow this (tessera_kit.periodic)."""
        if not self.is_leader:
            return False
        return (asyncio.get_running_loop().time() - self._confirmed_at
                < 3 * self.poll_interval + PUBLISH_TIMEOUT_SECONDS + 2.0)

    def answered_lately(self) -> bool:
        """Its connection answered a query within about two rounds (the leader's and a standby's
        loops each query every `poll_interval`), and none has failed since: the database is
        there for this service. Readiness asks this first, so a probe needs no pooled connection
        of its own (a PostgreSQL backend, ~2 MB, kept by every probed service at rest)."""
        return asyncio.get_running_loop().time() - self._confirmed_at < 2 * self.poll_interval + 1.0

    async def _let_go(self, conn: asyncpg.Connection) -> None:
        """Unlock, unlisten and reset the commit setting before the connection goes back to the
        pool (pooled connections are not reset); if that fails or hangs, the connection is
        closed instead, so no lock, LISTEN or setting stays with a pooled one."""
        try:
            async with asyncio.timeout(2.0):
                await conn.execute("SELECT pg_advisory_unlock_all(); RESET synchronous_commit")
                for channel, callback in self._listeners[:self._listening]:
                    await conn.remove_listener(channel, callback)
        except BaseException:
            conn.terminate()
            raise

    async def _sleep(self, seconds: float) -> bool:
        """Sleep until woken by NOTIFY, by stop(), or for `seconds`; True when woken."""
        try:
            await asyncio.wait_for(self._wake.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def _lead(self, conn: asyncpg.Connection) -> None:
        try:
            while not self._stopping:
                self._wake.clear()
                await self._listen_to_new(conn)
                published = await self.publish_pending(conn, defer_mark=True)
                self._confirm()
                if published >= self.batch_size:
                    continue
                await self._purge_if_due(conn)
                # Under load the next NOTIFY comes within milliseconds and its SELECT marks
                # this batch; when none comes soon, the marks go on their own.
                if self._unmarked and not await self._sleep(min(MARK_DELAY_SECONDS, self.poll_interval)):
                    await self._flush_marks(conn)
                if not self._unmarked:
                    await self._sleep(self.poll_interval)
        finally:
            if not conn.is_closed():
                await self._flush_marks(conn)

    async def _flush_marks(self, conn: asyncpg.Connection) -> None:
        if self._unmarked:
            seqs, self._unmarked = self._unmarked, []
            await self.mark_published(conn, seqs)

    async def publish_pending(self, conn: asyncpg.Connection, *, defer_mark: bool = False) -> int:
        """Publish the oldest unpublished rows (a batch) and mark them published. With
        `defer_mark` (the relay's loop) a fully published batch is marked by the next call's
        SELECT, in the same statement: one round trip per wake instead of two. Until then its
        rows still look unpublished (the loop marks them alone after MARK_DELAY_SECONDS
        without a wake); should the relay die before, the next leader publishes them again and
        JetStream drops the repeats (its duplicate window is far longer)."""
        marks, self._unmarked = self._unmarked, []
        try:
            rows = await conn.fetch(_MARK_AND_SELECT, self.batch_size, marks)
        except BaseException:
            self._unmarked = marks + self._unmarked  # not marked: with the next one
            raise
        done: list[int] = []
        acks: list[asyncio.Future] = []
        try:
            # Pipelined: the whole batch goes out in one write, then the acks are read in order
            # (one write and one ack wait per event cost more than the event). Each event after
            # the first names the one before it as the stream's last (`Nats-Expected-Last-Msg-Id`):
            # JetStream stores it only right after that one, so if an event fails, those after
            # it in the batch fail too and are sent again after it, in `seq` order. A repeated
            # id is acknowledged as a duplicate before that check, as after a crash.
            previous: str | None = None
            for row in rows:
                headers = {"Nats-Msg-Id": row["id"],
                           **cloudevents.headers_for(row["envelope"], row["aggregate_id"])}
                if previous is not None:
                    headers["Nats-Expected-Last-Msg-Id"] = previous
                acks.append(await self.bus.acks.publish(
                    self.bus.subject(row["subject"]), row["envelope"], headers))
                previous = row["id"]
            async with asyncio.timeout(PUBLISH_TIMEOUT_SECONDS):
                for row, ack in zip(rows, acks):
                    await ack
                    done.append(row["seq"])
                    metrics.OUTBOX_RELAY_LAG.observe(row["waited"])
        finally:
            moot = acks[len(done):]  # after a failure: no longer awaited
            self.bus.acks.forget(moot)
            for ack in moot:
                if ack.done() and not ack.cancelled():
                    ack.exception()  # seen, so asyncio does not log it as never retrieved
            # Mark what went out even if a later publish failed; the rest waits in order.
            if done and defer_mark and len(done) == len(rows):
                self._unmarked = done
            elif done:
                await self.mark_published(conn, done)
        return len(done)

    async def mark_published(self, conn: asyncpg.Connection, seqs: list[int]) -> None:
        await conn.execute("UPDATE outbox SET published_at = now() WHERE seq = ANY($1)", seqs)

    async def _purge_if_due(self, conn: asyncpg.Connection) -> None:
        if time.monotonic() - self._last_purge < 60:
            return
        self._last_purge = time.monotonic()
        await conn.execute(
            "DELETE FROM outbox WHERE published_at < now() - make_interval(secs => $1)",
            float(self.retention_seconds),
        )

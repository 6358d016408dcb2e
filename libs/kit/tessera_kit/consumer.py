"""Idempotent event consumers: durable JetStream pull consumers with explicit acks.

Each message is applied in one database transaction together with an inbox row
(consumer, event id); a redelivered event finds its inbox row and is only acked.
A handler that keeps failing is retried with backoff; after `max_deliveries` tries
the message goes to the dead-letter subject with the error (and a `dead_letters`
row), then is acked. Nothing is dropped silently: if even the dead-letter publish
fails, the message is left for redelivery.

The pull loop keeps one pull request outstanding on the consumer and handles
messages as the server streams them in, so an event is applied within
milliseconds of being published, without polling. Messages that arrive together
(a burst, a backlog, or within the subscription's `gather_seconds`) are applied in
one transaction; if that fails, each is retried on its own, so one bad message
never holds the others back.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from typing import Awaitable, Callable

import asyncpg
from nats.aio.msg import Msg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tessera_events import Envelope, Stream, decode_envelope
from tessera_kit.access import durable_name
from tessera_kit.bus import Bus
from tessera_kit.context import actor_var, request_id_var, tenant_var
from tessera_kit import metrics
from tessera_kit.logging import get_logger
from tessera_kit.outage import is_outage
from tessera_kit.tasks import cancel_and_wait

log = get_logger(__name__)

Handler = Callable[[asyncpg.Connection, Envelope], Awaitable[None]]
# Several new events at once, in stream order, in the caller's transaction.
BatchHandler = Callable[[asyncpg.Connection, list[Envelope]], Awaitable[None]]
# The effect of some events as data-modifying CTEs of one statement (see Subscription.statement):
# given the events and the number of the first parameter free for it, the CTE texts and their
# arguments, and optionally a condition (an SQL boolean on the same parameters) under which
# the statement applies them; or None, and the handlers apply these events.
StatementBuilder = Callable[[list[Envelope], int], "tuple[list[str], list] | tuple[list[str], list, str] | None"]


def _one_statement(ctes: list[str], condition: str | None) -> str:
    """The inbox rows of some events (the CTE `fresh`: the ids of the events not applied before,
    once each, whatever the batch repeats), the subscription's CTEs, and how many were new.
    With a condition, nothing is written unless it holds, and `held` says whether it did."""
    guard, held = "", "true"
    if condition is not None:
        guard, held = f"pre AS MATERIALIZED (SELECT ({condition}) AS held), ", "(SELECT held FROM pre)"
    return (
        f"WITH {guard}fresh AS (INSERT INTO inbox (consumer, event_id, tenant_id)"
        " SELECT $1, event_id, tenant_id FROM unnest($2::text[], $3::text[]) AS t(event_id, tenant_id)"
        f" WHERE {held} ON CONFLICT DO NOTHING RETURNING event_id)"
        + "".join(f", {cte}" for cte in ctes)
        + f" SELECT {held} AS held, (SELECT count(*) FROM fresh) AS applied"
    )


@dataclass(frozen=True)
class Subscription:
    """What a service consumes: a durable name, the streams, optional event types."""

    name: str
    streams: tuple[Stream, ...]
    handler: Handler
    event_types: tuple[str, ...] = ()  # empty: every event of the streams
    max_deliveries: int = 5
    batch_size: int = 256
    ack_wait_seconds: float = 30.0
    backoff_seconds: tuple[float, ...] = field(default=(0.1, 0.5, 2.0, 5.0))
    # Messages that arrived together share one transaction, up to this many. 1 when the
    # handler locks rows that requests also lock: a batch takes its row locks in stream
    # order, a request in its own, and the two could deadlock.
    max_per_transaction: int = 100
    # How long a message of a steady stream waits for more to join its transaction (0: applied
    # at once with whatever has already arrived). Hundreds a second, each alone, cost a
    # statement, a commit and a wake-up per event; a consumer whose effect may lag a little
    # (the audit log) gathers them. Only while messages come faster than GATHER_COMPANY per
    # gather_seconds: an event of a quiet moment is applied at once, so a read right after the
    # request that caused it finds it (Logto's API tests read the logs so). At most a second,
    # well inside stop()'s wait. Never for a consumer a user waits on (webhooks).
    gather_seconds: float = 0.0
    # Optional: applies the new events of a batch together (one statement for many rows);
    # `handler` still applies an event on its own (a batch's failure, a lone message).
    batch_handler: BatchHandler | None = None
    # Optional, for an effect that is only rows written: the events' effect as data-modifying
    # CTEs that run in ONE statement with the inbox insert (a statement is atomic by itself: no
    # BEGIN, no COMMIT, one round trip where a transaction took four or five). Each CTE reads
    # the ids of the events not applied before from the CTE `fresh` and applies only those.
    # Used for a batch and for a lone event; when it answers None, or its condition does not
    # hold (nothing is written then), the handlers apply the events. A failing statement is
    # any failure: a batch goes event by event, then retries and the dead letter.
    statement: StatementBuilder | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.gather_seconds <= 1.0:
            raise ValueError("gather_seconds is from 0 to 1")

    def durable_for(self, stream: Stream) -> str:
        return durable_name(self.name, stream)


def _status_of(msg: Msg) -> str | None:
    """The status of a JetStream control message (heartbeat, end of a pull request); None
    for an event."""
    if msg.headers and not msg.data:
        return msg.headers.get("Status")
    return None


# Put in a consumer's queue when the NATS connection came back: its pull request is gone.
_RECONNECTED = object()


def _is_event(item: Msg | object) -> bool:
    """Not the reconnect marker, nor a status message (heartbeat, end of a pull request)."""
    return item is not _RECONNECTED and _status_of(item) is None


# A message waits to gather company (Subscription.gather_seconds) only when that many more are
# expected meanwhile, by the stream's pace: a moving average of the time between messages,
# each new gap weighing PACE_WEIGHT (a burst of a few after a quiet moment does not make one).
GATHER_COMPANY = 4
PACE_WEIGHT = 0.2


class PoisonMessage(Exception):
    """The message can never be applied (e.g. it is not an envelope)."""


class EventConsumer:
    def __init__(self, pool: asyncpg.Pool, bus: Bus, subscription: Subscription, stream: Stream):
        self.pool = pool
        self.bus = bus
        self.subscription = subscription
        self.stream = stream
        self.stream_name = bus.stream_name(stream.name)
        self.durable = subscription.durable_for(stream)
        self.applied = 0
        self.dead_lettered = 0
        self._task: asyncio.Task | None = None
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._gap = 1.0  # seconds between messages, averaged (see PACE_WEIGHT)
        self._last_arrival: float | None = None

    async def ensure(self) -> None:
        await self.bus.ensure_stream(self.stream, owner=False)
        await self.bus.ensure_dead_letter_stream()
        subjects = [self.bus.subject(t) for t in self.subscription.event_types]
        config = ConsumerConfig(
            durable_name=self.durable,
            ack_policy=AckPolicy.EXPLICIT,
            deliver_policy=DeliverPolicy.ALL,
            ack_wait=self.subscription.ack_wait_seconds,
            max_deliver=-1,  # we count deliveries ourselves and dead-letter
            max_ack_pending=self.subscription.batch_size * 4,
        )
        if len(subjects) == 1:
            config.filter_subject = subjects[0]
        elif subjects:
            config.filter_subjects = subjects
        await self.bus.js.add_consumer(self.stream_name, config=config)

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"consumer-{self.durable}")

    async def stop(self) -> None:
        """Let the messages in hand finish (their transaction and ack; those still gathering
        company are handed back instead), then stop pulling."""
        self._stopping = True
        if self._task:
            try:
                await asyncio.wait_for(self._idle.wait(), 5.0)
            except asyncio.TimeoutError:
                pass
            await cancel_and_wait(self._task)

    async def pending(self) -> int:
        """Messages in the stream this consumer has not yet acked (its lag)."""
        info = await self.bus.js.consumer_info(self.stream_name, self.durable)
        return (info.num_pending or 0) + (info.num_ack_pending or 0)

    async def _run(self) -> None:
        while not self._stopping:
            try:
                await self._pull_loop()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("consumer restarting", consumer=self.durable, error=str(exc))
                await asyncio.sleep(1.0)

    async def _pull_loop(self) -> None:
        nc = self.bus.nc
        inbox = nc.new_inbox()
        arrived: asyncio.Queue[Msg | object] = asyncio.Queue()

        clock = asyncio.get_running_loop().time

        async def on_message(msg: Msg) -> None:
            self._note_arrival(clock())
            arrived.put_nowait(msg)

        def on_reconnect() -> None:
            arrived.put_nowait(_RECONNECTED)  # the pull request died with the old connection

        sub = await nc.subscribe(inbox, cb=on_message)
        self.bus.reconnect_listeners.append(on_reconnect)
        batch = self.subscription.batch_size
        expires = 5.0
        api = f"$JS.API.CONSUMER.MSG.NEXT.{self.stream_name}.{self.durable}"
        held_back: Msg | None = None  # a status message met while draining a batch
        unsubscribed = False

        async def request_next() -> None:
            body = {"batch": batch, "expires": int(expires * 1e9)}
            await nc.publish(api, json.dumps(body).encode(), reply=inbox)

        try:
            await request_next()
            outstanding = batch
            while not unsubscribed:  # once handed back for stop(), no more pulling
                if held_back is not None:
                    msg, held_back = held_back, None
                else:
                    try:
                        msg = await asyncio.wait_for(arrived.get(), timeout=expires + 2.0)
                    except asyncio.TimeoutError:
                        msg = _RECONNECTED
                if msg is _RECONNECTED:
                    # The request was lost (a reconnect, or the server restarted): ask again.
                    await self.ensure()
                    await request_next()
                    outstanding = batch
                    continue
                status = _status_of(msg)
                if status is not None:
                    if status == "100":  # idle heartbeat
                        continue
                    if status == "409" and "Consumer Deleted" in (msg.headers.get("Description") or ""):
                        await self.ensure()
                    # 404/408/409: the request ended; open the next one.
                    await request_next()
                    outstanding = batch
                    continue
                # Whatever else has arrived (or arrives while it gathers) is applied with it, in
                # one transaction. From here the messages are in hand: stop() waits for them.
                messages = [msg]
                self._idle.clear()
                try:
                    if self._in_a_stream() and not self._stopping \
                            and arrived.qsize() < self.subscription.max_per_transaction - 1:
                        await asyncio.sleep(self.subscription.gather_seconds)
                    while len(messages) < self.subscription.max_per_transaction and not arrived.empty():
                        following = arrived.get_nowait()
                        if not _is_event(following):
                            held_back = following
                            break
                        messages.append(following)
                    if self._stopping:
                        # Give them back once this pull request can take no more: the server
                        # redelivers a nak'd message at once to a pull request with interest,
                        # and still ours, it would wait out ack_wait in a queue nobody reads.
                        # The server takes the UNSUB before the naks sent after it.
                        unsubscribed = True
                        await sub.unsubscribe()
                        await self._hand_back(messages, arrived)
                        continue
                    await self.handle_many(messages)
                finally:
                    self._idle.set()
                outstanding -= len(messages)
                if outstanding <= 0:
                    await request_next()
                    outstanding = batch
        finally:
            self.bus.reconnect_listeners.remove(on_reconnect)
            if not unsubscribed:
                await sub.unsubscribe()

    @staticmethod
    async def _hand_back(messages: list[Msg], arrived: asyncio.Queue) -> None:
        """Stopping: nak the messages in hand and those delivered but not taken yet, for the
        next consumer instance."""
        while not arrived.empty():
            following = arrived.get_nowait()
            if _is_event(following):
                messages.append(following)
        for each in messages:
            await each.nak()

    def _note_arrival(self, now: float) -> None:
        if self._last_arrival is not None:
            self._gap += (now - self._last_arrival - self._gap) * PACE_WEIGHT
        self._last_arrival = now

    def _in_a_stream(self) -> bool:
        """Messages come fast enough that waiting gather_seconds would find company."""
        return self._gap * GATHER_COMPANY < self.subscription.gather_seconds

    async def handle_many(self, messages: list[Msg]) -> None:
        """Apply messages that arrived together in one transaction (one inbox statement, then
        the handlers in stream order), then ack them. If anything in it fails, nothing of it
        is kept and each message takes the one-by-one path, with its retries and dead letter."""
        if len(messages) > 1:
            try:
                envelopes = [decode_envelope(m.data) for m in messages]
                await self.apply_many(envelopes)
            except Exception as exc:
                # The one-by-one path below finds and reports the culprit.
                log.warning("event batch failed; applying one by one", consumer=self.durable,
                            messages=len(messages), error=repr(exc))
            else:
                for msg in messages:
                    await msg.ack()
                return
        for msg in messages:
            await self.handle(msg)

    async def _apply_in_one_statement(self, envelopes: list[Envelope]) -> int | None:
        """Apply events once each with the subscription's statement; None when it has none
        for these events."""
        if self.subscription.statement is None:
            return None
        envelopes = list({e.id: e for e in envelopes}.values())  # a repeat in the batch: once
        built = self.subscription.statement(envelopes, 4)
        if built is None:
            return None
        ctes, args, condition = (*built, None) if len(built) == 2 else built
        row = await self.pool.fetchrow(_one_statement(ctes, condition), self.subscription.name,
                                       [e.id for e in envelopes], [e.tenant_id for e in envelopes], *args)
        if not row["held"]:
            return None  # nothing written: the handlers apply them
        applied = row["applied"]
        self.applied += applied
        if applied:
            metrics.CONSUMER_APPLIED.labels(self.durable).inc(applied)
        return applied

    async def apply_many(self, envelopes: list[Envelope]) -> int:
        """Apply events once each, in one transaction; returns how many were new."""
        applied = await self._apply_in_one_statement(envelopes)
        if applied is not None:
            return applied
        applied = 0
        async with self.pool.acquire() as conn, conn.transaction():
            fresh = {
                row["event_id"]
                for row in await conn.fetch(
                    "INSERT INTO inbox (consumer, event_id, tenant_id)"
                    " SELECT $1, event_id, tenant_id FROM unnest($2::text[], $3::text[]) AS t(event_id, tenant_id)"
                    " ON CONFLICT DO NOTHING RETURNING event_id",
                    self.subscription.name,
                    [e.id for e in envelopes],
                    [e.tenant_id for e in envelopes],
                )
            }
            new: list[Envelope] = []
            for envelope in envelopes:
                if envelope.id in fresh:
                    fresh.discard(envelope.id)  # the same event twice in one batch applies once
                    new.append(envelope)
            batch_handler = self.subscription.batch_handler
            if batch_handler is not None and len(new) > 1:
                await batch_handler(conn, new)
            else:
                for envelope in new:
                    request_token = request_id_var.set(envelope.request_id)
                    actor_token = actor_var.set(envelope.actor)
                    tenant_token = tenant_var.set(envelope.tenant_id)
                    try:
                        await self.subscription.handler(conn, envelope)
                    finally:
                        request_id_var.reset(request_token)
                        actor_var.reset(actor_token)
                        tenant_var.reset(tenant_token)
            applied = len(new)
        self.applied += applied
        if applied:
            metrics.CONSUMER_APPLIED.labels(self.durable).inc(applied)
        return applied

    async def handle(self, msg: Msg) -> None:
        deliveries = msg.metadata.num_delivered
        envelope: Envelope | None = None
        try:
            try:
                envelope = decode_envelope(msg.data)
            except Exception as exc:
                raise PoisonMessage(f"not an event envelope: {exc}") from exc
            await self.apply(envelope)
        except Exception as exc:
            poison = isinstance(exc, PoisonMessage)
            if is_outage(exc):
                # PostgreSQL or NATS is down: nothing is wrong with the event. Wait it out for
                # as long as it takes; dead-lettering would lose every event of the outage.
                log.warning("event handler: dependency unavailable; will retry", consumer=self.durable,
                            event_id=envelope.id if envelope else None, error=repr(exc))
                backoff = self.subscription.backoff_seconds
                await msg.nak(delay=backoff[min(deliveries - 1, len(backoff) - 1)])
                return
            if poison or deliveries >= self.subscription.max_deliveries:
                if await self._dead_letter(msg, envelope, exc, deliveries):
                    await msg.ack()
                else:
                    await msg.nak(delay=5.0)
                return
            backoff = self.subscription.backoff_seconds
            delay = backoff[min(deliveries - 1, len(backoff) - 1)]
            log.warning(
                "event handler failed; will retry",
                consumer=self.durable,
                event_id=envelope.id if envelope else None,
                deliveries=deliveries,
                error=repr(exc),
            )
            await msg.nak(delay=delay)
            return
        await msg.ack()

    async def apply(self, envelope: Envelope) -> bool:
        """Apply one event once; returns False when it had been applied before."""
        request_token = request_id_var.set(envelope.request_id)
        actor_token = actor_var.set(envelope.actor)
        tenant_token = tenant_var.set(envelope.tenant_id)
        try:
            applied = await self._apply_in_one_statement([envelope])
            if applied is not None:
                return bool(applied)
            async with self.pool.acquire() as conn, conn.transaction():
                fresh = await conn.fetchval(
                    "INSERT INTO inbox (consumer, event_id, tenant_id) VALUES ($1, $2, $3)"
                    " ON CONFLICT DO NOTHING RETURNING true",
                    self.subscription.name,
                    envelope.id,
                    envelope.tenant_id,
                )
                if fresh:
                    await self.subscription.handler(conn, envelope)
            if fresh:
                self.applied += 1
                metrics.CONSUMER_APPLIED.labels(self.durable).inc()
            return bool(fresh)
        finally:
            request_id_var.reset(request_token)
            actor_var.reset(actor_token)
            tenant_var.reset(tenant_token)

    async def _dead_letter(
        self, msg: Msg, envelope: Envelope | None, exc: Exception, deliveries: int
    ) -> bool:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        event_id = envelope.id if envelope else None
        try:
            await self.bus.js.publish(
                self.bus.dead_letter_subject(self.subscription.name),
                msg.data,
                headers={
                    "Nats-Msg-Id": f"{self.durable}:{event_id or msg.metadata.sequence.stream}",
                    "Tessera-Consumer": self.subscription.name,
                    "Tessera-Subject": self.bus.unprefixed(msg.subject),
                    "Tessera-Deliveries": str(deliveries),
                    "Tessera-Error": error.replace("\r", " ").replace("\n", " ")[:1000],
                },
            )
            async with self.pool.acquire() as conn:
                await conn.execute(
                    "INSERT INTO dead_letters"
                    " (consumer, tenant_id, event_id, subject, deliveries, error, payload)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                    self.subscription.name,
                    envelope.tenant_id if envelope else "default",
                    event_id,
                    self.bus.unprefixed(msg.subject),
                    deliveries,
                    error,
                    msg.data,
                )
        except Exception as dl_exc:
            log.error("dead-letter failed; message kept", consumer=self.durable, error=str(dl_exc))
            return False
        self.dead_lettered += 1
        metrics.CONSUMER_DEAD_LETTERS.labels(self.durable).inc()
        log.error(
            "event dead-lettered",
            consumer=self.durable,
            event_id=event_id,
            deliveries=deliveries,
            error=error,
        )
        return True

"""Typed, durable subscriptions to Tessera's events on a FastStream `NatsBroker`.

Each handler is a JetStream durable pull consumer with explicit acks on one event type (or a
subject pattern), reading the publishing service's stream. A message is:
- decoded (the envelope, then its `data` with the catalogue's struct for its type and version);
- skipped if the inbox says this consumer applied that event id already (redelivery);
- handed to the handler; on success recorded in the inbox, then acked;
- on an exception, redelivered after `retry_delay` until `max_deliver` tries, then published
  to the dead-letter subject `<namespace>.deadletter.<consumer>` (headers: the error, the
  original subject) and acked: never dropped silently.

Replay: a new durable starts where `start` says: `"all"` (the beginning of the stream, the
default), `"new"` (only what comes next), or a `datetime` (everything since that moment). An
existing durable resumes where it stopped; give it a new name to replay again.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Awaitable, Callable, Literal

import msgspec
from faststream.middlewares import AckPolicy
from faststream.security import SASLPlaintext
from faststream.nats import JStream, NatsBroker, NatsMessage, PullSub
from nats.js.api import AckPolicy as JsAckPolicy
from nats.js.api import ConsumerConfig, DeliverPolicy

from tessera_events import STREAMS, Envelope, EventData, decode_data, decode_envelope
from tessera_events.catalogue import event_type_of_class
from tessera_events.subscribers import durable_name, inbox_prefix, stream_name, stream_of, subject
from tessera_subscriber.inbox import Inbox, MemoryInbox

Start = Literal["all", "new"] | datetime
Handler = Callable[..., Awaitable[Any]]


@dataclass(frozen=True)
class Delivery:
    """What a handler may take besides the event: the envelope (id, actor, tenant, time) and
    the delivery count."""

    envelope: Envelope
    deliveries: int


def connect(servers: str, consumer: str, *, user: str | None = None, password: str | None = None,
            namespace: str = "", **options: Any) -> NatsBroker:
    """A FastStream broker for `consumer` with its read-only NATS user (see README, "Access"):
    replies come under the consumer's own inbox prefix, the only one its user may read."""
    security = SASLPlaintext(username=user, password=password or "") if user else None
    return NatsBroker(servers, security=security, logger=None,
                      inbox_prefix=inbox_prefix(namespace, consumer), **options)


class Subscriptions:
    """The subscriptions of one consumer (one name, e.g. "welcome-mailer") on a broker."""

    def __init__(
        self,
        broker: NatsBroker,
        consumer: str,
        *,
        namespace: str = "",
        inbox: Inbox | None = None,
        max_deliver: int = 5,
        retry_delay: float = 1.0,
    ) -> None:
        self.broker = broker
        self.consumer = consumer
        self.namespace = namespace
        self.inbox = inbox if inbox is not None else MemoryInbox()
        self.max_deliver = max_deliver
        self.retry_delay = retry_delay
        self.dead_lettered = 0

    # ------------------------------------------------------------ naming

    def subject(self, name: str) -> str:
        return subject(self.namespace, name)

    def stream_name(self, service: str) -> str:
        return stream_name(self.namespace, STREAMS[service].name)

    @property
    def dead_letter_subject(self) -> str:
        return self.subject(f"deadletter.{self.consumer}")

    # ------------------------------------------------------------ registration

    def on(self, event: type[EventData] | str, *, start: Start = "all",
           durable: str | None = None) -> Callable[[Handler], Handler]:
        """Subscribe a handler to an event class (`UserCreated`) or a subject pattern
        (`"identity.user.*"`; the handler then gets every event struct of those types)."""
        pattern = event_type_of_class(event).type if isinstance(event, type) else event
        service = stream_of(pattern).service
        name = durable or durable_name(self.consumer, pattern)

        def register(handler: Handler) -> Handler:
            wants_delivery = len(inspect.signature(handler).parameters) > 1

            async def consume(msg: NatsMessage) -> None:  # the raw body: we decode it ourselves
                await self._consume(name, msg.body, msg, handler, wants_delivery)

            self.broker.subscriber(
                self.subject(pattern),
                stream=JStream(self.stream_name(service), declare=False),
                durable=name,
                # One message per fetch: FastStream runs the messages of a fetched batch
                # concurrently, and a subscriber applies events in stream order.
                pull_sub=PullSub(batch_size=1, timeout=1.0),
                config=_consumer_config(name, start),
                # Pull replies come under the consumer's own prefix: its read-only NATS user may
                # read no other inbox (see `connect`).
                inbox_prefix=(inbox_prefix(self.namespace, self.consumer) + ".").encode(),
                ack_policy=AckPolicy.MANUAL,
                title=f"{self.consumer}: {pattern}",
            )(consume)
            return handler

        return register

    # ------------------------------------------------------------ consuming

    async def _consume(self, name: str, body: bytes, msg: NatsMessage, handler: Handler,
                       wants_delivery: bool) -> None:
        deliveries = _deliveries(msg)
        try:
            envelope = decode_envelope(body)
        except msgspec.DecodeError as error:
            await self._dead_letter(msg, body, f"not an event envelope: {error}", deliveries)
            return
        if await self.inbox.seen(name, envelope.id):
            await msg.ack()
            return
        try:
            data = decode_data(envelope)
            if wants_delivery:
                await handler(data, Delivery(envelope, deliveries))
            else:
                await handler(data)
        except Exception as error:  # the handler's or an unknown version: retry, then dead-letter
            if deliveries >= self.max_deliver:
                await self._dead_letter(msg, body, f"{type(error).__name__}: {error}", deliveries)
            else:
                await msg.nack(delay=self.retry_delay)
            return
        await self.inbox.record(name, envelope.id)
        await msg.ack()

    async def _dead_letter(self, msg: NatsMessage, body: bytes, error: str, deliveries: int) -> None:
        headers = {**(msg.headers or {}), "tessera-error": error[:1000],
                   "tessera-subject": msg.raw_message.subject, "tessera-deliveries": str(deliveries)}
        headers.pop("Nats-Msg-Id", None)
        await self.broker.publish(body, self.dead_letter_subject, headers=headers)
        self.dead_lettered += 1
        await msg.ack()


def _deliveries(msg: NatsMessage) -> int:
    metadata = getattr(msg.raw_message, "metadata", None)
    return getattr(metadata, "num_delivered", 1) or 1


def _consumer_config(name: str, start: Start) -> ConsumerConfig:
    # One unacked message at a time: while one waits for its retry the server holds back the
    # next, so events are applied in stream order even across retries.
    config = ConsumerConfig(durable_name=name, ack_policy=JsAckPolicy.EXPLICIT, max_deliver=-1,
                            ack_wait=30, max_ack_pending=1)
    if start == "all":
        config.deliver_policy = DeliverPolicy.ALL
    elif start == "new":
        config.deliver_policy = DeliverPolicy.NEW
    else:
        moment = start if start.tzinfo else start.replace(tzinfo=timezone.utc)
        config.deliver_policy = DeliverPolicy.BY_START_TIME
        config.opt_start_time = moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")
    return config

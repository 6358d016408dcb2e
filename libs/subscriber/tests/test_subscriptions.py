"""The subscriber kit against the test session's real NATS, fed by a real outbox and relay:
replay from the beginning or from a time, live events after, no event applied twice across a
restart, dead letters after the last try, CloudEvents headers on the wire."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone

import nats
import pytest
from faststream.nats import NatsBroker

from tessera_devstack.polling import until
from tessera_events import STREAMS
from tessera_events.identity import UserCreated, UserSnapshot
from tessera_kit.testing import publisher
from tessera_subscriber import Delivery, SqliteInbox, Subscriptions

_count = itertools.count()


@pytest.fixture
async def identity(database_url, nats_url, namespace):
    """A stand-in identity service publishing through its outbox on a namespace of its own."""
    ns = f"{namespace}s{next(_count)}"
    async with publisher(database_url, nats_url, namespace=ns, stream=STREAMS["identity"],
                         schema=f"pub_{ns}") as pub:
        pub.namespace = ns
        yield pub


def users(*names: str) -> list[UserCreated]:
    return [UserCreated(user=UserSnapshot(id=name, username=name)) for name in names]


async def _consumed_all(js, stream: str, durable: str) -> bool:
    info = await js.consumer_info(stream, durable)
    return info.num_pending == 0 and info.num_ack_pending == 0


async def _stream_holds(js, stream: str, count: int) -> bool:
    return (await js.stream_info(stream)).state.messages == count


def subscriber(nats_url: str, namespace: str, applied: list, inbox, **options):
    broker = NatsBroker(nats_url, logger=None)
    subscriptions = Subscriptions(broker, "welcome-test", namespace=namespace, inbox=inbox, **options)

    @subscriptions.on(UserCreated)
    async def on_created(event: UserCreated, delivery: Delivery) -> None:
        applied.append((event.user.id, delivery.envelope.id))

    return broker, subscriptions


async def test_replays_history_then_follows_live_and_never_applies_twice(identity, nats_url, tmp_path):
    await identity.publish(*users("h1", "h2", "h3"))
    applied: list = []
    inbox = SqliteInbox(tmp_path / "inbox.db")
    broker, _ = subscriber(nats_url, identity.namespace, applied, inbox)
    await broker.start()
    await until(lambda: len(applied) == 3, "history replayed")
    await identity.publish(*users("l1", "l2"))
    await until(lambda: len(applied) == 5, "live events followed")
    await broker.stop()

    # The durable is lost (as after a crash before its acks reached the server): the restarted
    # subscriber gets the whole stream again, and the inbox skips what it applied already.
    nc = await nats.connect(nats_url)
    js = nc.jetstream()
    stream, durable = f"{identity.namespace.upper()}_IDENTITY", "welcome-test-identity_user_created"
    await js.delete_consumer(stream, durable)
    await identity.publish(*users("r1"))
    broker, _ = subscriber(nats_url, identity.namespace, applied, inbox)
    await broker.start()
    await until(lambda: len(applied) >= 6, "the event published while it was down")
    await until(lambda: _consumed_all(js, stream, durable), "every redelivery acked")
    await broker.stop()
    await nc.close()
    inbox.close()
    assert [user for user, _ in applied] == ["h1", "h2", "h3", "l1", "l2", "r1"]
    assert len({event_id for _, event_id in applied}) == 6


async def test_a_durable_starting_at_a_time_skips_what_came_before(identity, nats_url):
    await identity.publish(*users("old1", "old2"))
    nc = await nats.connect(nats_url)
    stream = f"{identity.namespace.upper()}_IDENTITY"
    await until(lambda: _stream_holds(nc.jetstream(), stream, 2), "the relay published them")
    await nc.close()
    cut = datetime.now(timezone.utc)
    await identity.publish(*users("new1"))
    applied: list = []
    broker = NatsBroker(nats_url, logger=None)
    subscriptions = Subscriptions(broker, "from-time", namespace=identity.namespace)

    @subscriptions.on("identity.user.*", start=cut)
    async def on_any_user_event(event) -> None:
        applied.append(event.user.id)

    await broker.start()
    await until(lambda: applied == ["new1"], "only the event after the cut")
    await broker.stop()


async def test_a_failing_handler_is_retried_then_dead_lettered(identity, nats_url):
    nc = await nats.connect(nats_url)
    broker = NatsBroker(nats_url, logger=None)
    subscriptions = Subscriptions(broker, "always-fails", namespace=identity.namespace,
                                  max_deliver=2, retry_delay=0.05)
    dead = await nc.subscribe(subscriptions.dead_letter_subject)
    tries: list = []

    @subscriptions.on(UserCreated)
    async def broken(event: UserCreated) -> None:
        tries.append(event.user.id)
        raise RuntimeError("mailer is down")

    await identity.publish(*users("d1"))
    await broker.start()
    message = await dead.next_msg(timeout=10)
    await broker.stop()
    await nc.close()
    assert tries == ["d1", "d1"]
    assert message.headers["tessera-error"] == "RuntimeError: mailer is down"
    assert message.headers["ce-type"] == "identity.user.created"
    assert b'"username":"d1"' in message.data


async def test_a_retried_event_is_applied_before_the_events_after_it(identity, nats_url):
    """Stream order holds across a retry: the next event waits for the one being retried."""
    broker = NatsBroker(nats_url, logger=None)
    subscriptions = Subscriptions(broker, "in-order", namespace=identity.namespace,
                                  retry_delay=0.5)
    applied: list = []
    failed_once: set = set()

    @subscriptions.on(UserCreated)
    async def flaky(event: UserCreated) -> None:
        if event.user.id == "first" and "first" not in failed_once:
            failed_once.add("first")
            raise RuntimeError("try again")
        applied.append(event.user.id)

    await identity.publish(*users("first", "second"))
    await broker.start()
    await until(lambda: len(applied) == 2, "both events applied")
    await broker.stop()
    assert applied == ["first", "second"]


async def test_events_carry_cloudevents_headers(identity, nats_url):
    nc = await nats.connect(nats_url)
    subject = f"{identity.namespace}.identity.user.created"
    js = nc.jetstream()
    await identity.publish(*users("ce1"))
    stream = f"{identity.namespace.upper()}_IDENTITY"
    await until(lambda: _stream_holds(js, stream, 1), "the event published")
    message = await js.get_last_msg(stream, subject)
    await nc.close()
    headers = message.headers
    assert headers["ce-specversion"] == "1.0"
    assert headers["ce-type"] == "identity.user.created"
    assert headers["ce-source"] == "/tessera/identity"
    assert headers["ce-id"] == headers["Nats-Msg-Id"]
    assert headers["ce-dataschema"] == "urn:tessera:event:identity.user.created:v1"
    assert headers["ce-datacontenttype"] == "application/json"
    assert headers["ce-tenantid"] == "default"
    assert datetime.fromisoformat(headers["ce-time"].replace("Z", "+00:00")).tzinfo is not None
    assert b'"id":"' + headers["ce-id"].encode() in message.data  # the envelope is the data

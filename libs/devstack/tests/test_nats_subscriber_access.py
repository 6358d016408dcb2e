"""An outside subscriber's NATS user (TESSERA_SUBSCRIBERS) reads the events it was given
through the subscriber kit, and nothing else: no publishing, no other consumer, no other stream."""

import asyncio

import nats
import pytest

from tessera_devstack.nats import NatsAccess, start_nats
from tessera_events import STREAMS
from tessera_events.identity import UserCreated, UserSnapshot
from tessera_events.subscribers import inbox_prefix, parse_subscribers
from tessera_kit.bus import Bus
from tessera_kit.outbox import build_envelope
from tessera_subscriber import Subscriptions, connect

NAMESPACE = "sub"
SUBSCRIBERS = parse_subscribers("crm=identity.user.created")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    access = NatsAccess.for_stack([NAMESPACE], subscribers=SUBSCRIBERS)
    with start_nats(tmp_path_factory.mktemp("nats-sub") / "js", access=access) as server:
        yield server


async def publish_user(server, user_id: str) -> None:
    identity = server.access.service_user("identity", NAMESPACE)
    bus = await Bus.connect(server.url, namespace=NAMESPACE, name="identity",
                            user=identity.name, password=identity.password)
    await bus.ensure_stream(STREAMS["identity"])
    envelope = build_envelope(UserCreated(user=UserSnapshot(id=user_id)))
    import msgspec
    await bus.js.publish(bus.subject("identity.user.created"), msgspec.json.encode(envelope),
                         headers={"Nats-Msg-Id": envelope.id})
    await bus.close()


async def test_the_subscriber_reads_what_it_was_given(server):
    await publish_user(server, "u-sub-1")
    crm = server.access.user(f"{NAMESPACE}-crm")
    broker = connect(server.url, "crm", user=crm.name, password=crm.password, namespace=NAMESPACE)
    seen: list[str] = []
    events = Subscriptions(broker, "crm", namespace=NAMESPACE)

    @events.on(UserCreated)
    async def created(event: UserCreated) -> None:
        seen.append(event.user.id)

    await broker.start()
    for _ in range(400):
        if seen:
            break
        await asyncio.sleep(0.025)
    await broker.stop()
    assert seen == ["u-sub-1"]


async def test_the_subscriber_can_neither_publish_nor_reach_other_consumers_or_streams(server):
    await publish_user(server, "u-sub-2")
    crm = server.access.user(f"{NAMESPACE}-crm")
    errors: list[str] = []

    async def record(error: Exception) -> None:
        errors.append(str(error).lower())

    client = await nats.connect(server.url, user=crm.name, password=crm.password, error_cb=record,
                                inbox_prefix=inbox_prefix(NAMESPACE, "crm"), allow_reconnect=False)
    try:
        forged = f"{NAMESPACE}.identity.user.created"
        await client.publish(forged, b"{}")
        await client.flush()
        # The client hands the server's -ERR to `error_cb` in a task of its own: wait for it.
        for _ in range(200):
            if any("permissions violation" in e and forged in e for e in errors):
                break
            await asyncio.sleep(0.01)
        assert any("permissions violation" in e and forged in e for e in errors), errors

        js = client.jetstream(timeout=1)
        with pytest.raises(Exception):  # another durable name: refused, so no answer
            await js.pull_subscribe(forged, durable="audit-log-identity", stream=f"{NAMESPACE.upper()}_IDENTITY")
        with pytest.raises(Exception):  # a stream it was not given
            await js.pull_subscribe(f"{NAMESPACE}.rbac.role.created", durable="crm-rbac_role_created",
                                    stream=f"{NAMESPACE.upper()}_RBAC")
        with pytest.raises(Exception):  # changing the stream
            await js.delete_stream(f"{NAMESPACE.upper()}_IDENTITY")
    finally:
        await client.close()


def test_subscriber_specs_are_checked():
    assert parse_subscribers("a=identity.user.*;b=experience.interaction.signed_in,rbac.>") == {
        "a": ("identity.user.*",), "b": ("experience.interaction.signed_in", "rbac.>")}
    for bad in ("nameonly", "=identity.user.created", "x=nowhere.thing", "a b=identity.user.created"):
        with pytest.raises(ValueError):
            parse_subscribers(bad)

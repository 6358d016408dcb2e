"""NATS with identities: each service's user reaches only what tessera_kit.access gives it.

The server reports a refused publish or subscription to the client as `-ERR Permissions
Violation` before it answers the next PING, so after `flush()` every refusal is known.
"""

import asyncio
import json

import nats
import pytest
from nats.errors import NoRespondersError

from tessera_devstack.nats import NatsAccess, NatsUser, start_nats, url_with_user
from tessera_kit.bus import Bus

NAMESPACE = "acl"
IDENTITY_STREAM = "ACL_IDENTITY"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    access = NatsAccess.for_stack([NAMESPACE])
    with start_nats(tmp_path_factory.mktemp("nats-acl") / "js", access=access) as server:
        yield server


class Refusals:
    def __init__(self) -> None:
        self.errors: list[str] = []

        async def record(error: Exception) -> None:  # nats-py wants a coroutine function
            self.errors.append(str(error).lower())

        self.record = record

    def about(self, subject: str) -> list[str]:
        return [e for e in self.errors if "permissions violation" in e and subject.lower() in e]

    async def seen(self, subject: str, count: int = 1) -> bool:
        """The client hands the server's -ERR to `error_cb` in a task of its own, which may run
        just after `flush()` returns: wait for it (briefly; a refusal that never comes fails)."""
        for _ in range(200):
            if len(self.about(subject)) >= count:
                return True
            await asyncio.sleep(0.01)
        return False


async def service_client(server, service: str) -> tuple[nats.NATS, Refusals]:
    """A raw client with the service's user and reply inboxes, as the kit's Bus opens it."""
    user = server.access.service_user(service, NAMESPACE)
    refusals = Refusals()
    client = await nats.connect(
        server.url, user=user.name, password=user.password, error_cb=refusals.record,
        inbox_prefix=f"_INBOX_{NAMESPACE}_{service}", allow_reconnect=False,
    )
    return client, refusals


@pytest.fixture
async def admin(server):
    client = await nats.connect(server.admin_url)
    yield client
    await client.close()


async def test_a_client_without_credentials_or_with_a_wrong_password_is_refused(server):
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(server.url, allow_reconnect=False, max_reconnect_attempts=0)
    wrong = NatsUser("acl-identity", "not-the-password")
    with pytest.raises(nats.errors.Error, match="Authorization Violation"):
        await nats.connect(url_with_user(server.url, wrong), allow_reconnect=False, max_reconnect_attempts=0)


async def test_a_service_publishes_to_its_own_stream_but_not_to_another(server, admin):
    identity_bus = await Bus.connect(server.url, namespace=NAMESPACE, name="identity",
                                     **_credentials(server, "identity"))
    rbac, refusals = await service_client(server, "rbac")
    try:
        from tessera_events import STREAMS

        await identity_bus.ensure_stream(STREAMS["identity"])
        ack = await identity_bus.js.publish(f"{NAMESPACE}.identity.user.created", b"{}")
        assert ack.stream == IDENTITY_STREAM

        forged = f"{NAMESPACE}.identity.user.updated"
        await rbac.publish(forged, b'{"forged": true}')
        await rbac.flush()
        assert await refusals.seen(forged)
        info = await admin.jetstream().stream_info(IDENTITY_STREAM)
        assert info.state.messages == 1  # identity's event only

        # Nor may it rewrite identity's stream (e.g. to drop or capture its subjects).
        update = f"$JS.API.STREAM.UPDATE.{IDENTITY_STREAM}"
        await rbac.publish(update, json.dumps({"name": IDENTITY_STREAM, "subjects": ["x.>"]}).encode())
        await rbac.flush()
        assert await refusals.seen(update)
        assert (await admin.jetstream().stream_info(IDENTITY_STREAM)).config.subjects == [
            f"{NAMESPACE}.identity.>"]
    finally:
        await identity_bus.close()
        await rbac.close()
        await admin.jetstream().delete_stream(IDENTITY_STREAM)


async def test_a_service_cannot_serve_another_services_rpc_nor_call_what_it_does_not_call(server, admin):
    subject = f"{NAMESPACE}.rpc.identity.verify_password"
    rbac, rbac_refusals = await service_client(server, "rbac")
    identity, _ = await service_client(server, "identity")
    experience, experience_refusals = await service_client(server, "experience")
    try:
        # rbac tries to answer identity's password checks: the server never routes them to it.
        async def forge(msg):
            await msg.respond(b'{"ok": "forged"}')

        await rbac.subscribe(subject, queue=subject, cb=forge)
        await rbac.flush()
        assert await rbac_refusals.seen(subject)
        with pytest.raises(NoRespondersError):
            await admin.request(subject, b"{}", timeout=5)

        # identity serves it; experience, which calls it, gets identity's answer.
        async def answer(msg):
            await msg.respond(b'{"ok": "identity"}')

        await identity.subscribe(subject, queue=subject, cb=answer)
        await identity.flush()
        for _ in range(50):  # the interest may reach the server's routing an instant after PONG
            try:
                reply = await experience.request(subject, b"{}", timeout=5)
                break
            except NoRespondersError:
                await asyncio.sleep(0.02)
        assert reply.data == b'{"ok": "identity"}'

        # rbac does not call verify_password: its request is refused before it leaves.
        await rbac.publish(subject, b"{}", reply="_INBOX_acl_rbac.x")
        await rbac.flush()
        assert await rbac_refusals.seen(subject, 2)
        # Nor may experience listen to rbac's replies.
        await experience.subscribe("_INBOX_acl_rbac.>")
        await experience.flush()
        assert await experience_refusals.seen("_INBOX_acl_rbac.>")
    finally:
        for client in (rbac, identity, experience):
            await client.close()


async def test_a_service_cannot_read_another_services_consumer(server, admin):
    js = admin.jetstream()
    await js.add_stream(name=IDENTITY_STREAM, subjects=[f"{NAMESPACE}.identity.>"])
    await js.publish(f"{NAMESPACE}.identity.user.deleted", b'{"secret": "only audit-log reads this"}')
    audit_log = await Bus.connect(server.url, namespace=NAMESPACE, name="audit-log",
                                  **_credentials(server, "audit-log"))
    rbac, refusals = await service_client(server, "rbac")
    try:
        durable = "audit-log-identity"
        await audit_log.js.add_consumer(IDENTITY_STREAM, durable_name=durable, ack_policy="explicit")
        before = await js.consumer_info(IDENTITY_STREAM, durable)

        for api in (f"$JS.API.CONSUMER.MSG.NEXT.{IDENTITY_STREAM}.{durable}",
                    f"$JS.API.CONSUMER.INFO.{IDENTITY_STREAM}.{durable}",
                    f"$JS.API.CONSUMER.DELETE.{IDENTITY_STREAM}.{durable}"):
            await rbac.publish(api, b'{"batch": 1}', reply="_INBOX_acl_rbac.pull")
            await rbac.flush()
            assert await refusals.seen(api)
        # rbac may not even make its own consumer under audit-log's name.
        create = f"$JS.API.CONSUMER.CREATE.{IDENTITY_STREAM}.audit-log-identity2"
        await rbac.publish(create, b"{}", reply="_INBOX_acl_rbac.create")
        await rbac.flush()
        assert await refusals.seen(create)

        after = await js.consumer_info(IDENTITY_STREAM, durable)
        assert after.delivered.stream_seq == before.delivered.stream_seq  # nothing handed out
        assert after.num_pending == before.num_pending

        # audit-log reads its own consumer.
        subscription = await audit_log.js.pull_subscribe_bind(durable, IDENTITY_STREAM)
        [message] = await subscription.fetch(1, timeout=5)
        assert b"only audit-log" in message.data
        await message.ack_sync()
    finally:
        await audit_log.close()
        await rbac.close()
        await js.delete_stream(IDENTITY_STREAM)


def _credentials(server, service: str) -> dict[str, str]:
    user = server.access.service_user(service, NAMESPACE)
    return {"user": user.name, "password": user.password}

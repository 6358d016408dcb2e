import nats
from tessera_devstack.nats import start_nats


async def _publish_and_read(url: str, publish: bool) -> list[bytes]:
    client = await nats.connect(url)
    try:
        js = client.jetstream()
        if publish:
            await js.add_stream(name="DEVSTACK", subjects=["devstack.>"])
            await js.publish("devstack.hello", b"first")
        subscription = await js.pull_subscribe("devstack.>", durable="reader")
        messages = await subscription.fetch(1, timeout=5)
        for message in messages:
            await message.ack()
        return [message.data for message in messages]
    finally:
        await client.close()


async def test_jetstream_round_trip_and_restart_on_same_port_and_store(tmp_path):
    server = start_nats(tmp_path / "js")
    try:
        assert await _publish_and_read(server.url, publish=True) == [b"first"]
    finally:
        server.stop()
    assert not server.is_running()

    again = start_nats(tmp_path / "js", port=server.port, monitor_port=server.monitor_port)
    try:
        assert again.url == server.url
        client = await nats.connect(again.url)
        info = await client.jetstream().stream_info("DEVSTACK")
        assert info.state.messages == 1  # the store survived the restart
        await client.close()
    finally:
        again.stop()


async def test_nats_url_fixture_has_jetstream(nats_url):
    client = await nats.connect(nats_url)
    try:
        account = await client.jetstream().account_info()
        assert account is not None
    finally:
        await client.close()

"""Stream retention is the owner's setting: its limits are applied, and a consumer that
ensures the same stream never changes them."""

from tessera_events import STREAMS
from tessera_kit.bus import Bus, Retention


async def test_owner_sets_retention_and_consumers_leave_it(nats_url, unique):
    owner = await Bus.connect(nats_url, namespace=unique,
                              retention=Retention(max_age_seconds=86400, max_msgs=1000))
    consumer = await Bus.connect(nats_url, namespace=unique)  # default: keep everything
    try:
        name = await owner.ensure_stream(STREAMS["rbac"], owner=True)
        await consumer.ensure_stream(STREAMS["rbac"], owner=False)
        info = await consumer.js.stream_info(name)
        assert info.config.max_age == 86400 and info.config.max_msgs == 1000

        # The owner's next start with new settings changes them.
        owner.retention = Retention(max_age_seconds=3600)
        await owner.ensure_stream(STREAMS["rbac"], owner=True)
        info = await consumer.js.stream_info(name)
        assert info.config.max_age == 3600 and info.config.max_msgs == -1
    finally:
        await owner.js.delete_stream(name)
        await owner.close()
        await consumer.close()

"""Two dispatcher replicas on one schema: every delivery is sent once per attempt."""

from __future__ import annotations

from collections import Counter

from tessera_events.experience import InteractionContext, InteractionSignedIn
from tessera_kit.testing import started
from tessera_webhook_dispatcher.main import build_spec


async def test_two_replicas_send_each_delivery_once(dispatcher, receiver):
    second_spec = build_spec(dispatcher.settings, clock=dispatcher.clock, name=dispatcher.ctx.name)
    async with started(second_spec) as _:
        hooks = [await dispatcher.create_hook(receiver.url) for _ in range(3)]
        events = [InteractionSignedIn(user_id=f"u{i}", context=InteractionContext(interaction_id=f"i{i}"))
                  for i in range(40)]
        await dispatcher.experience.publish(*events)
        await receiver.wait_for(len(hooks) * len(events), timeout=60)
        async def all_done():
            return await dispatcher.ctx.pool.fetchval(
                "SELECT count(*) FROM deliveries WHERE status = 'succeeded'") == len(hooks) * len(events)
        await dispatcher.until(all_done, timeout=60)
    counts = Counter(r.headers["webhook-id"] for r in receiver.requests)
    assert len(counts) == len(hooks) * len(events)
    assert set(counts.values()) == {1}
    assert await dispatcher.ctx.pool.fetchval("SELECT count(*) FROM delivery_attempts") == len(counts)

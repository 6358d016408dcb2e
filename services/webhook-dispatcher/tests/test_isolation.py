"""One slow receiver never delays the others: it holds only its hook's slots."""

from __future__ import annotations

import asyncio

from tessera_events.experience import InteractionContext, InteractionSignedIn


async def test_a_hanging_receiver_holds_only_its_own_slots(dispatcher, receiver, second_receiver):
    slow = second_receiver
    slow.hold = asyncio.Event()  # never answers during the test
    stuck = await dispatcher.create_hook(slow.url)
    await dispatcher.create_hook(receiver.url)
    limit = dispatcher.settings.webhooks_per_hook_concurrency
    count = limit + 8  # more than the stuck hook's slots
    events = [InteractionSignedIn(user_id=f"u{i}", context=InteractionContext(interaction_id=f"i{i}"))
              for i in range(count)]
    await dispatcher.experience.publish(*events)
    await receiver.wait_for(count)  # all of them, while the slow one hangs
    await slow.wait_for(limit)
    assert len(slow.requests) == limit
    assert dispatcher.scheduler.in_flight[stuck["id"]] == limit
    # The stuck hook's other deliveries wait unclaimed: no lease runs out behind the slots.
    leased = await dispatcher.ctx.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE hook_id = $1 AND lease_token IS NOT NULL", stuck["id"])
    assert leased == limit

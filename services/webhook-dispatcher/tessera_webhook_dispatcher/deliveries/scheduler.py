"""The scheduler: sends due deliveries, records each attempt, schedules the next one.

Any replica may run it. A delivery is leased in one statement (SELECT ... FOR UPDATE SKIP
LOCKED), sent outside any transaction, and its outcome recorded only if the lease still
holds, so replicas never send one attempt twice; a replica that dies mid-request leaves a
lease that runs out, and the delivery is sent again (at least once, same `webhook-id`).

Each hook has its own slots in a replica: a slow or dead receiver fills only its own, and
no more of a hook's deliveries are claimed than it has free slots.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import asyncpg

from tessera_kit.ids import new_id
from tessera_kit.logging import get_logger
from tessera_kit.outbox import Outbox, OutboxRelay
from tessera_kit.tasks import cancel_all_and_wait, stop_within
from tessera_webhook_dispatcher.clock import Clock
from tessera_webhook_dispatcher.deliveries import store
from tessera_webhook_dispatcher.deliveries.domain import request_headers
from tessera_webhook_dispatcher.deliveries.recorder import Recorder
from tessera_webhook_dispatcher.deliveries.sender import Sender
from tessera_webhook_dispatcher.hooks import store as hook_store
from tessera_webhook_dispatcher.settings import DispatcherSettings

log = get_logger(__name__)


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, relay: OutboxRelay, settings: DispatcherSettings,
                 clock: Clock, channel: str) -> None:
        self.pool = pool
        self.outbox = outbox
        self.relay = relay
        self.settings = settings
        self.clock = clock
        self.channel = channel
        self.sender = Sender(timeout=settings.webhooks_timeout_seconds,
                             allow_private=settings.webhooks_allow_private, clock=clock,
                             max_connections=settings.webhooks_max_in_flight)
        self.recorder = Recorder(pool, outbox, clock, disable_after_seconds=settings.webhooks_disable_after_seconds)
        self.in_flight: Counter[str] = Counter()
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task | None = None

    async def start(self) -> None:
        """Start claiming; first, load the HTTP client in the background if any hook exists
        (else the first hook's creation loads it: see sender.py)."""
        try:
            async with self.pool.acquire() as conn:
                if await hook_store.any_hook(conn):
                    self.sender.warm()
        except Exception as exc:  # the first delivery loads it then
            log.warning("webhook scheduler: could not look for hooks", error=str(exc))
        self._loop_task = asyncio.create_task(self._run(), name="webhook-scheduler")

    def wake(self) -> None:
        self._wake.set()

    async def wake_all(self, conn: asyncpg.Connection) -> None:
        """Wake every replica's scheduler once the caller's transaction commits (a delivery made
        due, a hook enabled again): the replica asked may be gone before it claims."""
        await store.notify(conn, self.channel)

    async def stop(self) -> None:
        """Stop claiming; let the requests in flight finish (up to the timeout), then close."""
        self._stopping = True
        self._wake.set()
        await stop_within(self._loop_task, 5.0)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.settings.webhooks_timeout_seconds + 1)
        await cancel_all_and_wait(list(self._tasks))
        await self.sender.close()

    def _on_notify(self, *_args: Any) -> None:
        self.wake()

    async def _run(self) -> None:
        # Woken by NOTIFY on the relay's connection (OutboxRelay.listen: no connection held here)
        # for a new delivery, a retry asked for or a hook enabled again, in whichever replica,
        # and by an attempt ending; else it looks again when the next pending delivery comes
        # due by its clock (a retry hours away costs no look meanwhile), after
        # webhooks_poll_seconds while one is due but could not be claimed (a lease running out
        # elsewhere) or its own attempts are in flight, and after webhooks_idle_poll_seconds at
        # the most, so the pool's connection is let go at rest.
        self.relay.listen(self.channel, self._on_notify)
        while not self._stopping:
            self._wake.clear()
            try:
                claimed, due = await self.dispatch_due()
                if claimed:
                    continue  # more may be due
                await self._sleep(due)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Nothing restarts this task: whatever fails, it goes on after a poll interval
                # (a NOTIFY meanwhile waits for that), else webhooks would stop unnoticed.
                log.warning("webhook scheduler: round failed", error=repr(exc))
                await asyncio.sleep(self.settings.webhooks_poll_seconds)

    async def _sleep(self, due: dt.datetime | None) -> None:
        """Until woken, or until `due` (None: nothing is pending) by the dispatcher's clock,
        read every webhooks_poll_seconds (so one due already, yet not claimed, is looked for
        again then), for webhooks_idle_poll_seconds at the most. While the relay's connection
        (where the NOTIFYs arrive) does not answer, a NOTIFY may be missed, so it looks again
        every webhooks_poll_seconds."""
        poll = self.settings.webhooks_poll_seconds
        loop = asyncio.get_running_loop()
        until = loop.time() + self.settings.webhooks_idle_poll_seconds
        while (left := until - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._wake.wait(), min(left, poll))
                return
            except asyncio.TimeoutError:
                if not self.relay.answered_lately() or (due is not None and self.clock.now() >= due):
                    return

    async def dispatch_due(self) -> tuple[int, dt.datetime | None]:
        """Claim what is due (within this replica's free slots, each hook's own) and start
        sending it: (how many were claimed, when the earliest delivery still pending is due:
        now while any is being sent here, None when none is pending)."""
        now = self.clock.now()
        limit = self.settings.webhooks_max_in_flight - len(self._tasks)
        if limit <= 0:
            return 0, now
        token = new_id()
        async with self.pool.acquire() as conn:
            rows = await store.claim_due(
                conn, now=now, per_hook=self.settings.webhooks_per_hook_concurrency,
                in_flight=dict(self.in_flight), limit=limit, token=token,
                lease_seconds=self.settings.webhooks_lease_seconds,
            )
            due = now if rows or self._tasks else await store.next_attempt_at(conn)
        for row in rows:
            self.in_flight[row["hook_id"]] += 1
            task = asyncio.create_task(self._attempt(row, token))
            self._tasks.add(task)
            task.add_done_callback(self._attempt_ended)
        return len(rows), due

    def _attempt_ended(self, task: asyncio.Task) -> None:
        # Its slot of webhooks_max_in_flight is free only now, after its outcome was recorded:
        # when they were all taken, the wake as the receiver answered found none free.
        full = len(self._tasks) >= self.settings.webhooks_max_in_flight
        self._tasks.discard(task)
        if full:
            self._wake.set()

    async def _attempt(self, row: asyncpg.Record, token: str) -> None:
        outcome = None
        try:
            body = row["body"].encode()
            config = row["config"]
            headers = request_headers(
                signing_key=row["signing_key"], custom=config.get("headers"), body=body,
                message_id=row["id"], now=self.clock.now(),
            )
            outcome = await self.sender.post(config.get("url", ""), headers, body)
        except Exception as exc:  # the lease runs out and the delivery is tried again
            log.error("webhook attempt failed unexpectedly", delivery_id=row["id"], error=repr(exc))
        finally:
            # The hook's slot is free once the receiver has answered; the delivery stays
            # leased until its outcome is recorded, so no one sends it again meanwhile.
            self.in_flight[row["hook_id"]] -= 1
            if self.in_flight[row["hook_id"]] <= 0:
                del self.in_flight[row["hook_id"]]
            self._wake.set()
        if outcome is None:
            return
        try:
            await self.recorder.record(row, token, outcome)
        except Exception as exc:  # the lease runs out and the delivery is tried again
            log.error("webhook attempt not recorded", delivery_id=row["id"], error=repr(exc))

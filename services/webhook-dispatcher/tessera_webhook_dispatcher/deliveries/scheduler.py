"""The scheduler: sends due deliveries, records each attempt, schedules the next one.

Any replica may run it. A delivery is leased in one statement (SELECT ... FOR UPDATE SKIP
LOCKED), sent outside any transaction, and its outcome recorded only if the lease still
holds, so replicas never send one attempt twice; a replica that dies mid-request leaves a
lease that runs out, and the delivery is sent again (at least once, same `webhook-id`).

Each hook has its own few slots in a replica: a slow or dead receiver fills only its own,
and its deliveries are not even claimed while they are full.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from typing import Any

import asyncpg
import msgspec

from tessera_events.webhooks import (
    AttemptFacts,
    DeliveryExhausted,
    DeliveryFailed,
    DeliverySucceeded,
    HookDisabled,
)
from tessera_kit.ids import new_id
from tessera_kit.logging import get_logger
from tessera_kit.outbox import Outbox
from tessera_webhook_dispatcher.clock import Clock
from tessera_webhook_dispatcher.deliveries import store
from tessera_webhook_dispatcher.deliveries.domain import Outcome, request_headers, retry_delay
from tessera_webhook_dispatcher.deliveries.sender import Sender
from tessera_webhook_dispatcher.settings import DispatcherSettings

log = get_logger(__name__)


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


class Scheduler:
    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, settings: DispatcherSettings, clock: Clock,
                 channel: str) -> None:
        self.pool = pool
        self.outbox = outbox
        self.settings = settings
        self.clock = clock
        self.channel = channel
        self.sender = Sender(timeout=settings.webhooks_timeout_seconds,
                             allow_private=settings.webhooks_allow_private, clock=clock)
        self.in_flight: Counter[str] = Counter()
        self._tasks: set[asyncio.Task] = set()
        self._wake = asyncio.Event()
        self._stopping = False
        self._loop_task: asyncio.Task | None = None
        self._listener: asyncpg.Connection | None = None

    def start(self) -> None:
        self._loop_task = asyncio.create_task(self._run(), name="webhook-scheduler")

    def wake(self) -> None:
        self._wake.set()

    async def stop(self) -> None:
        """Stop claiming; let the requests in flight finish (up to the timeout), then close."""
        self._stopping = True
        self._wake.set()
        if self._loop_task:
            try:
                await asyncio.wait_for(self._loop_task, 5.0)
            except (asyncio.TimeoutError, asyncio.CancelledError, Exception):
                self._loop_task.cancel()
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=self.settings.webhooks_timeout_seconds + 1)
        for task in list(self._tasks):
            task.cancel()
        await self.sender.close()

    def _on_notify(self, *_args: Any) -> None:
        self._wake.set()

    async def _run(self) -> None:
        while not self._stopping:
            try:
                async with self.pool.acquire() as conn:
                    await conn.add_listener(self.channel, self._on_notify)
                    try:
                        while not self._stopping:
                            self._wake.clear()
                            claimed = await self.dispatch_due()
                            if claimed:
                                continue  # more may be due
                            try:
                                await asyncio.wait_for(self._wake.wait(), self.settings.webhooks_poll_seconds)
                            except asyncio.TimeoutError:
                                pass
                    finally:
                        await conn.remove_listener(self.channel, self._on_notify)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning("webhook scheduler restarting", error=str(exc))
                await asyncio.sleep(self.settings.webhooks_poll_seconds)

    async def dispatch_due(self) -> int:
        """Claim what is due (within this replica's free slots) and start sending it."""
        limit = self.settings.webhooks_max_in_flight - len(self._tasks)
        if limit <= 0:
            return 0
        per_hook = self.settings.webhooks_per_hook_concurrency
        busy = [hook for hook, n in self.in_flight.items() if n >= per_hook]
        token = new_id()
        async with self.pool.acquire() as conn:
            rows = await store.claim_due(
                conn, now=self.clock.now(), busy_hooks=busy, limit=limit, token=token,
                lease_seconds=self.settings.webhooks_lease_seconds,
            )
            started = 0
            unused: list[str] = []
            for row in rows:
                if self.in_flight[row["hook_id"]] >= per_hook:
                    unused.append(row["id"])  # its hook's slots filled up in this batch
                    continue
                self.in_flight[row["hook_id"]] += 1
                task = asyncio.create_task(self._attempt(row, token))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                started += 1
            await store.release(conn, unused, token)
        return started

    async def _attempt(self, row: asyncpg.Record, token: str) -> None:
        try:
            body = row["body"].encode()
            config = row["config"]
            headers = request_headers(
                signing_key=row["signing_key"], custom=config.get("headers"), body=body,
                message_id=row["id"], now=self.clock.now(),
            )
            outcome = await self.sender.post(config.get("url", ""), headers, body)
            await self.record(row, token, outcome)
        except Exception as exc:  # the lease runs out and the delivery is tried again
            log.error("webhook attempt not recorded", delivery_id=row["id"], error=repr(exc))
        finally:
            self.in_flight[row["hook_id"]] -= 1
            if self.in_flight[row["hook_id"]] <= 0:
                del self.in_flight[row["hook_id"]]
            self._wake.set()  # a slot is free

    async def record(self, row: asyncpg.Record, token: str, outcome: Outcome) -> None:
        now = self.clock.now()
        number = row["attempts"] + 1
        exhausted = not outcome.success and number >= row["max_attempts"]
        next_at = None
        if not outcome.success and not exhausted:
            next_at = now + dt.timedelta(seconds=retry_delay(number, outcome.retry_after))
        status = "succeeded" if outcome.success else ("exhausted" if exhausted else "pending")
        tenant = row["tenant_id"]
        async with self.pool.acquire() as conn, conn.transaction():
            attempts = await store.finish_attempt(conn, row["id"], token, status=status, next_attempt_at=next_at, now=now)
            if attempts is None:
                log.warning("webhook lease lost; outcome dropped", delivery_id=row["id"])
                return
            response = outcome.response()
            attempt_id = await store.insert_attempt(
                conn, tenant, delivery_id=row["id"], hook_id=row["hook_id"], number=attempts, event=row["event"],
                result="Success" if outcome.success else "Error", status_code=outcome.status_code,
                response=response, error=outcome.error, now=now,
            )
            facts = AttemptFacts(
                delivery_id=row["id"], attempt_id=attempt_id, hook_id=row["hook_id"], event=row["event"],
                attempt=attempts, request_body=msgspec.json.decode(body_of(row)), response=response,
            )
            if outcome.success:
                await store.note_success(conn, row["hook_id"])
                await self.outbox.emit(conn, DeliverySucceeded(attempt=facts), aggregate_id=row["hook_id"],
                                       tenant_id=tenant)
                return
            await self.outbox.emit(
                conn, DeliveryFailed(attempt=facts, error=outcome.error or "Error",
                                     next_attempt_at=_ms(next_at) if next_at else None),
                aggregate_id=row["hook_id"], tenant_id=tenant,
            )
            if exhausted:
                await self.outbox.emit(
                    conn, DeliveryExhausted(delivery_id=row["id"], hook_id=row["hook_id"], event=row["event"],
                                            attempts=attempts),
                    aggregate_id=row["hook_id"], tenant_id=tenant,
                )
            disable_before = now - dt.timedelta(seconds=self.settings.webhooks_disable_after_seconds)
            since = await store.note_failure(conn, row["hook_id"], now, disable_before)
            if since is not None:
                log.warning("webhook disabled after failing", hook_id=row["hook_id"])
                await self.outbox.emit(conn, HookDisabled(hook_id=row["hook_id"], failing_since=_ms(since)),
                                       aggregate_id=row["hook_id"], tenant_id=tenant)


def body_of(row: asyncpg.Record) -> bytes:
    return row["body"].encode()

"""Recording attempts: each outcome counts the attempt, schedules what follows, keeps the
attempt row and emits its events, only while the delivery's lease still holds.

Outcomes are written in batches: those that arrive while one batch commits go together in
the next (one transaction, a handful of statements, whatever the batch's size). A caller
returns once its outcome is committed; if the process dies before, the lease runs out and
the delivery is sent again, as it would be had the process died mid-request.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from dataclasses import dataclass

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
from tessera_webhook_dispatcher.deliveries.domain import Outcome, retry_delay

log = get_logger(__name__)


def _ms(at: dt.datetime) -> int:
    return int(at.timestamp() * 1000)


@dataclass
class _Result:
    row: asyncpg.Record
    token: str
    outcome: Outcome
    done: asyncio.Future


class Recorder:
    def __init__(self, pool: asyncpg.Pool, outbox: Outbox, clock: Clock, *, disable_after_seconds: float) -> None:
        self.pool = pool
        self.outbox = outbox
        self.clock = clock
        self.disable_after_seconds = disable_after_seconds
        self._waiting: list[_Result] = []
        self._committer: asyncio.Task | None = None

    async def record(self, row: asyncpg.Record, token: str, outcome: Outcome) -> None:
        """Returns once the outcome is committed (or dropped because the lease was lost);
        raises if it could not be written."""
        done = asyncio.get_running_loop().create_future()
        self._waiting.append(_Result(row, token, outcome, done))
        if self._committer is None or self._committer.done():
            # One committer: a batch's statements never wait on another batch's locks.
            self._committer = asyncio.create_task(self._commit_while_waiting())
        await asyncio.shield(done)

    async def _commit_while_waiting(self) -> None:
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                await self._write(batch)
            except Exception as exc:
                if len(batch) == 1:
                    self._settle(batch, exc)
                    continue
                # One outcome may be at fault: write each alone, so the others are kept.
                log.warning("webhook outcomes batch failed; writing one by one", outcomes=len(batch),
                            error=repr(exc))
                for result in batch:
                    try:
                        await self._write([result])
                    except Exception as single:
                        self._settle([result], single)
                    else:
                        self._settle([result], None)
                continue
            self._settle(batch, None)

    @staticmethod
    def _settle(batch: list[_Result], exc: Exception | None) -> None:
        for result in batch:
            if result.done.done():
                continue
            if exc is None:
                result.done.set_result(None)
            else:
                result.done.set_exception(exc)

    async def _write(self, batch: list[_Result]) -> None:
        now = self.clock.now()
        plans: list[tuple[_Result, str, dt.datetime | None]] = []
        for result in batch:
            outcome, row = result.outcome, result.row
            exhausted = not outcome.success and row["attempts"] + 1 >= row["max_attempts"]
            next_at = None
            if not outcome.success and not exhausted:
                next_at = now + dt.timedelta(seconds=retry_delay(row["attempts"] + 1, outcome.retry_after))
            status = "succeeded" if outcome.success else ("exhausted" if exhausted else "pending")
            plans.append((result, status, next_at))
        async with self.pool.acquire() as conn, conn.transaction():
            counted = await store.finish_attempts(
                conn, [r.row["id"] for r, _, _ in plans], [r.token for r, _, _ in plans],
                [status for _, status, _ in plans], [next_at for _, _, next_at in plans], now,
            )
            attempts: list[tuple] = []
            events: list[tuple] = []
            succeeded_hooks: set[str] = set()
            failed: dict[str, str] = {}  # hook id → tenant, for the failing-since bookkeeping
            for result, status, next_at in plans:
                row, outcome = result.row, result.outcome
                number = counted.get(row["id"])
                if number is None:
                    log.warning("webhook lease lost; outcome dropped", delivery_id=row["id"])
                    continue
                response = outcome.response()
                attempt_id = new_id()
                attempts.append((
                    row["tenant_id"], attempt_id, row["id"], row["hook_id"], number, row["event"],
                    "Success" if outcome.success else "Error", outcome.status_code, response, outcome.error, now,
                ))
                facts = AttemptFacts(
                    delivery_id=row["id"], attempt_id=attempt_id, hook_id=row["hook_id"], event=row["event"],
                    attempt=number, request_body=msgspec.json.decode(row["body"].encode()), response=response,
                )
                hook, tenant = row["hook_id"], row["tenant_id"]
                if outcome.success:
                    succeeded_hooks.add(hook)
                    events.append((DeliverySucceeded(attempt=facts), hook, tenant))
                    continue
                events.append((DeliveryFailed(attempt=facts, error=outcome.error or "Error",
                                              next_attempt_at=_ms(next_at) if next_at else None), hook, tenant))
                if status == "exhausted":
                    events.append((DeliveryExhausted(delivery_id=row["id"], hook_id=hook, event=row["event"],
                                                     attempts=number), hook, tenant))
                failed[hook] = tenant
            if attempts:
                await store.insert_attempts(conn, attempts)
            # A hook that both failed and succeeded in this batch answers again: not failing.
            if succeeded_hooks:
                await store.note_successes(conn, sorted(succeeded_hooks))
            disable_before = now - dt.timedelta(seconds=self.disable_after_seconds)
            for hook in sorted(failed.keys() - succeeded_hooks):
                since = await store.note_failure(conn, hook, now, disable_before)
                if since is not None:
                    log.warning("webhook disabled after failing", hook_id=hook)
                    events.append((HookDisabled(hook_id=hook, failing_since=_ms(since)), hook, failed[hook]))
            await self.outbox.emit_many(conn, events)

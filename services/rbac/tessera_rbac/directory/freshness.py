"""How far behind identity the read models are, and waiting for them to catch up.

The contract (services/rbac/README.md, "Consistency"): rbac knows a user or application once it has applied
identity's event about it. A request naming an id the read model does not know first waits
(briefly) until rbac's consumer has applied every identity event already in the stream, then
looks again; only then is the answer Logto's 404. Lag is logged when it grows, and reported by
`GET /internal/read-models` on the service's own port.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable, TypeVar

from tessera_kit.app import ServiceContext
from tessera_kit.errors import RequestError
from tessera_kit.logging import get_logger
from tessera_rbac.directory import store

log = get_logger(__name__)

IDENTITY_SUBSCRIPTION = "rbac-directory"  # the durable consumer of identity's stream
SOURCE = "identity"
CATCH_UP_TIMEOUT = 2.0  # seconds a request may wait for the read model before answering 404
# Identity's relay publishes an event a few milliseconds after its commit: "nothing pending"
# earlier than this may only mean "not published yet".
SETTLE_SECONDS = 0.05
LAG_WARNING_MS = 5_000
LAG_LOG_INTERVAL = 10.0  # seconds between two "behind" warnings

T = TypeVar("T")


class NotYetKnown(RequestError):
    """An id the read model does not know (yet): Logto's 404, unless waiting helps."""


def _consumer(ctx: ServiceContext):
    return next((c for c in ctx.consumers if c.subscription.name == IDENTITY_SUBSCRIPTION), None)


async def wait_for_identity_events(ctx: ServiceContext, timeout: float = CATCH_UP_TIMEOUT) -> bool:
    """Wait until rbac has applied every identity event in the stream; False on timeout or
    when the consumer cannot be asked (then the read model is what it is)."""
    consumer = _consumer(ctx)
    if consumer is None:
        return False
    loop = asyncio.get_running_loop()
    started = loop.time()
    while True:
        try:
            pending = await consumer.pending()
        except Exception as exc:  # NATS unreachable: do not turn a 404 into a 503
            log.warning("read model lag unknown", error=str(exc))
            return False
        elapsed = loop.time() - started
        if pending == 0 and elapsed >= SETTLE_SECONDS:
            return True
        if elapsed >= timeout:
            log.warning("read model still behind identity", pending_events=pending, waited_s=round(elapsed, 3))
            return False
        await asyncio.sleep(0.01)


async def known_or_not_found(ctx: ServiceContext, attempt: Callable[[], Awaitable[T]]) -> T:
    """Run `attempt` (one transaction); if it stopped at an id the read model does not know,
    wait for the read model to catch up and run it once more."""
    try:
        return await attempt()
    except NotYetKnown:
        if not await wait_for_identity_events(ctx):
            raise
        return await attempt()


class LagReporter:
    """Logs the read model's lag (event committed in identity -> applied here): a warning
    while it exceeds LAG_WARNING_MS, at most every LAG_LOG_INTERVAL seconds, and one line
    when it is back under."""

    def __init__(self) -> None:
        self._last_warning = float("-inf")
        self._behind = False
        self._applied_since_warning = 0

    def applied(self, lag_ms: int) -> None:
        now = time.monotonic()
        if lag_ms >= LAG_WARNING_MS:
            self._applied_since_warning += 1
            if now - self._last_warning >= LAG_LOG_INTERVAL:
                log.warning("user read model is behind identity", lag_ms=lag_ms,
                            events_applied_since_last_warning=self._applied_since_warning)
                self._last_warning, self._applied_since_warning = now, 0
            self._behind = True
        elif self._behind:
            log.info("user read model caught up with identity", lag_ms=lag_ms)
            self._behind = False


async def read_model_status(ctx: ServiceContext) -> dict[str, Any]:
    async with ctx.pool.acquire() as conn:
        applied = await store.progress(conn, SOURCE) or {}
    consumer = _consumer(ctx)
    pending: int | None = None
    if consumer is not None:
        try:
            pending = await consumer.pending()
        except Exception:
            pending = None
    last_occurred, last_applied = applied.get("lastOccurredAt"), applied.get("lastAppliedAt")
    return {
        "source": SOURCE,
        "pendingEvents": pending,
        "eventsApplied": applied.get("eventsApplied", 0),
        "lastEventId": applied.get("lastEventId"),
        "lastOccurredAt": last_occurred,
        "lastAppliedAt": last_applied,
        # Lag of the last event applied; with pendingEvents > 0 the read model is behind by more.
        "lastLagMs": (last_applied - last_occurred) if last_occurred and last_applied else None,
    }

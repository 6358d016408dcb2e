"""Background upkeep of the users context: expired lockout counters are removed."""

from __future__ import annotations

import asyncio

from tessera_identity.users import lockout
from tessera_kit.app import ServiceContext
from tessera_kit.logging import get_logger

log = get_logger(__name__)
PURGE_EVERY_SECONDS = 600.0
_TASK = "identity-lockout-purge"


async def _purge_forever(ctx: ServiceContext) -> None:
    while True:
        try:
            await lockout.purge_expired(ctx.pool)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the next round will do
            log.warning("lockout purge failed", error=str(exc))
        await asyncio.sleep(PURGE_EVERY_SECONDS)


async def start(ctx: ServiceContext) -> None:
    ctx.extras[_TASK] = asyncio.create_task(_purge_forever(ctx), name=_TASK)


async def stop(ctx: ServiceContext) -> None:
    task = ctx.extras.pop(_TASK, None)
    if task is not None:
        task.cancel()
        try:
            await task
        except (asyncio.CancelledError, Exception):
            pass

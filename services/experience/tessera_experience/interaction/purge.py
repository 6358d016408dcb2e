"""Expired interactions and old verification codes go on a timer, in every replica: nothing
an abandoned sign-in left behind waits for the next sign-in (or a restart) to be deleted."""

from __future__ import annotations

import asyncio
import contextlib

from tessera_experience.interaction import store
from tessera_experience.verification_codes import store as codes
from tessera_kit.app import ServiceContext
from tessera_kit.logging import get_logger

log = get_logger(__name__)

PURGE_EVERY_SECONDS = 60.0
_TASK = "interaction_purger"


async def _purge_forever(ctx: ServiceContext) -> None:
    while True:
        try:
            await store.purge_expired(ctx.pool)
            await codes.purge_old(ctx.pool)
        except Exception:  # the database may be away for a while: try again next round
            log.exception("could not purge expired interactions")
        await asyncio.sleep(PURGE_EVERY_SECONDS)


async def start_purging(ctx: ServiceContext) -> None:
    ctx.extras[_TASK] = asyncio.get_running_loop().create_task(_purge_forever(ctx), name=_TASK)


async def stop_purging(ctx: ServiceContext) -> None:
    task = ctx.extras.pop(_TASK, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

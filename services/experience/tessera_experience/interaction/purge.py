"""Expired interactions and old verification codes go on a timer (in one replica at a time): nothing
an abandoned sign-in left behind waits for the next sign-in (or a restart) to be deleted."""

from __future__ import annotations

from tessera_experience.interaction import store
from tessera_experience.verification_codes import store as codes
from tessera_kit.app import ServiceContext
from tessera_kit.periodic import Periodic

PURGE_EVERY_SECONDS = 60.0
_JOB = "interaction_purger"


async def purge_once(ctx: ServiceContext) -> None:
    await store.purge_expired(ctx.pool)
    await codes.purge_old(ctx.pool)


async def start_purging(ctx: ServiceContext) -> None:
    job = ctx.extras[_JOB] = Periodic(_JOB, PURGE_EVERY_SECONDS, lambda: purge_once(ctx), leader=ctx.relay)
    job.start()


async def stop_purging(ctx: ServiceContext) -> None:
    job = ctx.extras.pop(_JOB, None)
    if job is not None:
        await job.stop()

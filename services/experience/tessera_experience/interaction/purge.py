"""Expired interactions and old verification codes go on a timer (in one replica at a time): nothing
an abandoned sign-in left behind waits for the next sign-in (or a restart) to be deleted."""

from __future__ import annotations

from tessera_experience.interaction import store
from tessera_experience.interaction.store import Executor
from tessera_experience.verification_codes import store as codes
from tessera_kit.app import ServiceContext

PURGE_EVERY_SECONDS = 60.0
_JOB = "interaction_purger"


async def purge_once(conn: Executor) -> None:
    await store.purge_expired(conn)
    await codes.purge_old(conn)


async def start_purging(ctx: ServiceContext) -> None:
    job = ctx.extras[_JOB] = ctx.upkeep(_JOB, PURGE_EVERY_SECONDS, purge_once)
    job.start()


async def stop_purging(ctx: ServiceContext) -> None:
    job = ctx.extras.pop(_JOB, None)
    if job is not None:
        await job.stop()

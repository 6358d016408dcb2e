"""Background upkeep of the users context: expired lockout counters are removed."""

from __future__ import annotations

from tessera_identity.users import lockout
from tessera_kit.app import ServiceContext

PURGE_EVERY_SECONDS = 600.0
_JOB = "identity-lockout-purge"


async def start(ctx: ServiceContext) -> None:
    job = ctx.extras[_JOB] = ctx.upkeep(_JOB, PURGE_EVERY_SECONDS, lockout.purge_expired)
    job.start()


async def stop(ctx: ServiceContext) -> None:
    job = ctx.extras.pop(_JOB, None)
    if job is not None:
        await job.stop()

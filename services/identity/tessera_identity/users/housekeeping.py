"""Background upkeep of the users context: expired lockout counters are removed."""

from __future__ import annotations

from tessera_identity.users import lockout
from tessera_kit.app import ServiceContext
from tessera_kit.periodic import Periodic

PURGE_EVERY_SECONDS = 600.0
_JOB = "identity-lockout-purge"


async def start(ctx: ServiceContext) -> None:
    job = ctx.extras[_JOB] = Periodic(_JOB, PURGE_EVERY_SECONDS, lambda: lockout.purge_expired(ctx.pool),
                                     leader=ctx.relay)
    job.start()


async def stop(ctx: ServiceContext) -> None:
    job = ctx.extras.pop(_JOB, None)
    if job is not None:
        await job.stop()

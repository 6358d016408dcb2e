"""What the OIDC context adds to the identity service (main.py reads these).

The provider is built in ON_STARTUP (after the kit has the pool, the bus and the outbox), but
the kit serves rpc before start-up hooks run: the rpc handlers look the provider up when
called and answer 503 until it exists.
"""

from __future__ import annotations

import asyncio

from tessera_events.contracts.oidc import (
    ABORT_INTERACTION,
    FINISH_LOGIN,
    GRANT_CONSENT,
    INTERACTION_DETAILS,
)
from tessera_identity.oidc import routes
from tessera_identity.oidc.interactions import InteractionRpc
from tessera_identity.oidc.provider import EXTRAS_KEY, Provider
from tessera_identity.oidc.revocation import use_outbox
from tessera_identity.oidc.seed import link_admin_role, seed_admin_application
from tessera_identity.oidc.settings import load
from tessera_kit.app import ServiceContext
from tessera_kit.errors import service_unavailable
from tessera_kit.rpc import RpcHandler

_rpc: InteractionRpc | None = None


def _interactions() -> InteractionRpc:
    if _rpc is None:
        raise service_unavailable("identity")
    return _rpc


async def start(ctx: ServiceContext) -> None:
    global _rpc
    provider = Provider(ctx, load())
    await provider.start()
    ctx.extras[EXTRAS_KEY] = provider
    use_outbox(ctx.outbox)
    _rpc = InteractionRpc(provider)
    admin_id = await seed_admin_application(provider)
    provider._tasks.append(asyncio.create_task(link_admin_role(provider, admin_id), name="oidc-admin-link"))


async def stop(ctx: ServiceContext) -> None:
    provider: Provider | None = ctx.extras.pop(EXTRAS_KEY, None)
    if provider is not None:
        await provider.stop()


ROUTES: list = [*routes.handlers]
RPC_HANDLERS: list = [
    RpcHandler(INTERACTION_DETAILS, lambda request: _interactions().details(request)),
    RpcHandler(FINISH_LOGIN, lambda request: _interactions().finish_login(request)),
    RpcHandler(GRANT_CONSENT, lambda request: _interactions().grant_consent(request)),
    RpcHandler(ABORT_INTERACTION, lambda request: _interactions().abort(request)),
]
ON_STARTUP: list = [start]
ON_SHUTDOWN: list = [stop]

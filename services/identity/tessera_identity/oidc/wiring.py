"""What the OIDC context adds to the identity service (main.py reads these).

The provider is built in ON_STARTUP (after the kit has the pool, the bus and the outbox), but
the kit serves rpc before start-up hooks run: the rpc handlers look the interaction answers up
in the service context when called and answer 503 until they exist.
"""

from __future__ import annotations

import functools
from typing import AsyncContextManager, Callable

import asyncpg

from tessera_events.contracts.oidc import (
    ABORT_INTERACTION,
    FINISH_LOGIN,
    GRANT_CONSENT,
    INTERACTION_DETAILS,
)
from tessera_identity.oidc import routes
from tessera_identity.oidc.interactions import InteractionRpc
from tessera_identity.oidc.provider import EXTRAS_KEY, Provider
from tessera_identity.oidc.seed import link_admin_role, seed_admin_application
from tessera_identity.oidc.settings import load
from tessera_kit.app import ServiceContext
from tessera_kit.context import current_tenant, tenant_scope
from tessera_kit.errors import service_unavailable
from tessera_kit.logging import get_logger
from tessera_kit.periodic import Periodic
from tessera_kit.rpc import RpcHandler

INTERACTIONS_KEY = "oidc.interactions"
KEY_REFRESH_KEY = "oidc.key_refresh"
# A key statement's limit (a brief connection's default is for purges: 900 s). A connection that
# stops answering holds a round for about twice this (the statement, then its rollback's wait
# for the cancel), which must stay well below oidc_key_propagation_seconds: a replica stuck
# longer could miss a staged key and not verify the others' tokens once it signs.
KEY_STATEMENT_SECONDS = 60.0

log = get_logger(__name__)


def _interactions(ctx: ServiceContext) -> InteractionRpc:
    """The interaction answers of the tenant the rpc asks for."""
    answers = (ctx.extras.get(INTERACTIONS_KEY) or {}).get(current_tenant())
    if answers is None:
        raise service_unavailable("identity")
    return answers


async def start(ctx: ServiceContext) -> None:
    """One provider per tenant the deployment serves, each with its own issuer and keys."""
    settings = load()
    built: dict[str, Provider] = {}
    ctx.extras[EXTRAS_KEY] = built
    ctx.extras[INTERACTIONS_KEY] = answers = {}
    # Key upkeep on a connection of its own, as the timed purges (none kept open at rest), one
    # for every tenant, at start and then every round.
    connect = functools.partial(ctx.brief_connection, command_timeout=KEY_STATEMENT_SECONDS)
    async with connect() as keys_conn:
        for tenant in ctx.settings.tenants:
            with tenant_scope(tenant):
                provider = Provider(ctx, settings, tenant)
                await provider.start(keys_conn)
                built[tenant] = provider
                answers[tenant] = InteractionRpc(provider)
                if tenant == ctx.settings.tenant_id:
                    # The admin machine-to-machine client of the Management API (the default tenant's).
                    admin_id = await seed_admin_application(provider)
                    provider.background(link_admin_role(provider, admin_id), name="oidc-admin-link")
    # In every replica (each signs with what it has read), so without a leader.
    refresh = Periodic("oidc-key-refresh", settings.oidc_key_refresh_seconds,
                       functools.partial(refresh_keys, built, connect), at_start=False)
    refresh.start()
    ctx.extras[KEY_REFRESH_KEY] = refresh


async def refresh_keys(built: dict[str, Provider],
                       connect: Callable[[], AsyncContextManager[asyncpg.Connection]]) -> None:
    """Every tenant's timed key round (KeyRing.refresh) in one session: a session per tenant
    would cost each replica a backend start per tenant every `oidc_key_refresh_seconds`.
    A tenant whose round fails keeps signing with what it has and the next still gets its
    own; the round then fails as a whole, so the Periodic counts and logs it."""
    failed: list[str] = []
    async with connect() as conn:
        for tenant, provider in built.items():
            try:
                await provider.keys.refresh(conn)
            except Exception as exc:
                failed.append(tenant)
                log.warning("oidc key refresh failed", tenant_id=tenant, error=str(exc))
    if failed:
        raise RuntimeError(f"oidc key refresh failed for tenants {', '.join(failed)}")


async def stop(ctx: ServiceContext) -> None:
    refresh: Periodic | None = ctx.extras.pop(KEY_REFRESH_KEY, None)
    if refresh is not None:
        await refresh.stop()
    built: dict[str, Provider] = ctx.extras.pop(EXTRAS_KEY, None) or {}
    for provider in built.values():
        await provider.stop()


ROUTES: list = [*routes.handlers]
DIRECT_ROUTES = routes.DIRECT_ROUTES
RPC_HANDLERS: list = [
    RpcHandler(INTERACTION_DETAILS, lambda ctx, request: _interactions(ctx).details(request), with_context=True),
    RpcHandler(FINISH_LOGIN, lambda ctx, request: _interactions(ctx).finish_login(request), with_context=True),
    RpcHandler(GRANT_CONSENT, lambda ctx, request: _interactions(ctx).grant_consent(request), with_context=True),
    RpcHandler(ABORT_INTERACTION, lambda ctx, request: _interactions(ctx).abort(request), with_context=True),
]
ON_STARTUP: list = [start]
ON_SHUTDOWN: list = [stop]

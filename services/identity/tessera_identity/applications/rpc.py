"""What identity answers about applications over rpc."""

from __future__ import annotations

from tessera_events.contracts.identity import APPLICATION_CLIENT, ApplicationClient, ApplicationRequest
from tessera_identity.applications import store
from tessera_identity.applications.domain import client
from tessera_kit.app import ServiceContext
from tessera_kit.rpc import RpcHandler
from tessera_kit.context import current_tenant


async def application_client(ctx: ServiceContext, request: ApplicationRequest) -> ApplicationClient | None:
    if request.tenant_id not in ctx.settings.tenants:
        return None
    # The demo app included: it is a client like the others to whoever signs in with it.
    row = await store.find_application(ctx.pool, current_tenant(), request.application_id,
                                       listed_only=False)
    return client(row) if row else None


HANDLERS = [RpcHandler(APPLICATION_CLIENT, application_client, with_context=True)]

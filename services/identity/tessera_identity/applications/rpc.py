"""What identity answers about applications over rpc."""

from __future__ import annotations

from tessera_events.contracts.identity import APPLICATION_CLIENT, ApplicationClient, ApplicationRequest
from tessera_identity.applications import store
from tessera_identity.applications.domain import client
from tessera_identity.runtime import Runtime
from tessera_kit.rpc import RpcHandler


def build_handlers(runtime: Runtime) -> list[RpcHandler]:
    async def application_client(request: ApplicationRequest) -> ApplicationClient | None:
        ctx = await runtime.ctx()
        if request.tenant_id != ctx.settings.tenant_id:
            return None
        # The demo app included: it is a client like the others to whoever signs in with it.
        row = await store.find_application(ctx.pool, ctx.settings.tenant_id, request.application_id,
                                           listed_only=False)
        return client(row) if row else None

    return [RpcHandler(APPLICATION_CLIENT, application_client)]

"""Start-up seeding of the applications context."""

from __future__ import annotations

from tessera_identity.applications import store
from tessera_identity.applications.domain import demo_client_metadata
from tessera_kit.app import ServiceContext


async def seed_demo_app(ctx: ServiceContext) -> None:
    """The `demo-app` client (Logto §5.3), redirecting to `<ENDPOINT>/demo-app`. Not an event:
    it is part of every installation, not a change someone made."""
    async with ctx.pool.acquire() as conn:
        await store.seed_demo_application(conn, ctx.settings.tenant_id, demo_client_metadata(ctx.settings.endpoint))

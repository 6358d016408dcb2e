"""Start-up seeding of the applications context: each tenant's built-in clients."""

from __future__ import annotations

from tessera_identity.applications import store
from tessera_identity.applications.domain import admin_console_client_metadata, demo_client_metadata
from tessera_kit.app import ServiceContext
from tessera_kit.config import ADMIN_TENANT


async def seed_demo_app(ctx: ServiceContext) -> None:
    """Every user tenant's `demo-app` client (Logto §5.3), redirecting to `<its endpoint>/demo-app`;
    the admin tenant's `admin-console` instead. Not events: they are part of every installation,
    not a change someone made."""
    async with ctx.pool.acquire() as conn:
        for tenant, endpoint in ctx.settings.tenants.items():
            if tenant == ADMIN_TENANT:
                await store.seed_admin_console_application(conn, admin_console_client_metadata(endpoint))
            else:
                await store.seed_demo_application(conn, tenant, demo_client_metadata(endpoint))

"""What a fresh tenant starts with: the default sign-in experience and the admin-console
flags (Logto §5.8). Idempotent: replicas starting together seed once, nothing is overwritten."""

from __future__ import annotations

from tessera_experience.config import domain, store
from tessera_kit.app import ServiceContext
from tessera_kit.config import ADMIN_TENANT
from tessera_kit.context import tenant_scope


async def seed_defaults(ctx: ServiceContext) -> None:
    for tenant in ctx.settings.tenants:
        with tenant_scope(tenant):
            sie = (domain.admin_tenant_sign_in_experience() if tenant == ADMIN_TENANT
                   else domain.default_sign_in_experience(tenant))
            async with ctx.pool.acquire() as conn, conn.transaction():
                await store.seed_sign_in_experience(conn, sie)
                await store.seed_config(conn, tenant, domain.ADMIN_CONSOLE_KEY, domain.default_admin_console())

"""What a fresh tenant starts with: the default sign-in experience and the admin-console
flags (Logto §5.8). Idempotent: replicas starting together seed once, nothing is overwritten."""

from __future__ import annotations

from tessera_experience.config import domain, store
from tessera_kit.app import ServiceContext


async def seed_defaults(ctx: ServiceContext) -> None:
    tenant = ctx.settings.tenant_id
    async with ctx.pool.acquire() as conn, conn.transaction():
        await store.seed_sign_in_experience(conn, domain.default_sign_in_experience(tenant))
        await store.seed_config(conn, tenant, domain.ADMIN_CONSOLE_KEY, domain.default_admin_console())

"""Per-tenant seed of the OIDC context: the admin machine-to-machine application.

The Management API resource (`https://default.logto.app/api`), its `all` scope and the
`#internal:admin` role are rbac's seed. Identity creates the admin application from
TESSERA_ADMIN_CLIENT_ID / TESSERA_ADMIN_CLIENT_SECRET (or generates it once) and then asks rbac
to link it to `#internal:admin` (SET_APPLICATION_ADMIN) in the background, retrying until rbac
answers — rbac may start after identity.
"""

from __future__ import annotations

import asyncio
import secrets

from tessera_events.contracts.rbac import SET_APPLICATION_ADMIN, ApplicationAdminRequest
from tessera_events.identity import ApplicationCreated, ApplicationSnapshot, ApplicationUpdated
from tessera_identity.oidc import store
from tessera_identity.oidc.provider import Provider
from tessera_kit.errors import RequestError
from tessera_kit.ids import new_id
from tessera_kit.logging import get_logger

log = get_logger(__name__)

ADMIN_APPLICATION_NAME = "Tessera admin"
ADMIN_APPLICATION_DESCRIPTION = "Machine-to-machine client of the Management API (seeded)."
SEED_KEY = "admin_application"
_ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"


async def seed_admin_application(provider: Provider) -> str:
    settings = provider.settings
    tenant = provider.tenant_id
    async with provider.pool.acquire() as conn, conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock(hashtext('oidc-seed:' || $1))", tenant)
        client_id, secret = settings.admin_client_id, settings.admin_client_secret
        if not client_id:
            saved = await store.get_seed_state(conn, tenant, SEED_KEY)
            if saved and await store.find_application(conn, tenant, saved["id"]):
                return saved["id"]
            client_id = new_id()
            secret = "".join(secrets.choice(_ALPHABET) for _ in range(32))
            log.warning("TESSERA_ADMIN_CLIENT_ID is not set: generated the admin application; "
                        "read its secret from identity.applications", client_id=client_id)
        row = await store.find_application(conn, tenant, client_id)
        if row is None:
            secret = secret or "".join(secrets.choice(_ALPHABET) for _ in range(32))
            created = await conn.fetchrow(
                "INSERT INTO applications (tenant_id, id, name, secret, description, type,"
                " oidc_client_metadata, custom_client_metadata)"
                " VALUES ($1, $2, $3, $4, $5, 'MachineToMachine', $6, '{}') RETURNING created_at",
                tenant, client_id, ADMIN_APPLICATION_NAME, secret, ADMIN_APPLICATION_DESCRIPTION,
                {"redirectUris": [], "postLogoutRedirectUris": []},
            )
            await provider.emit(conn, ApplicationCreated(application=ApplicationSnapshot(
                id=client_id, name=ADMIN_APPLICATION_NAME, type="MachineToMachine",
                description=ADMIN_APPLICATION_DESCRIPTION,
                created_at=int(created["created_at"].timestamp() * 1000),
            )), aggregate_id=client_id)
            log.info("admin application seeded", client_id=client_id)
        elif secret and row["secret"] != secret:
            # The environment is the source of truth for the admin client's secret.
            await conn.execute("UPDATE applications SET secret = $3 WHERE tenant_id = $1 AND id = $2",
                               tenant, client_id, secret)
            await provider.emit(conn, ApplicationUpdated(application=ApplicationSnapshot(
                id=client_id, name=row["name"], type=row["type"]), changed=["secret"]), aggregate_id=client_id)
            provider.clients.evict(client_id)
            log.info("admin application secret updated from the environment", client_id=client_id)
        await store.set_seed_state(conn, tenant, SEED_KEY, {"id": client_id})
    return client_id


async def link_admin_role(provider: Provider, client_id: str, *, max_delay: float = 5.0) -> None:
    """Ask rbac to link the admin application to `#internal:admin`, until it answers."""
    delay = 0.25
    while True:
        try:
            await provider.ctx.call(SET_APPLICATION_ADMIN, ApplicationAdminRequest(
                application_id=client_id, is_admin=True, tenant_id=provider.tenant_id))
            log.info("admin application linked to #internal:admin", client_id=client_id)
            return
        except RequestError as exc:
            log.info("waiting for rbac to link the admin application", code=exc.code)
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)

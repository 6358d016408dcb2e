"""SQL on identity's `applications` table. The demo app is a stored row (so the OIDC
provider can serve it as a client) but stays out of the management API's lists."""

from __future__ import annotations

from typing import Any

import asyncpg

from tessera_identity.applications.domain import ADMIN_CONSOLE_APP_ID, DEMO_APP_ID
from tessera_kit.config import ADMIN_TENANT
from tessera_kit.ids import new_id

APP_COLUMNS = (
    "tenant_id, id, name, secret, description, type, oidc_client_metadata, custom_client_metadata,"
    " (extract(epoch FROM created_at) * 1000)::bigint AS created_at"
)
LISTED = f"tenant_id = $1 AND id <> '{DEMO_APP_ID}'"


async def find_applications(conn, tenant_id: str, limit: int, offset: int) -> tuple[int, list[asyncpg.Record]]:
    total = await conn.fetchval(f"SELECT count(*) FROM applications WHERE {LISTED}", tenant_id)
    if total <= offset:
        return total, []
    rows = await conn.fetch(
        f"SELECT {APP_COLUMNS} FROM applications WHERE {LISTED}"
        # The table's column, not APP_COLUMNS' millisecond alias (unindexed, ties in a millisecond).
        " ORDER BY applications.created_at DESC, applications.id DESC LIMIT $2 OFFSET $3",
        tenant_id, limit, offset,
    )
    return total, rows


async def find_application(conn, tenant_id: str, app_id: str, *, for_update: bool = False,
                           listed_only: bool = True) -> asyncpg.Record | None:
    where = LISTED if listed_only else "tenant_id = $1"
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT {APP_COLUMNS} FROM applications WHERE {where} AND id = $2{lock}",
                               tenant_id, app_id)


async def insert_application(conn: asyncpg.Connection, tenant_id: str, app_id: str, secret: str,
                             values: dict[str, Any]) -> asyncpg.Record | None:
    """The new row, or None when `app_id` is taken."""
    return await conn.fetchrow(
        "INSERT INTO applications (tenant_id, id, name, secret, description, type, oidc_client_metadata,"
        " custom_client_metadata) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
        f" ON CONFLICT (tenant_id, id) DO NOTHING RETURNING {APP_COLUMNS}",
        tenant_id, app_id, values["name"], secret, values.get("description"), values["type"],
        values["oidc_client_metadata"], values["custom_client_metadata"],
    )


async def update_application(conn: asyncpg.Connection, tenant_id: str, app_id: str,
                             row: dict[str, Any]) -> asyncpg.Record:
    return await conn.fetchrow(
        "UPDATE applications SET name = $3, secret = $4, description = $5, type = $6,"
        " oidc_client_metadata = $7, custom_client_metadata = $8 WHERE tenant_id = $1 AND id = $2"
        f" RETURNING {APP_COLUMNS}",
        tenant_id, app_id, row["name"], row["secret"], row["description"], row["type"],
        row["oidc_client_metadata"], row["custom_client_metadata"],
    )


async def delete_application(conn: asyncpg.Connection, tenant_id: str, app_id: str) -> bool:
    result = await conn.execute(f"DELETE FROM applications WHERE {LISTED} AND id = $2", tenant_id, app_id)
    return result.endswith(" 1")


async def seed_demo_application(conn, tenant_id: str, oidc_client_metadata: dict[str, Any]) -> None:
    """The demo app (Logto §5.3): created once, its URIs following the current endpoint."""
    await conn.execute(
        "INSERT INTO applications (tenant_id, id, name, secret, description, type, oidc_client_metadata,"
        " custom_client_metadata, created_at)"
        " VALUES ($1, $2, 'Live Preview', 'N/A', 'Preview for Sign-in Experience.', 'SPA', $3, '{}',"
        " to_timestamp(0))"
        " ON CONFLICT (tenant_id, id) DO UPDATE SET oidc_client_metadata = excluded.oidc_client_metadata"
        " WHERE applications.oidc_client_metadata IS DISTINCT FROM excluded.oidc_client_metadata",
        tenant_id, DEMO_APP_ID, oidc_client_metadata,
    )


async def seed_admin_console_application(conn, oidc_client_metadata: dict[str, Any]) -> None:
    """The admin tenant's `admin-console` SPA (Logto §5.3, §5.8): created once, its URIs
    following the admin endpoint."""
    await conn.execute(
        "INSERT INTO applications (tenant_id, id, name, secret, description, type, oidc_client_metadata,"
        " custom_client_metadata)"
        " VALUES ($1, $2, 'Admin Console', $3, 'Logto Admin Console.', 'SPA', $4, '{}')"
        " ON CONFLICT (tenant_id, id) DO UPDATE SET oidc_client_metadata = excluded.oidc_client_metadata"
        " WHERE applications.oidc_client_metadata IS DISTINCT FROM excluded.oidc_client_metadata",
        ADMIN_TENANT, ADMIN_CONSOLE_APP_ID, new_id(), oidc_client_metadata,
    )

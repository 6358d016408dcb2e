"""What can happen to an application; one transaction per change, with its event.

`isAdmin` is a role link that rbac owns: identity asks rbac (SET_APPLICATION_ADMIN /
IS_APPLICATION_ADMIN). A PATCH that sets it keeps the application row locked while rbac
answers and commits only if rbac did, so "rbac down" (503) changes nothing at all.
"""

from __future__ import annotations

from typing import Any

import asyncpg

from tessera_events.contracts.rbac import (
    IS_APPLICATION_ADMIN,
    SET_APPLICATION_ADMIN,
    ApplicationAdminRequest,
    ApplicationRef,
)
from tessera_events.identity import ApplicationCreated, ApplicationDeleted, ApplicationUpdated
from tessera_identity.applications import store
from tessera_identity.applications.domain import changed_fields, custom_scheme_issues, merged, snapshot
from tessera_kit.app import ServiceContext
from tessera_kit.errors import RequestError, not_found
from tessera_kit.ids import new_id
from tessera_kit.context import current_tenant


async def _emit(ctx: ServiceContext, conn: asyncpg.Connection, event, app_id: str) -> None:
    await ctx.outbox.emit(conn, event, aggregate_id=app_id, tenant_id=current_tenant())


async def get_application(ctx: ServiceContext, app_id: str) -> asyncpg.Record:
    row = await store.find_application(ctx.pool, current_tenant(), app_id)
    if row is None:
        raise not_found("applications", app_id)
    return row


async def is_admin(ctx: ServiceContext, app_id: str) -> bool:
    state = await ctx.call(IS_APPLICATION_ADMIN, ApplicationRef(application_id=app_id,
                                                                tenant_id=current_tenant()))
    return state.is_admin


async def create_application(ctx: ServiceContext, values: dict[str, Any]) -> asyncpg.Record:
    """A given `secret` replaces the generated one (Logto)."""
    secret = values.pop("secret", None) or new_id()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = None
        while row is None:  # None: the 21-character id was taken (about never)
            row = await store.insert_application(conn, current_tenant(), new_id(), secret, values)
        await _emit(ctx, conn, ApplicationCreated(application=snapshot(row)), row["id"])
    return row


def not_exists() -> RequestError:
    # Logto's PATCH is an UPDATE ... RETURNING: no row is `entity.not_exists` (singular name).
    return RequestError("entity.not_exists", 404, name="application")


async def update_application(ctx: ServiceContext, app_id: str, changes: dict[str, Any],
                             set_admin: bool | None) -> tuple[asyncpg.Record, bool | None]:
    """Apply `changes` (metadata merged key by key) and, if given, the admin link.
    Returns the row and the admin state rbac confirmed (None when not asked)."""
    tenant = current_tenant()
    admin_state = None
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await store.find_application(conn, tenant, app_id, for_update=True)
        if before is None:
            raise not_exists()
        after_values = merged(before, changes)
        if "oidc_client_metadata" in changes:
            custom_scheme_issues(after_values["type"], changes["oidc_client_metadata"])
        after = await store.update_application(conn, tenant, app_id, after_values) if changes else before
        changed = changed_fields(before, after)
        if changed:
            await _emit(ctx, conn, ApplicationUpdated(application=snapshot(after), changed=changed), app_id)
        if set_admin is not None:
            # Last, inside the transaction: if rbac is down or refuses, nothing above is kept.
            reply = await ctx.call(SET_APPLICATION_ADMIN, ApplicationAdminRequest(
                application_id=app_id, is_admin=set_admin, tenant_id=tenant,
            ))
            admin_state = reply.is_admin
    return after, admin_state


async def delete_application(ctx: ServiceContext, app_id: str) -> None:
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await store.delete_application(conn, current_tenant(), app_id):
            raise RequestError("entity.not_found", 404)
        await _emit(ctx, conn, ApplicationDeleted(application_id=app_id), app_id)

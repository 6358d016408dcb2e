"""`/api/domains*` (Management API, Logto 1.6): list, create (one per tenant), read, delete.

Logto syncs each domain's status with its DNS provider on every read; with none configured
there is nothing to sync, so what is stored is what is answered."""

from __future__ import annotations

from typing import Any

from litestar import delete, get, post
from litestar.params import FromPath, JSONBody

from tessera_events.experience import DomainCreated, DomainDeleted
from tessera_experience.domains import domain, store
from tessera_kit.app import Ctx
from tessera_kit.errors import RequestError, ValidationIssue, invalid_input, not_found
from tessera_kit.ids import new_id
from tessera_kit.context import current_tenant

TAGS = ["Domains"]


@get("/api/domains", operation_id="ListDomains", tags=TAGS, summary="Get the custom domains")
async def list_domains(ctx: Ctx) -> list[dict[str, Any]]:
    return [domain.response(row) for row in await store.list_domains(ctx.pool, current_tenant())]


@get("/api/domains/{id:str}", operation_id="GetDomain", tags=TAGS, summary="Get a custom domain")
async def get_domain(ctx: Ctx, id: FromPath[str]) -> dict[str, Any]:  # noqa: A002 (Logto's name)
    row = await store.find_domain(ctx.pool, current_tenant(), id)
    if row is None:
        raise not_found("domains", id)
    return domain.response(row)


@post("/api/domains", operation_id="CreateDomain", tags=TAGS, status_code=201,
      summary="Add the custom domain", description="One per tenant (422 `domain.limit_to_one_domain`).")
async def create_domain(ctx: Ctx, data: JSONBody[domain.CreateDomain]) -> dict[str, Any]:
    hostname = domain.normalised_hostname(data.domain)
    if hostname is None:
        raise invalid_input("body", [ValidationIssue("domain", "invalid_string", "Invalid domain name")])
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await store.lock_tenant_domains(conn, tenant)
        if await store.list_domains(conn, tenant):
            raise RequestError("domain.limit_to_one_domain", 422)
        row = await store.insert_domain(conn, tenant, new_id(), hostname, domain.PENDING_VERIFICATION,
                                        domain.dns_records(hostname, ctx.settings.endpoint_of(tenant)))
        await ctx.outbox.emit(conn, DomainCreated(domain=domain.response(row)), aggregate_id=row["id"],
                              tenant_id=tenant)
    return domain.response(row)


@delete("/api/domains/{id:str}", operation_id="DeleteDomain", tags=TAGS, status_code=204,
        summary="Remove a custom domain")
async def delete_domain(ctx: Ctx, id: FromPath[str]) -> None:  # noqa: A002
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await store.delete_domain(conn, tenant, id)
        if row is None:
            raise not_found("domains", id)
        await ctx.outbox.emit(conn, DomainDeleted(id=row["id"], domain=row["domain"]), aggregate_id=row["id"],
                              tenant_id=tenant)


route_handlers = [list_domains, get_domain, create_domain, delete_domain]

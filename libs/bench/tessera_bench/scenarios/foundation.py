"""The foundation's scenarios: the gateway alone, and a paginated list through it."""

from __future__ import annotations

from tessera_bench.scenario import Request, Scenario


async def status(ctx, client) -> Request:
    return Request("GET", "/api/status")


async def logs(ctx, client) -> Request:
    return Request("GET", "/api/logs?page_size=20", headers=await ctx.management_headers(client))


SCENARIOS = [
    Scenario("GET /api/status (gateway only)", status),
    Scenario("GET /api/logs (page of 20)", logs),
]

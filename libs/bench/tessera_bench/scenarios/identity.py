"""identity's scenarios, all through the gateway: creating users, reading one by id, and
searching (`like` on e-mail) with at least 100 000 users in the table.

Creating a user with a password costs one argon2id hash (m=19 MiB, t=2: ~20 ms of a core),
so that scenario measures hashing more than anything; the one without a password measures
the request path (validation, uniqueness checks, insert, outbox) plus the consumers of
`identity.user.created` (audit-log, rbac) that share the machine.

Seeding 100 000 users through the API takes minutes on two cores (each one is an event that
audit-log and rbac apply too). When the context knows the database (`ctx.database_url`, a
field the bench runner may set for a stack it started), the rows are inserted in SQL into
identity's schema instead, in seconds; those users are then unknown to the read models of
other services, which the search does not need.
"""

from __future__ import annotations

import asyncio

import httpx

from tessera_bench.scenario import BenchContext, Request, Scenario

SEARCH_TABLE_SIZE = 100_000
SEED_CONCURRENCY = 64
_EMAIL_DOMAINS = 97  # spread addresses over many domains, as real ones are


async def _create(client: httpx.AsyncClient, ctx: BenchContext, headers: dict[str, str], body: dict) -> dict:
    response = await client.post(f"{ctx.url}/api/users", json=body, headers=headers)
    response.raise_for_status()
    return response.json()


async def _user_count(client: httpx.AsyncClient, ctx: BenchContext, headers: dict[str, str]) -> int:
    response = await client.get(f"{ctx.url}/api/users", params={"page_size": "1"}, headers=headers)
    response.raise_for_status()
    return int(response.headers["total-number"])


async def _seed_in_sql(database_url: str, first: int, count: int) -> None:
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO identity.users (tenant_id, id, username, primary_email, name)"
            " SELECT 'default', 'seed' || lpad(n::text, 8, '0'), 'seed_' || n,"
            " 'seed' || n || '@mail' || (n % $3) || '.example', 'Seeded Person ' || n"
            " FROM generate_series($1::int, $2::int) AS n ON CONFLICT DO NOTHING",
            first, first + count - 1, _EMAIL_DOMAINS,
        )
        await conn.execute("VACUUM ANALYZE identity.users")
    finally:
        await conn.close()


async def _seed_users(client: httpx.AsyncClient, ctx: BenchContext, headers: dict[str, str], total: int) -> None:
    """Add users until the table holds `total` (a rerun adds none)."""
    start = await _user_count(client, ctx, headers)
    missing = total - start
    if missing <= 0:
        return
    database_url = getattr(ctx, "database_url", None)
    if database_url:
        await _seed_in_sql(database_url, start, missing)
        return
    numbers = iter(range(start, start + missing))

    async def worker() -> None:
        for n in numbers:
            await _create(client, ctx, headers, {
                "username": f"seed_{n}", "primaryEmail": f"seed{n}@mail{n % _EMAIL_DOMAINS}.example",
                "name": f"Seeded Person {n}",
            })

    await asyncio.gather(*[worker() for _ in range(SEED_CONCURRENCY)])


async def create_user(ctx: BenchContext, client: httpx.AsyncClient) -> Request:
    headers = await ctx.management_headers(client)
    return Request("POST", "/api/users", headers=headers,
                   lua_body='"{\\"username\\":\\"b_" .. unique .. "\\"}"')


async def create_user_with_password(ctx: BenchContext, client: httpx.AsyncClient) -> Request:
    headers = await ctx.management_headers(client)
    return Request("POST", "/api/users", headers=headers,
                   lua_body='"{\\"username\\":\\"p_" .. unique .. "\\",\\"password\\":\\"bench-pass-1\\"}"')


async def get_user(ctx: BenchContext, client: httpx.AsyncClient) -> Request:
    headers = await ctx.management_headers(client)
    user = await _create(client, ctx, headers, {"name": "Bench Reader", "customData": {}})
    return Request("GET", f"/api/users/{user['id']}", headers=headers)


async def search_users(ctx: BenchContext, client: httpx.AsyncClient) -> Request:
    headers = await ctx.management_headers(client)
    await _seed_users(client, ctx, headers, SEARCH_TABLE_SIZE)
    # `like` takes the value verbatim: %...% is the client's. One seeded address matches.
    return Request("GET", "/api/users?search.primaryEmail=%25seed4242%40%25&page_size=20", headers=headers)


async def list_applications(ctx: BenchContext, client: httpx.AsyncClient) -> Request:
    """The Console's application list: a page of 20 (at least 20 applications exist)."""
    headers = await ctx.management_headers(client)
    listed = await client.get(f"{ctx.url}/api/applications", params={"page_size": "1"}, headers=headers)
    listed.raise_for_status()
    for n in range(int(listed.headers["total-number"]), 25):
        created = await client.post(f"{ctx.url}/api/applications", headers=headers, json={
            "name": f"Bench app {n}", "type": "SPA",
            "oidcClientMetadata": {"redirectUris": [f"https://app{n}.example/cb"], "postLogoutRedirectUris": []},
        })
        created.raise_for_status()
    return Request("GET", "/api/applications?page=1&page_size=20", headers=headers)


SCENARIOS = [
    Scenario("GET /api/applications (page of 20)", list_applications),
    Scenario("POST /api/users (create, no password)", create_user),
    Scenario("POST /api/users (create with password, argon2id)", create_user_with_password, connections=8),
    Scenario("GET /api/users/:id", get_user),
    Scenario(f"GET /api/users like-search on email ({SEARCH_TABLE_SIZE // 1000}k users)", search_users,
             note="seeds users through the API first (about a minute the first time)"),
]

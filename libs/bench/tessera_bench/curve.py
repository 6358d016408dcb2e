"""The user-count curve (`--users 10k,100k,1M`): the same four reads measured with the
user table at each size, to show whether their cost grows with the table.

- like-search on e-mail: `GET /api/users?search.primaryEmail=%seed4242@%` (one match);
- the list with `Total-Number`: `GET /api/users?page=1&page_size=20`;
- get by id: `GET /api/users/:id`;
- a role's users: `GET /api/roles/:id/users?page_size=20`, the role held by 1,000 users spread
  evenly over the table at every size (so only the table grows, not the answer).

Users are seeded in SQL (a million takes about a minute), in identity's table and in rbac's read
model of users (`directory_users`, as identity's events would have filled it); the sizes are
reached in ascending order, each adding the users the previous one lacked. Needs the database
of a stack the bench started itself (not `--url`).
"""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass

import httpx

from tessera_bench.scenario import BenchContext, Request
from tessera_bench.wrk import run_wrk

ROLE_NAME = "bench-curve-role"
ROLE_HOLDERS = 1_000
EMAIL_DOMAINS = 97  # addresses spread over many domains, as real ones are
SEARCHED = 4242  # the user the like-search finds (exists at every size from 10k)
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([kKmM]?)$")


def parse_sizes(text: str) -> list[int]:
    """'10k,100k,1M' -> [10000, 100000, 1000000] (ascending, no repeats)."""
    sizes = set()
    for part in text.split(","):
        match = _SIZE.match(part.strip())
        if not match:
            raise ValueError(f"not a user count: {part!r} (e.g. 10k, 100k, 1M)")
        number, unit = float(match.group(1)), match.group(2).lower()
        size = int(number * {"": 1, "k": 1_000, "m": 1_000_000}[unit])
        if size < 10_000:
            raise ValueError("the curve starts at 10k users (the searched user is number 4242)")
        sizes.add(size)
    return sorted(sizes)


def label(size: int) -> str:
    if size % 1_000_000 == 0:
        return f"{size // 1_000_000}M"
    if size % 1_000 == 0:
        return f"{size // 1_000}k"
    return str(size)


def seeded_id(n: int) -> str:
    return f"seed{n:08d}"


async def _seed(database_url: str, size: int, role_id: str) -> None:
    """Users 0..size-1 in identity and in rbac's read model; the role's holders re-spread."""
    import asyncpg

    conn = await asyncpg.connect(database_url)
    try:
        have = await conn.fetchval("SELECT count(*) FROM identity.users WHERE id LIKE 'seed%'")
        if have < size:
            # Creation times one second apart, oldest first, as users sign up over time.
            async with conn.transaction():
                await conn.execute(
                    "INSERT INTO identity.users (tenant_id, id, username, primary_email, name, created_at)"
                    " SELECT 'default', 'seed' || lpad(n::text, 8, '0'), 'seed_' || n,"
                    " 'seed' || n || '@mail' || (n % $3) || '.example', 'Seeded Person ' || n,"
                    " timestamptz '2020-01-01' + make_interval(secs => n)"
                    " FROM generate_series($1::int, $2::int - 1) AS n ON CONFLICT DO NOTHING",
                    have, size, EMAIL_DOMAINS,
                )
                await conn.execute(
                    "INSERT INTO rbac.directory_users (tenant_id, id, username, primary_email, name,"
                    " created_at, last_event_at)"
                    " SELECT tenant_id, id, username, primary_email, name, created_at,"
                    " (extract(epoch FROM created_at) * 1000)::bigint"
                    " FROM identity.users WHERE id LIKE 'seed%' AND id >= $1 ON CONFLICT DO NOTHING",
                    seeded_id(have),
                )
        step = size // ROLE_HOLDERS
        async with conn.transaction():
            await conn.execute("DELETE FROM rbac.users_roles WHERE role_id = $1", role_id)
            await conn.execute(
                "INSERT INTO rbac.users_roles (tenant_id, id, user_id, role_id)"
                " SELECT 'default', 'curve' || n, 'seed' || lpad((n * $2)::text, 8, '0'), $1"
                " FROM generate_series(0, $3::int - 1) AS n",
                role_id, step, ROLE_HOLDERS,
            )
        for table in ("identity.users", "rbac.directory_users", "rbac.users_roles"):
            await conn.execute(f"VACUUM ANALYZE {table}")
    finally:
        await conn.close()


async def _curve_role(ctx: BenchContext, client: httpx.AsyncClient, headers: dict[str, str]) -> str:
    found = await client.get(f"{ctx.url}/api/roles", headers=headers, params={"search.name": ROLE_NAME})
    found.raise_for_status()
    if found.json():
        return found.json()[0]["id"]
    created = await client.post(f"{ctx.url}/api/roles", headers=headers,
                                json={"name": ROLE_NAME, "description": "held by 1,000 seeded users"})
    created.raise_for_status()
    return created.json()["id"]


@dataclass
class Point:
    reads: str
    size: int
    per_second: float
    p50_ms: float
    p99_ms: float
    errors: int


def _reads(role_id: str, headers: dict[str, str]) -> list[tuple[str, Request]]:
    return [
        ("like-search on e-mail", Request(
            "GET", f"/api/users?search.primaryEmail=%25seed{SEARCHED}%40%25&page_size=20", headers=headers)),
        ("list with Total-Number", Request("GET", "/api/users?page=1&page_size=20", headers=headers)),
        ("get by id", Request("GET", f"/api/users/{seeded_id(SEARCHED)}", headers=headers)),
        ("role's users", Request("GET", f"/api/roles/{role_id}/users?page=1&page_size=20", headers=headers)),
    ]


async def _check(ctx: BenchContext, client: httpx.AsyncClient, size: int, reads) -> None:
    """Each read answers what it should before it is timed (a fast wrong answer proves nothing)."""
    expected_totals = {"like-search on e-mail": 1, "role's users": ROLE_HOLDERS}
    for name, request in reads:
        response = await client.get(ctx.url + request.path, headers=request.headers)
        if response.status_code != 200:
            raise RuntimeError(f"{name}: {response.status_code} {response.text[:200]}")
        total = response.headers.get("total-number")
        if name in expected_totals and int(total) != expected_totals[name]:
            raise RuntimeError(f"{name}: Total-Number {total}, expected {expected_totals[name]}")
        if name == "list with Total-Number" and int(total) < size:
            raise RuntimeError(f"{name}: Total-Number {total} with {size} users seeded")


async def measure_curve(ctx: BenchContext, client: httpx.AsyncClient, sizes: list[int], *, seconds: int,
                        settle=lambda: None) -> list[Point]:
    if not ctx.database_url:
        raise RuntimeError("the user curve seeds in SQL: it needs a stack the bench started (no --url)")
    headers = await ctx.management_headers(client)
    role_id = await _curve_role(ctx, client, headers)
    reads = _reads(role_id, headers)
    points = []
    for size in sizes:
        started = time.monotonic()
        print(f"• seeding {label(size)} users ...", file=sys.stderr, flush=True)
        await _seed(ctx.database_url, size, role_id)
        print(f"  seeded in {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
        await _check(ctx, client, size, reads)
        for name, request in reads:
            print(f"• {name} ({label(size)} users)", file=sys.stderr, flush=True)
            settle()
            run_wrk(ctx.url, request, seconds=2, connections=32)  # warm-up
            result = run_wrk(ctx.url, request, seconds=seconds, connections=32)
            points.append(Point(name, size, result.requests_per_second, result.p50_ms, result.p99_ms,
                                result.errors))
            print(f"  {result.requests_per_second:,.1f}/s, p50 {result.p50_ms:.1f} ms, p99 {result.p99_ms:.1f} ms,"
                  f" {result.errors} errors", file=sys.stderr, flush=True)
    return points


def curve_table(points: list[Point]) -> list[tuple[str, ...]]:
    """Rows: one per read, a 'req/s (p50 ms)' column per size, and the largest size's ratio
    to the one before it (throughput and p50), the issue's "at most 2x slower" measure."""
    sizes = sorted({p.size for p in points})
    header = ("reads", *[f"{label(s)} users: req/s (p50 ms)" for s in sizes])
    if len(sizes) > 1:
        header += (f"{label(sizes[-1])} vs {label(sizes[-2])}: slower by (req/s, p50)",)
    rows = [header]
    for reads in dict.fromkeys(p.reads for p in points):
        by_size = {p.size: p for p in points if p.reads == reads}
        row = [reads]
        for s in sizes:
            p = by_size.get(s)
            errors = f", {p.errors} errors" if p and p.errors else ""
            row.append(f"{p.per_second:,.0f}/s ({p.p50_ms:.1f}{errors})" if p else "")
        if len(sizes) > 1 and sizes[-1] in by_size and sizes[-2] in by_size:
            big, small = by_size[sizes[-1]], by_size[sizes[-2]]
            if big.per_second and small.p50_ms:
                row.append(f"{small.per_second / big.per_second:.2f}x, {big.p50_ms / small.p50_ms:.2f}x")
            else:  # nothing answered within wrk's timeout at the larger size
                row.append("no answer in time")
        rows.append(tuple(row))
    return rows

"""rbac's benchmarks: `GET /api/roles` over 10 000 roles, and the scopes rpc of the token endpoint.

`SCENARIOS` are HTTP scenarios for wrk, like every module's.

`RPC_BENCHMARKS` cannot go through wrk: the scopes rpc (`rpc.rbac.user_scopes`, what the OIDC
token endpoint asks on every token for a resource) is NATS request/reply. Each entry is an
`RpcBenchmark` whose `run(ctx, client, nats_url, namespace, seconds)` prepares its data over HTTP,
then drives the rpc itself from this process and returns an `RpcResult` (calls/s, p50, p99,
errors). The runner needs the stack's NATS URL and namespace for it: the local stack has them
(`nats.url`, namespace "bench"); with `--url`, `NATS_URL` and `TESSERA_NAMESPACE` from the
environment. What `__main__` has to add, next to the event-latency run:

    for benchmark in rbac.RPC_BENCHMARKS:
        result = await benchmark.run(ctx, client, nats_url, namespace, args.seconds)
        rows.append((benchmark.name, f"{result.calls_per_second:,.0f}/s", f"{result.p50_ms:.1f}",
                     f"{result.p99_ms:.1f}", str(result.errors), benchmark.target))
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass
from typing import Awaitable, Callable

import httpx

from tessera_bench.scenario import BenchContext, Request, Scenario

ROLE_COUNT = 10_000
ROLE_PREFIX = "bench-role-"
CREATE_CONCURRENCY = 32
FEATURED_HOLDERS = 5  # users holding the newest roles, so the page shows featuredUsers


async def _post_all(client: httpx.AsyncClient, url: str, headers: dict[str, str], bodies: list[dict]) -> None:
    queue: asyncio.Queue[dict] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)

    async def worker() -> None:
        while not queue.empty():
            body = queue.get_nowait()
            response = await client.post(url, json=body, headers=headers)
            if response.status_code not in (200, 201, 422):  # 422: left by an earlier run
                raise RuntimeError(f"POST {url}: {response.status_code} {response.text[:200]}")

    await asyncio.gather(*(worker() for _ in range(CREATE_CONCURRENCY)))


async def ten_thousand_roles(ctx: BenchContext, client: httpx.AsyncClient) -> Request:
    """Make sure 10 000 bench roles exist (reused across runs), a few users holding the newest
    ones, then ask for the first page as the Console does."""
    headers = await ctx.management_headers(client)
    existing = await client.get(f"{ctx.url}/api/roles", headers=headers,
                                params={"search.name": f"{ROLE_PREFIX}%", "page_size": "1"})
    existing.raise_for_status()
    have = int(existing.headers["total-number"])
    if have < ROLE_COUNT:
        await _post_all(client, f"{ctx.url}/api/roles", headers, [
            {"name": f"{ROLE_PREFIX}{n:05d}", "description": f"Bench role {n}"} for n in range(have, ROLE_COUNT)
        ])
        newest = (await client.get(f"{ctx.url}/api/roles", headers=headers, params={"page_size": "20"})).json()
        for n in range(FEATURED_HOLDERS):
            user = await client.post(f"{ctx.url}/api/users", headers=headers,
                                     json={"username": f"bench_holder_{secrets.token_hex(4)}", "name": f"Holder {n}"})
            if user.status_code == 200:
                await client.post(f"{ctx.url}/api/users/{user.json()['id']}/roles", headers=headers,
                                  json={"roleIds": [r["id"] for r in newest]})
    return Request("GET", "/api/roles?page=1&page_size=20", headers=headers)


SCENARIOS = [
    Scenario("GET /api/roles (10k roles, page of 20)", ten_thousand_roles,
             note="each row with usersCount and featuredUsers"),
]


# --- the scopes rpc --------------------------------------------------------------------------


@dataclass
class RpcResult:
    calls: int
    errors: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def calls_per_second(self) -> float:
        return self.calls / self.seconds if self.seconds else 0.0


@dataclass
class RpcBenchmark:
    name: str
    run: Callable[[BenchContext, httpx.AsyncClient, str, str, int], Awaitable[RpcResult]]
    target: str = ""


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def _scopes_fixture(ctx: BenchContext, client: httpx.AsyncClient) -> tuple[str, str]:
    """A resource with 5 scopes, two roles holding them, a user holding both roles."""
    headers = await ctx.management_headers(client)
    indicator = f"https://bench-{secrets.token_hex(4)}.example.com"
    resource = (await client.post(f"{ctx.url}/api/resources", headers=headers,
                                  json={"name": "Bench API", "indicator": indicator})).json()
    scope_ids = []
    for n in range(5):
        scope = await client.post(f"{ctx.url}/api/resources/{resource['id']}/scopes", headers=headers,
                                  json={"name": f"bench:{n}", "description": "bench"})
        scope_ids.append(scope.json()["id"])
    role_ids = []
    for n, scopes in enumerate((scope_ids[:3], scope_ids[2:])):
        role = await client.post(f"{ctx.url}/api/roles", headers=headers,
                                 json={"name": f"bench-scopes-{secrets.token_hex(4)}-{n}", "description": "bench",
                                       "scopeIds": scopes})
        role_ids.append(role.json()["id"])
    user = await client.post(f"{ctx.url}/api/users", headers=headers,
                             json={"username": f"bench_scopes_{secrets.token_hex(4)}"})
    user.raise_for_status()  # needs identity: rbac knows users only through identity's events
    user_id = user.json()["id"]
    assigned = await client.post(f"{ctx.url}/api/users/{user_id}/roles", headers=headers, json={"roleIds": role_ids})
    assigned.raise_for_status()
    return user_id, indicator


async def user_scopes_rpc(
    ctx: BenchContext, client: httpx.AsyncClient, nats_url: str, namespace: str, seconds: int,
    *, concurrency: int = 64,
) -> RpcResult:
    from tessera_events.contracts.rbac import USER_SCOPES, UserScopesRequest
    from tessera_kit import rpc
    from tessera_kit.bus import Bus

    user_id, indicator = await _scopes_fixture(ctx, client)
    request = UserScopesRequest(user_id=user_id, indicator=indicator, tenant_id="default")
    bus = await Bus.connect(nats_url, namespace=namespace, name="bench-rbac-rpc")
    try:
        answer = await rpc.call(bus, USER_SCOPES, request)
        if answer.scopes != [f"bench:{n}" for n in range(5)]:
            raise RuntimeError(f"unexpected answer {answer}")
        latencies: list[float] = []
        errors = 0

        async def caller(until: float) -> None:
            nonlocal errors
            while time.perf_counter() < until:
                started = time.perf_counter()
                try:
                    await rpc.call(bus, USER_SCOPES, request, timeout=5.0)
                except Exception:
                    errors += 1
                    continue
                latencies.append((time.perf_counter() - started) * 1000)

        warm_up = time.perf_counter() + 2
        await asyncio.gather(*(caller(warm_up) for _ in range(concurrency)))
        latencies.clear()
        errors = 0
        started = time.perf_counter()
        await asyncio.gather(*(caller(started + seconds) for _ in range(concurrency)))
        elapsed = time.perf_counter() - started
    finally:
        await bus.close()
    return RpcResult(len(latencies), errors, elapsed, _percentile(latencies, 0.5), _percentile(latencies, 0.99))


RPC_BENCHMARKS = [
    RpcBenchmark("rpc rbac.user_scopes (token endpoint)", user_scopes_rpc,
                 target=""),
]

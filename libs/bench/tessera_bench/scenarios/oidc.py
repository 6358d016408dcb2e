"""The OpenID Provider's scenarios (targets on 2 cores, load generator included):

- client-credentials token with a resource (JWT) through the gateway   ≥ 1,000/s
- discovery document                                                    ≥ 4,000/s
- full password sign-in (auth → interaction → code → token)             ≥ 30/s

The first two are single requests, driven by wrk like every other scenario.

The sign-in is a *flow* of ~8 dependent requests carrying cookies, which one wrk request shape
cannot express. `FLOWS` lists it as an async callable doing one complete sign-in, on the lean
client of `tessera_bench.browser`; `measure_flow` runs N concurrent workers repeating it for
`seconds` and reports the flow rate and per-flow p50/p99.
The flow uses Logto's interaction API (`/api/interaction*`), which the experience service
serves; without it the flow's setup fails with a clear message and the row is skipped.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import secrets
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Awaitable, Callable
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx

from tessera_bench import bare_provider
from tessera_bench.browser import Browser, Connection
from tessera_bench.scenario import Baseline, BenchContext, Request, Scenario
from tessera_bench.token_answer import fetch_and_check

MANAGEMENT_API = "https://default.logto.app/api"
REDIRECT_URI = "http://bench.invalid/callback"
JSON, FORM = "application/json", "application/x-www-form-urlencoded"


async def _admin_credentials_ready(ctx: BenchContext, client: httpx.AsyncClient) -> str:
    """Basic credentials of the admin client, once its token carries `all` (rbac links the
    admin application in the background after start-up)."""
    if not ctx.admin_client_id:
        raise RuntimeError("no admin client credentials (TESSERA_ADMIN_CLIENT_ID/SECRET)")
    for _ in range(100):
        response = await client.post(
            f"{ctx.url}/oidc/token",
            data={"grant_type": "client_credentials", "resource": MANAGEMENT_API, "scope": "all"},
            auth=(ctx.admin_client_id, ctx.admin_client_secret or ""),
        )
        if response.status_code == 200 and "all" in response.json().get("scope", "").split():
            return base64.b64encode(f"{ctx.admin_client_id}:{ctx.admin_client_secret}".encode()).decode()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"no Management API token for the admin client: {response.status_code} {response.text[:80]}")


CLIENT_CREDENTIALS_SCOPE = "all"


def client_credentials_request(basic: str) -> Request:
    """The row's one request: client_secret_basic, the Management API as resource, scope all."""
    return Request(
        "POST", "/oidc/token",
        headers={"authorization": f"Basic {basic}", "content-type": "application/x-www-form-urlencoded"},
        body=urlencode({"grant_type": "client_credentials", "resource": MANAGEMENT_API,
                        "scope": CLIENT_CREDENTIALS_SCOPE}),
    )


async def client_credentials(ctx: BenchContext, client: httpx.AsyncClient) -> Request:
    return client_credentials_request(await _admin_credentials_ready(ctx, client))


async def check_client_credentials(client: httpx.AsyncClient, url: str, request: Request) -> dict:
    return await fetch_and_check(client, url, request, resource=MANAGEMENT_API, scope=CLIENT_CREDENTIALS_SCOPE)


@contextlib.contextmanager
def bare_oidc_provider(ctx: BenchContext):
    """panva's oidc-provider with the admin client's own id and secret, so wrk sends it the
    very bytes it sends us."""
    if not ctx.admin_client_id:
        raise bare_provider.Unavailable("no admin client credentials to give it")
    with bare_provider.running(client_id=ctx.admin_client_id, client_secret=ctx.admin_client_secret or "",
                               resource=MANAGEMENT_API, scope=CLIENT_CREDENTIALS_SCOPE) as bare:
        print(f"  {bare.versions}", file=sys.stderr, flush=True)
        yield bare.url, [bare.pid]


BARE_OIDC_PROVIDER = Baseline(bare_provider.NAME, bare_oidc_provider,
                              ratio_of="client credentials", ratio_to="bare oidc-provider",
                              ratio_target="≥ 1.0×")


async def discovery(ctx: BenchContext, client: httpx.AsyncClient) -> Request:
    return Request("GET", "/oidc/.well-known/openid-configuration")


SCENARIOS = [
    Scenario("POST /oidc/token client-credentials with a resource (JWT)", client_credentials,
             check=check_client_credentials, baseline=BARE_OIDC_PROVIDER),
    Scenario("GET /oidc/.well-known/openid-configuration (discovery)", discovery),
]


# ------------------------------------------------------------------ the sign-in flow


@dataclass
class SignInSetup:
    client_id: str
    username: str
    password: str
    # Keep-alive connections shared by the simulated browsers (each flow has its own
    # cookie jar): opening a connection per flow would measure TCP set-up instead.
    connections: asyncio.Queue[Connection] = field(default_factory=asyncio.Queue)


async def sign_in_setup(ctx: BenchContext, client: httpx.AsyncClient) -> SignInSetup:
    """An SPA client and a user with a password, through the Management API."""
    headers = await ctx.management_headers(client)
    app = await client.post(f"{ctx.url}/api/applications", headers=headers, json={
        "name": "bench sign-in", "type": "SPA",
        "oidcClientMetadata": {"redirectUris": [REDIRECT_URI], "postLogoutRedirectUris": []}})
    app.raise_for_status()
    username, password = f"bench_{secrets.token_hex(4)}", "Bench-passw0rd!" + secrets.token_hex(4)
    user = await client.post(f"{ctx.url}/api/users", headers=headers,
                             json={"username": username, "password": password})
    user.raise_for_status()
    probe = await client.put(f"{ctx.url}/api/interaction", json={"event": "SignIn"})
    if probe.status_code == 404:
        raise RuntimeError("the interaction API (experience service) does not answer")
    return SignInSetup(app.json()["id"], username, password)


async def password_sign_in(ctx: BenchContext, setup: SignInSetup) -> None:
    """One browser: authorize (PKCE) → sign-in pages' API with the password → submit →
    consent → code → token. Raises if any step answers unexpectedly."""
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    connection = setup.connections.get_nowait() if not setup.connections.empty() else Connection(ctx.url)
    try:
        browser = Browser(connection)
        query = urlencode({
            "client_id": setup.client_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
            "scope": "openid offline_access profile", "prompt": "consent", "state": "bench",
            "code_challenge": challenge, "code_challenge_method": "S256"})
        response = await browser.request("GET", f"/oidc/auth?{query}")
        assert response.status == 303, response.body
        step = await browser.request("PUT", "/api/interaction", content_type=JSON, body=json.dumps({
            "event": "SignIn", "identifier": {"username": setup.username, "password": setup.password}}).encode())
        assert step.status == 204, step.body
        location = json.loads((await browser.request("POST", "/api/interaction/submit")).body)["redirectTo"]
        for _ in range(6):
            response = await browser.request("GET", location)
            location = response.headers.get("location", "")
            if urlsplit(location).path.endswith("/consent"):
                consent = await browser.request("POST", "/api/interaction/consent")
                location = json.loads(consent.body)["redirectTo"]
            elif location.startswith(REDIRECT_URI):
                break
        code = parse_qs(urlsplit(location).query)["code"][0]
        token = await browser.request("POST", "/oidc/token", content_type=FORM, body=urlencode({
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT_URI,
            "code_verifier": verifier, "client_id": setup.client_id}).encode())
        assert token.status == 200 and "access_token" in json.loads(token.body), token.body
    except BaseException:
        await connection.close()  # in an unknown state: the next flow opens a new one
        raise
    setup.connections.put_nowait(connection)


@dataclass
class Flow:
    name: str
    setup: Callable[[BenchContext, httpx.AsyncClient], Awaitable[object]]
    run_once: Callable[[BenchContext, object], Awaitable[None]]
    concurrency: int = 8


FLOWS = [Flow("full password sign-in (auth → interaction → code → token)", sign_in_setup, password_sign_in)]


@dataclass
class FlowResult:
    per_second: float
    p50_ms: float
    p99_ms: float
    completed: int
    errors: int
    cpu: dict[str, float] | None = None  # CPU seconds by process while the workers ran (a meter's)


async def measure_flow(ctx: BenchContext, flow: Flow, *, seconds: float, client: httpx.AsyncClient,
                       meter: Callable[[], Callable[[], dict[str, float]]] | None = None) -> FlowResult:
    """Run `flow.concurrency` workers repeating the flow for `seconds`; bounded by time.
    `meter()` is called as the workers start (the setup left out) and what it answers as
    they end: the CPU each process spent, for the result."""
    prepared = await flow.setup(ctx, client)
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            try:
                await flow.run_once(ctx, prepared)
                latencies.append(time.perf_counter() - started)
            except Exception:
                errors += 1

    stop = meter() if meter is not None else None
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(flow.concurrency)))
    elapsed = time.perf_counter() - began
    cpu = stop() if stop is not None else None
    ordered = sorted(latencies) or [float("nan")]
    return FlowResult(
        per_second=len(latencies) / elapsed,
        p50_ms=ordered[len(ordered) // 2] * 1000,
        p99_ms=ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000,
        completed=len(latencies), errors=errors, cpu=cpu,
    )

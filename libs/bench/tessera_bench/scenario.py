"""What a benchmark scenario is, and what it gets to prepare itself."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Awaitable, Callable, ContextManager

import httpx


@dataclass
class BenchContext:
    """The running stack as a scenario's setup sees it."""

    url: str
    admin_client_id: str | None = None
    admin_client_secret: str | None = None
    dev_auth: bool = False
    # The stack's database, when the runner started the stack itself (fast SQL seeding).
    database_url: str | None = None
    _token: str | None = None

    async def management_headers(self, client: httpx.AsyncClient) -> dict[str, str]:
        """A real Management API token when the OIDC provider answers, else the dev header."""
        if self._token is None and self.admin_client_id:
            response = await client.post(
                f"{self.url}/oidc/token",
                data={"grant_type": "client_credentials", "resource": "https://default.logto.app/api",
                      "scope": "all"},
                auth=(self.admin_client_id, self.admin_client_secret or ""),
            )
            if response.status_code == 200:
                self._token = response.json()["access_token"]
        if self._token:
            return {"authorization": f"Bearer {self._token}"}
        if self.dev_auth:
            return {"development-user-id": "bench-admin"}
        raise RuntimeError("no way to call the Management API: no token and dev auth is off")


@dataclass
class Request:
    method: str = "GET"
    path: str = "/"
    headers: dict[str, str] = field(default_factory=dict)
    body: str | None = None
    # A Lua expression of wrk's that builds the body per request (unique values), e.g.
    # '"{\\"username\\":\\"u" .. counter .. "\\"}"' — `counter` is a per-thread request count.
    lua_body: str | None = None


Setup = Callable[[BenchContext, httpx.AsyncClient], Awaitable[Request]]


@dataclass
class Baseline:
    """Another server answering the scenario's very request, measured beside it in the same
    run with the same load (the bench prints ours ÷ baseline)."""

    name: str
    # The server's origin and the pids whose CPU it spends, while running; raises to skip.
    running: Callable[[BenchContext], ContextManager[tuple[str, list[int]]]]
    # The ratio line under the table reads "<ratio_of>: 0.84× <ratio_to>".
    ratio_of: str
    ratio_to: str
    ratio_target: str = ""


# One answer of a server (its origin) to the scenario's request, checked before and after a
# run: raises when it is wrong, so a fast error path cannot pass as speed.
Check = Callable[[httpx.AsyncClient, str, Request], Awaitable[object]]


@dataclass
class Scenario:
    name: str
    setup: Setup
    connections: int = 32
    note: str = ""
    check: Check | None = None
    baseline: Baseline | None = None

"""The load of a chaos round: registrations and sign-ins through the interaction API, client
credentials tokens, role changes and user updates (name, password), through the gateway.

Every request is recorded (`Outcome`: when it started and ended, its status and Logto error
code), and every write keeps what the client may now believe:
- a 2xx write happened, so the database must show it;
- a write that failed may or may not have happened (a 503 without Retry-After when the
  upstream died with it in flight, a 502, a timeout): its value becomes a *candidate*, and the
  check accepts either;
- a password replaced by a 2xx change is *retired*: nobody may sign in with it any more.
Each user belongs to one worker, so its writes are sequential and the last 2xx is the truth.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import random
import secrets
import time
from dataclasses import dataclass, field
from urllib.parse import urlencode

import httpx

ADMIN = {"development-user-id": "chaos-admin"}
REDIRECT_URI = "https://chaos.invalid/callback"
MANAGEMENT_API = "https://default.logto.app/api"
# How long a client waits for one answer: far above any healthy answer, so a request that
# hangs is a finding, not a retry.
REQUEST_TIMEOUT = 20.0
# A client whose request failed waits this long before its next one (not the whole Retry-After:
# the run would then measure idle clients).
FAILURE_PAUSE = 0.2


@dataclass
class Outcome:
    op: str
    started: float
    ended: float
    status: int | None  # None: no HTTP answer (connection refused, reset, timeout)
    ok: bool
    code: str | None = None  # the error code, when the body is in the contract's format
    logto_format: bool = False  # Logto's {code, message}, or OAuth's {error} under /oidc
    error: str = ""


@dataclass
class UserState:
    id: str
    username: str
    password: str | None  # None while a failed change leaves it uncertain
    candidates: set[str] = field(default_factory=set)  # passwords that may be current
    retired: set[str] = field(default_factory=set)  # replaced by a 2xx change
    name: str | None = None
    name_candidates: set[str | None] = field(default_factory=set)
    role: bool | None = False  # holds the chaos role; None: uncertain
    registered_at: float = 0.0


@dataclass
class LoadState:
    """What the load wrote and saw, across rounds."""

    application_id: str
    role_id: str
    admin_id: str
    admin_secret: str
    users: list[UserState] = field(default_factory=list)
    registered: list[str] = field(default_factory=list)  # usernames whose registration got a 2xx
    maybe_registered: list[str] = field(default_factory=list)  # usernames of failed registrations
    outcomes: list[Outcome] = field(default_factory=list)


def _logto_error(response: httpx.Response) -> tuple[str | None, bool]:
    try:
        body = response.json()
    except ValueError:
        return None, False
    if isinstance(body, dict) and isinstance(body.get("code"), str) and isinstance(body.get("message"), str):
        return body["code"], True
    if isinstance(body, dict) and isinstance(body.get("error"), str):  # /oidc/*: RFC 6749 §5.2
        return body["error"], True
    return None, False


class Load:
    def __init__(self, url: str, state: LoadState, *, workers: int = 4, seed: int | None = None,
                 pause: float = 0.0):
        self.url = url
        self.state = state
        self.workers = workers
        self.pause = pause
        self.random = random.Random(seed)
        self._stop = asyncio.Event()

    # ------------------------------------------------------------------ setup

    @classmethod
    async def prepare(cls, url: str, admin_id: str, admin_secret: str) -> LoadState:
        """An SPA for the interaction flows and a role to give and take (retried while the
        stack settles: rbac learns of identity's seed in the background)."""
        async with httpx.AsyncClient(base_url=url, timeout=REQUEST_TIMEOUT, headers=ADMIN) as api:
            app = await _until_ok(lambda: api.post("/api/applications", json={
                "name": f"chaos-{secrets.token_hex(3)}", "type": "SPA",
                "oidcClientMetadata": {"redirectUris": [REDIRECT_URI], "postLogoutRedirectUris": []},
            }))
            role = await _until_ok(lambda: api.post("/api/roles", json={
                "name": f"chaos-{secrets.token_hex(3)}", "description": "given and taken by chaos",
            }))
        return LoadState(app.json()["id"], role.json()["id"], admin_id, admin_secret)

    # ------------------------------------------------------------------ running

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        self._stop.clear()
        limits = httpx.Limits(max_connections=self.workers * 4, max_keepalive_connections=self.workers * 2)
        async with httpx.AsyncClient(base_url=self.url, timeout=REQUEST_TIMEOUT, limits=limits) as client:
            await asyncio.gather(*(self._worker(client, n) for n in range(self.workers)))

    async def _worker(self, client: httpx.AsyncClient, number: int) -> None:
        mine: list[UserState] = []
        while not self._stop.is_set():
            seen = len(self.state.outcomes)
            await self._one_operation(client, mine)
            if any(not o.ok for o in self.state.outcomes[seen:]):
                await asyncio.sleep(FAILURE_PAUSE)  # as a client would, instead of spinning
            elif self.pause:
                await asyncio.sleep(self.pause)

    async def _one_operation(self, client: httpx.AsyncClient, mine: list[UserState]) -> None:
        settled = [u for u in mine if time.monotonic() - u.registered_at > 2.0]
        choice = self.random.random()
        if not mine or choice < 0.2:
            await self.register(client, mine)
        elif choice < 0.4:
            user = self.random.choice(mine)
            if user.password is not None:
                await self.sign_in(client, user)
        elif choice < 0.55:
            await self.token(client)
        elif choice < 0.7 and settled:
            await self.toggle_role(client, self.random.choice(settled))
        elif choice < 0.85:
            await self.rename(client, self.random.choice(mine))
        else:
            await self.change_password(client, self.random.choice(mine))

    # ------------------------------------------------------------------ one request

    async def _request(self, client: httpx.AsyncClient, op: str, method: str, path: str,
                       expected: tuple[int, ...], **kwargs) -> httpx.Response | None:
        cookies: httpx.Cookies | None = kwargs.pop("cookies", None)
        if cookies:  # one sign-in flow's cookies (httpx deprecates per-request cookie jars)
            kwargs["headers"] = {**kwargs.get("headers", {}),
                                 "cookie": "; ".join(f"{name}={value}" for name, value in cookies.items())}
        started = time.monotonic()
        try:
            response = await client.request(method, path, **kwargs)
        except httpx.HTTPError as error:
            self.state.outcomes.append(Outcome(op, started, time.monotonic(), None, False,
                                               error=f"{type(error).__name__}: {error}"[:200]))
            return None
        ok = response.status_code in expected
        code, logto = (None, False) if ok else _logto_error(response)
        self.state.outcomes.append(Outcome(
            op, started, time.monotonic(), response.status_code, ok, code, logto,
            error="" if ok else response.text[:200],
        ))
        return response if ok else None

    def _maybe_applied(self) -> bool:
        """Whether the write that just failed may still have happened. Only a connection the
        gateway refused says it did not. A 503 may hide one: the gateway answers 503 too when
        the service died with the request in flight, which may be just after its commit (a
        password change made so, believed undone, failed the sign-ins after it as 422); and a
        502, a timeout or a reset may hide one."""
        last = self.state.outcomes[-1]
        return not (last.status is None and last.error.startswith("ConnectError"))

    # ------------------------------------------------------------------ operations

    async def register(self, client: httpx.AsyncClient, mine: list[UserState]) -> None:
        username = f"chaos_{secrets.token_hex(5)}"
        password = _password()
        cookies = httpx.Cookies()
        if not await self._authorize(client, cookies, "register", interaction_mode="signUp"):
            return
        put = await self._request(client, "register", "PUT", "/api/interaction", (204,), cookies=cookies,
                                  json={"event": "Register", "profile": {"username": username, "password": password}})
        if put is None:
            return
        submitted = await self._request(client, "register", "POST", "/api/interaction/submit", (200,),
                                        cookies=cookies)
        if submitted is None:
            if self._maybe_applied():
                self.state.maybe_registered.append(username)
            return
        self.state.registered.append(username)
        found = await self._request(client, "register", "GET", "/api/users", (200,), headers=ADMIN,
                                    params={"search.username": username, "mode.username": "exact"})
        if found is None or not found.json():
            return  # registered (checked by name), but this worker cannot use it
        user = UserState(found.json()[0]["id"], username, password, {password},
                         registered_at=time.monotonic())
        self.state.users.append(user)
        mine.append(user)

    async def sign_in(self, client: httpx.AsyncClient, user: UserState) -> None:
        cookies = httpx.Cookies()
        if not await self._authorize(client, cookies, "sign-in"):
            return
        put = await self._request(client, "sign-in", "PUT", "/api/interaction", (204,), cookies=cookies,
                                  json={"event": "SignIn",
                                        "identifier": {"username": user.username, "password": user.password}})
        if put is None:
            return
        await self._request(client, "sign-in", "POST", "/api/interaction/submit", (200,), cookies=cookies)

    async def _authorize(self, client: httpx.AsyncClient, cookies: httpx.Cookies, op: str, **extra: str) -> bool:
        verifier = secrets.token_urlsafe(48)
        challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
        query = {"client_id": self.state.application_id, "redirect_uri": REDIRECT_URI, "response_type": "code",
                 "scope": "openid profile", "state": "chaos", "code_challenge": challenge,
                 "code_challenge_method": "S256", **extra}
        response = await self._request(client, op, "GET", "/oidc/auth?" + urlencode(query), (303,))
        if response is None:
            return False
        for name, value in response.cookies.items():
            cookies.set(name, value)
        return True

    async def token(self, client: httpx.AsyncClient) -> None:
        await self._request(client, "token", "POST", "/oidc/token", (200,),
                            auth=(self.state.admin_id, self.state.admin_secret),
                            data={"grant_type": "client_credentials", "resource": MANAGEMENT_API, "scope": "all"})

    async def toggle_role(self, client: httpx.AsyncClient, user: UserState) -> None:
        role_id = self.state.role_id
        if user.role is None:  # uncertain: PUT sets it either way
            want = self.random.random() < 0.5
            response = await self._request(client, "role", "PUT", f"/api/users/{user.id}/roles", (200,),
                                           headers=ADMIN, json={"roleIds": [role_id] if want else []})
            if response is not None:
                user.role = want
        elif user.role:
            response = await self._request(client, "role", "DELETE", f"/api/users/{user.id}/roles/{role_id}",
                                           (204,), headers=ADMIN)
            if response is not None or self._maybe_applied():
                user.role = False if response is not None else None
        else:
            response = await self._request(client, "role", "POST", f"/api/users/{user.id}/roles", (201,),
                                           headers=ADMIN, json={"roleIds": [role_id]})
            if response is not None or self._maybe_applied():
                user.role = True if response is not None else None

    async def rename(self, client: httpx.AsyncClient, user: UserState) -> None:
        name = f"Chaos {secrets.token_hex(4)}"
        response = await self._request(client, "update", "PATCH", f"/api/users/{user.id}", (200,),
                                       headers=ADMIN, json={"name": name})
        if response is not None:
            user.name, user.name_candidates = name, set()
        elif self._maybe_applied():
            user.name_candidates.add(name)

    async def change_password(self, client: httpx.AsyncClient, user: UserState) -> None:
        password = _password()
        response = await self._request(client, "password", "PATCH", f"/api/users/{user.id}/password", (200,),
                                       headers=ADMIN, json={"password": password})
        if response is not None:
            user.retired |= user.candidates - {password}
            user.password, user.candidates = password, {password}
        elif self._maybe_applied():
            user.password = None
            user.candidates.add(password)


def _password() -> str:
    return f"Chaos-{secrets.token_hex(6)}"


async def _until_ok(send, tries: int = 200) -> httpx.Response:
    response = None
    for _ in range(tries):
        try:
            response = await send()
        except httpx.HTTPError:
            response = None
        if response is not None and response.status_code in (200, 201):
            return response
        await asyncio.sleep(0.2)
    raise RuntimeError(f"setup request kept failing: {response and response.status_code} {response and response.text[:200]}")

"""Test support for the OpenID Provider (used by identity's tests and the e2e tests).

- `FakeRbac`: answers rbac's FIXED rpc contracts (contracts/rbac.py) from memory, so identity's
  in-process tests exercise the provider against the contract without the rbac service.
- `complete_interaction`: what the sign-in experience will do over rpc until it exists —
  finish the login for a user, grant consent, follow the redirects — driven by the same
  `_interaction` cookie a browser holds.
- SQL helpers that insert users and applications directly (the users/applications contexts
  are built separately).
"""

from __future__ import annotations

import itertools
import os
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
import asyncio
from typing import Any, AsyncIterator
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import msgspec

from tessera_events.contracts.oidc import FINISH_LOGIN, GRANT_CONSENT, FinishLogin, GrantConsent
from tessera_events.contracts.rbac import (
    APPLICATION_SCOPES,
    DEFAULT_RESOURCE,
    IS_APPLICATION_ADMIN,
    MANAGEMENT_API_INDICATOR,
    MANAGEMENT_API_SCOPE,
    RESOURCE_BY_INDICATOR,
    SET_APPLICATION_ADMIN,
    USER_SCOPES,
    AllowedScopes,
    ApplicationAdminState,
    ResourceInfo,
)
from tessera_events import STREAMS
from tessera_kit import rpc
from tessera_kit.testing import INTERNAL_KEY, service_transport
from tessera_kit.app import ServiceSpec, create_app, start_context, stop_context
from tessera_kit.bus import Bus
from tessera_kit.config import ServiceSettings
from tessera_kit.ids import new_id, new_user_id

ENDPOINT = "http://id.test"
ISSUER = ENDPOINT + "/oidc"
ADMIN_ID = "adminclient0000000000"
ADMIN_SECRET = "admin-secret-for-the-oidc-tests-0000"
OIDC_ENV = {
    "TESSERA_KEY_ENCRYPTION_KEY": "test-key-encryption-key-" + "k" * 24,
    "TESSERA_ADMIN_CLIENT_ID": ADMIN_ID,
    "TESSERA_ADMIN_CLIENT_SECRET": ADMIN_SECRET,
}
MIGRATIONS = Path(__file__).parent.parent / "migrations"
_count = itertools.count()



@contextmanager
def environment(values: dict[str, str]):
    """os.environ with these values for the block, as it was after it (settings are read
    from the environment when a service's spec and context are built)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

@dataclass
class FakeRbac:
    """Resources, and the scopes users and applications hold on them through roles."""

    resources: dict[str, ResourceInfo] = field(default_factory=dict)
    user_scopes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    application_scopes: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    admins: set[str] = field(default_factory=set)
    calls: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.add_resource(MANAGEMENT_API_INDICATOR, ttl=3600, id="management-api", name="Logto Management API")

    def add_resource(self, indicator: str, *, ttl: int = 3600, default: bool = False, id: str | None = None,
                     name: str = "API") -> ResourceInfo:
        info = ResourceInfo(id=id or new_id(), name=name, indicator=indicator, access_token_ttl=ttl,
                            is_default=default)
        self.resources[indicator] = info
        return info

    def set_default(self, indicator: str | None) -> None:
        for key, info in list(self.resources.items()):
            self.resources[key] = msgspec.structs.replace(info, is_default=key == indicator)

    async def set_default_announced(self, bus: Bus, provider: Any, indicator: str | None) -> None:
        """set_default, announced as rbac announces a resource change (identity forgets what
        it reused of rbac's answers), once `provider` has heard it."""
        self.set_default(indicator)
        generation = provider._rbac_generation
        await bus.nc.publish(bus.subject("rbac.resource.updated"), b"{}")
        await bus.nc.flush()
        for _ in range(500):
            if provider._rbac_generation != generation:
                return
            await asyncio.sleep(0.01)
        raise AssertionError("identity did not hear rbac's event")

    async def serve(self, bus: Bus) -> list:
        async def by_indicator(request):
            self.calls.append("resource_by_indicator")
            return self.resources.get(request.indicator)

        async def default(request):
            self.calls.append("default_resource")
            return next((r for r in self.resources.values() if r.is_default), None)

        async def for_user(request):
            self.calls.append("user_scopes")
            return AllowedScopes(resource=self.resources.get(request.indicator),
                                 scopes=self.user_scopes.get((request.user_id, request.indicator), []))

        async def for_application(request):
            self.calls.append("application_scopes")
            scopes = list(self.application_scopes.get((request.application_id, request.indicator), []))
            if request.application_id in self.admins and request.indicator == MANAGEMENT_API_INDICATOR:
                scopes.append(MANAGEMENT_API_SCOPE)
            return AllowedScopes(resource=self.resources.get(request.indicator), scopes=scopes)

        async def set_admin(request):
            (self.admins.add if request.is_admin else self.admins.discard)(request.application_id)
            return ApplicationAdminState(application_id=request.application_id, is_admin=request.is_admin)

        async def is_admin(request):
            return ApplicationAdminState(application_id=request.application_id,
                                         is_admin=request.application_id in self.admins)

        subscriptions = []
        for operation, handler in [
            (RESOURCE_BY_INDICATOR, by_indicator), (DEFAULT_RESOURCE, default), (USER_SCOPES, for_user),
            (APPLICATION_SCOPES, for_application), (SET_APPLICATION_ADMIN, set_admin),
            (IS_APPLICATION_ADMIN, is_admin),
        ]:
            subscriptions.append(await rpc.serve(bus, rpc.RpcHandler(operation, handler)))
        return subscriptions


# ------------------------------------------------------------------ rows


async def insert_user(conn, *, tenant_id: str = "default", username: str | None = None, **fields: Any) -> str:
    user_id = fields.pop("id", None) or new_user_id()
    columns = {"tenant_id": tenant_id, "id": user_id, "username": username or f"user_{user_id}", **fields}
    names = ", ".join(columns)
    placeholders = ", ".join(f"${i}" for i in range(1, len(columns) + 1))
    await conn.execute(f"INSERT INTO users ({names}) VALUES ({placeholders})", *columns.values())
    return user_id


async def insert_application(conn, *, type: str, redirect_uris: list[str] = (), post_logout_redirect_uris: list[str] = (),
                             custom: dict[str, Any] | None = None, tenant_id: str = "default",
                             id: str | None = None, secret: str | None = None, name: str = "app") -> dict[str, str]:
    app_id = id or new_id()
    secret = secret or new_id(32)
    await conn.execute(
        "INSERT INTO applications (tenant_id, id, name, secret, type, oidc_client_metadata, custom_client_metadata)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7)",
        tenant_id, app_id, name, secret, type,
        {"redirectUris": list(redirect_uris), "postLogoutRedirectUris": list(post_logout_redirect_uris)},
        custom or {},
    )
    return {"id": app_id, "secret": secret}


# ------------------------------------------------------------------ the browser's side


def query_of(location: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}


def interaction_cookies(browser: httpx.AsyncClient, *, tenant_id: str) -> dict[str, str]:
    """The `_interaction` pair a browser holds, and its tenant, as the rpc operations take them."""
    return {"interaction_cookie": browser.cookies.get("_interaction") or "",
            "interaction_signature": browser.cookies.get("_interaction.sig") or "", "tenant_id": tenant_id}


async def complete_interaction(browser: httpx.AsyncClient, bus: Bus, authorization_url: str, user_id: str,
                               *, tenant_id: str, consent: bool = True) -> httpx.Response:
    """Follow an authorization request as a browser whose user signs in (rpc stands in for the
    sign-in pages): returns the final redirect to the client (303 with `code`, or an error)."""
    response = await browser.get(authorization_url)
    steps = 0
    while response.status_code == 303 and steps < 6:
        steps += 1
        location = response.headers["location"]
        path = urlsplit(location).path
        if path in ("/sign-in", "/register"):
            reply = await rpc.call(bus, FINISH_LOGIN, FinishLogin(**interaction_cookies(browser, tenant_id=tenant_id), account_id=user_id,
                                                                  amr=["pwd"]))
            response = await browser.get(reply.redirect_to)
        elif path == "/sign-in/consent" and consent:
            reply = await rpc.call(bus, GRANT_CONSENT, GrantConsent(**interaction_cookies(browser, tenant_id=tenant_id)))
            response = await browser.get(reply.redirect_to)
        elif "/oidc/auth" in path:
            response = await browser.get(urljoin(str(response.url), location))
        else:
            return response
    return response


# ------------------------------------------------------------------ an identity in this loop


class Deployment:
    """The OIDC context of identity in the test's event loop (its own schema and namespace),
    with a FakeRbac on the same namespace."""

    def __init__(self, app, ctx, rbac: FakeRbac):
        self.app, self.ctx, self.rbac = app, ctx, rbac
        self.provider = ctx.extras["oidc"][ctx.settings.tenant_id]

    def browser(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=service_transport(self.app), base_url=ENDPOINT)

    def rp(self, client_id: str, secret: str | None = None, method: str = "none", **kwargs):
        """A relying party: Authlib's OAuth 2.0 client over this app."""
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from authlib.integrations.httpx_client import AsyncOAuth2Client

        return AsyncOAuth2Client(client_id=client_id, client_secret=secret, token_endpoint_auth_method=method,
                                 revocation_endpoint_auth_method=method,
                                 transport=service_transport(self.app), **kwargs)

    async def user(self, **fields) -> str:
        async with self.ctx.pool.acquire() as conn:
            return await insert_user(conn, **fields)

    async def application(self, type: str, **kwargs) -> dict[str, str]:
        async with self.ctx.pool.acquire() as conn:
            return await insert_application(conn, type=type, **kwargs)

    async def event_data(self, type_: str) -> list[dict]:
        rows = await self.ctx.pool.fetch("SELECT envelope FROM outbox WHERE subject = $1 ORDER BY seq", type_)
        return [msgspec.json.decode(r["envelope"])["data"] for r in rows]


@asynccontextmanager
async def start_deployment(database_url: str, nats_url: str, namespace: str,
                           env: dict[str, str] | None = None, *, whole_service: bool = False,
                           replica_of: Deployment | None = None) -> AsyncIterator[Deployment]:
    """The OIDC context alone, or with `whole_service` all of identity (users, applications).
    `replica_of`: another instance on that deployment's schema and namespace."""
    from tessera_identity.main import build_spec
    from tessera_identity.oidc import wiring

    ns = replica_of.ctx.settings.namespace if replica_of else f"{namespace}o{next(_count)}"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns, endpoint=ENDPOINT,
                               internal_key=INTERNAL_KEY)
    if whole_service:
        spec = build_spec(settings, name=f"identity_{ns}")
    else:
        spec = ServiceSpec(
            name=f"identity_{ns}", route_handlers=wiring.ROUTES, migrations=MIGRATIONS,
            publishes=STREAMS["identity"], rpc_handlers=wiring.RPC_HANDLERS, on_startup=wiring.ON_STARTUP,
            on_shutdown=wiring.ON_SHUTDOWN, settings=settings,
        )
    variables = {**OIDC_ENV, **(env or {})}
    with environment(variables):
        app = create_app(spec)
        ctx = await start_context(spec)
    app.state.ctx = ctx
    rbac = FakeRbac()
    subscriptions = await rbac.serve(ctx.bus)
    try:
        yield Deployment(app, ctx, rbac)
    finally:
        for subscription in subscriptions:
            await subscription.unsubscribe()
        await stop_context(spec, ctx)

"""The OpenID Provider of one identity process: configuration, keys, clients, and the
questions it asks rbac. Built at start-up (wiring.ON_STARTUP), one per tenant, kept in
`ctx.extras["oidc"]` (tenant id -> provider)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import asyncpg
import msgspec
from litestar import Request

from tessera_events import EventData, decode_envelope
from tessera_events.contracts.rbac import (
    APPLICATION_SCOPES,
    DEFAULT_RESOURCE,
    RESOURCE_BY_INDICATOR,
    USER_SCOPES,
    AllowedScopes,
    ApplicationScopesRequest,
    ResourceByIndicator,
    ResourceInfo,
    TenantRef,
    UserScopesRequest,
)
from tessera_identity.oidc import store
from tessera_identity.oidc.clients import ClientCache
from tessera_identity.oidc.crypto import CookieSigner
from tessera_identity.oidc.keys import SIGNING_KEYS_LABEL
from tessera_kit.crypto import AtRestEncryption, derive
from tessera_kit.periodic import Periodic
from tessera_identity.oidc.discovery import discovery_document
from tessera_identity.oidc.errors import OAuthError
from tessera_identity.oidc.keys import KeyRing
from tessera_identity.oidc.settings import OidcSettings
from tessera_kit.app import ServiceContext
from tessera_kit.config import ADMIN_TENANT
from tessera_kit.errors import RequestError
from tessera_kit.logging import get_logger
from tessera_kit.outbox import GroupCommitEmitter
from tessera_kit.context import current_tenant
from tessera_kit.tasks import SharedCalls, cancel_all_and_wait

log = get_logger(__name__)

EXTRAS_KEY = "oidc"
PURGE_EVERY_SECONDS = 600.0


def temporarily_unavailable(service: str) -> OAuthError:
    return OAuthError("temporarily_unavailable", f"{service} is not answering; try again", status=503)


class Provider:
    """The OpenID Provider of one tenant: its issuer (`<tenant endpoint>/oidc`), signing keys,
    cookie key and clients. An identity process runs one per tenant it serves."""

    def __init__(self, ctx: ServiceContext, settings: OidcSettings, tenant_id: str | None = None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.pool = ctx.pool
        self.outbox = ctx.outbox
        self.tenant_id = tenant_id or ctx.settings.tenant_id
        self.endpoint = ctx.settings.endpoint_of(self.tenant_id)
        self.issuer = self.endpoint + "/oidc"
        self.secure_cookies = self.endpoint.startswith("https:")
        kek = settings.effective_key_encryption_key()
        settings.check_cookie_secret()
        settings.check_admin_client()
        self.keys = KeyRing(
            self.tenant_id, AtRestEncryption(kek, SIGNING_KEYS_LABEL), alg=settings.oidc_signing_alg,
            propagation_seconds=settings.oidc_key_propagation_seconds,
            retired_seconds=settings.oidc_retired_key_seconds,
        )
        self.refresh_successor_key = derive(kek, "tessera oidc refresh token successors")
        # Each tenant its own cookie key: a session or interaction cookie of one tenant is
        # nothing to another (the default tenant keeps the label it always had).
        label = "tessera oidc cookies" if self.tenant_id == ctx.settings.tenant_id \
            else f"tessera oidc cookies for tenant {self.tenant_id}"
        self.cookies = CookieSigner(derive(settings.cookie_secret or kek, label))
        self.clients = ClientCache(self.pool, self.tenant_id, self.endpoint, settings.oidc_client_cache_seconds,
                                   demo_app=self.tenant_id != ADMIN_TENANT)
        # One provider per process purges the expired rows of every tenant.
        self.purges = self.tenant_id == ctx.settings.tenant_id
        self.discovery_json = b"{}"
        self.grouped_events = GroupCommitEmitter(self.pool, self.outbox)
        self._subscription = None
        self._rbac_subscription = None
        # (application id, indicator) -> (AllowedScopes, monotonic time): see application_scopes.
        self._application_scopes: dict[tuple[str, str], tuple[AllowedScopes, float]] = {}
        self._scopes_asked: SharedCalls[tuple[str, str], AllowedScopes] = SharedCalls()  # questions under way
        # The tenant's default resource and when rbac answered it (see default_resource).
        self._default_resource: tuple[ResourceInfo | None, float] | None = None
        # One more at each rbac event (or reconnect): an answer asked before one is not kept.
        self._rbac_generation = 0
        self._purge: Periodic | None = None
        self._tasks: list[asyncio.Task] = []  # one-off background work (background())

    # ------------------------------------------------------------ lifecycle

    async def start(self, keys_conn: asyncpg.Connection) -> None:
        """Serve from now on; `keys_conn` finds or makes the tenant's signing key (a brief
        connection shared by every tenant's start, see wiring; so is their timed refresh)."""
        await self.keys.ensure(keys_conn)
        # Every algorithm a published key signs with (a staged key of a new algorithm included).
        algs = sorted({self.keys.signing_alg, self.settings.oidc_signing_alg, *self.keys.published_algs.values()})
        self.discovery_json = msgspec.json.encode(discovery_document(self.issuer, algs))
        bus = self.ctx.bus
        self._subscription = await bus.nc.subscribe(
            bus.subject("identity.application.>"), cb=self._on_application_event
        )
        # Any change in rbac (roles, scopes, links, resources) may change what an application
        # holds: forget every cached answer as soon as rbac announces it.
        self._rbac_subscription = await bus.nc.subscribe(bus.subject("rbac.>"), cb=self._on_rbac_event)
        # Events published while the connection was down never reach these subscriptions: after
        # a reconnect nothing cached can be trusted (without this, only the TTLs would end it).
        bus.reconnect_listeners.append(self._forget_cached)
        if self.purges:
            self._purge = self.ctx.upkeep("oidc-purge", PURGE_EVERY_SECONDS, store.purge_expired, at_start=False)
            self._purge.start()

    def background(self, work, name: str) -> None:
        """Run `work` (a coroutine) beside the provider; stop() cancels it."""
        self._tasks.append(asyncio.create_task(work, name=name))

    async def stop(self) -> None:
        if self._purge is not None:
            await self._purge.stop()
        await cancel_all_and_wait(self._tasks)
        if self._forget_cached in self.ctx.bus.reconnect_listeners:
            self.ctx.bus.reconnect_listeners.remove(self._forget_cached)
        for subscription in (self._subscription, self._rbac_subscription):
            if subscription is not None:
                try:
                    await subscription.unsubscribe()
                except Exception:
                    pass

    async def _on_application_event(self, msg: Any) -> None:
        try:
            data = msgspec.json.decode(decode_envelope(msg.data).data)
            app_id = data.get("application_id") or (data.get("application") or {}).get("id")
        except Exception:
            app_id = None
        self.clients.evict(app_id)

    def _forget_cached(self) -> None:
        self.clients.evict()
        self.forget_application_scopes()

    async def _on_rbac_event(self, msg: Any) -> None:
        self.forget_application_scopes()

    def forget_application_scopes(self) -> None:
        """Every cached answer of rbac, and the questions under way (their answers may predate
        the change)."""
        self._rbac_generation += 1
        self._application_scopes.clear()
        self._scopes_asked.forget()
        self._default_resource = None

    # ------------------------------------------------------------ events

    async def emit(self, conn, data: EventData, *, aggregate_id: str | None = None) -> None:
        await self.outbox.emit(conn, data, aggregate_id=aggregate_id, tenant_id=self.tenant_id)

    async def emit_alone(self, data: EventData, *, aggregate_id: str | None = None) -> None:
        """An event with no state change beside it (e.g. a stateless JWT was issued)."""
        async with self.pool.acquire() as conn, conn.transaction():
            await self.emit(conn, data, aggregate_id=aggregate_id)

    async def emit_grouped(self, data: EventData, *, aggregate_id: str | None = None) -> None:
        """An event with no state change beside it (a stateless JWT was issued), committed
        together with concurrent requests' events before the answer goes out."""
        await self.grouped_events.emit(data, aggregate_id=aggregate_id, tenant_id=self.tenant_id)

    # ------------------------------------------------------------ rbac (one call per token)

    async def _rbac(self, operation, request):
        try:
            return await self.ctx.call(operation, request)
        except RequestError as exc:
            if exc.status == 503:
                raise temporarily_unavailable("rbac") from exc
            raise

    async def resource_by_indicator(self, indicator: str) -> ResourceInfo | None:
        return await self._rbac(RESOURCE_BY_INDICATOR, ResourceByIndicator(indicator=indicator, tenant_id=self.tenant_id))

    async def default_resource(self) -> ResourceInfo | None:
        """The resource a token without one is for. Asked once per user token and per token
        without a resource, and changed about never: the answer is reused as application_scopes'
        are (for `oidc_application_scopes_cache_seconds`, forgotten when rbac publishes any event,
        not kept when one arrived while it was asked), so a new default applies within the
        event's delivery time."""
        ttl = self.settings.oidc_application_scopes_cache_seconds
        cached = self._default_resource
        if ttl > 0 and cached is not None and time.monotonic() - cached[1] < ttl:
            return cached[0]
        generation = self._rbac_generation
        answer = await self._rbac(DEFAULT_RESOURCE, TenantRef(tenant_id=self.tenant_id))
        if ttl > 0 and generation == self._rbac_generation:
            self._default_resource = (answer, time.monotonic())
        return answer

    async def user_scopes(self, user_id: str, indicator: str) -> AllowedScopes:
        return await self._rbac(USER_SCOPES, UserScopesRequest(user_id=user_id, indicator=indicator, tenant_id=self.tenant_id))

    async def application_scopes(self, application_id: str, indicator: str, *,
                                 requested: list[str] | None = None) -> AllowedScopes:
        """What an application holds on a resource. Client-credentials tokens are the hot path
        (machines ask for tokens far more often than roles change): the answer is reused for
        `oidc_application_scopes_cache_seconds`, and forgotten at once when rbac publishes any
        event, so a role change is seen within the event's delivery time (the TTL bounds it if
        an event is missed). A cached answer lacking a `requested` scope is not trusted (the
        role may have just been granted): rbac is asked again. So the cache can only be late
        in taking a scope away — as a JWT already issued is for its whole lifetime — never in
        granting one. 0 disables the cache: one rbac call per token.

        Concurrent requests that miss share one question (an answer expiring under load is one
        rbac call, not one per token in flight). An answer to a question asked before an rbac
        event is neither kept nor handed to requests that came after the event."""
        ttl = self.settings.oidc_application_scopes_cache_seconds
        key = (application_id, indicator)
        if ttl <= 0:
            return await self._ask_application_scopes(key, None)
        cached = self._application_scopes.get(key)
        if cached is not None and time.monotonic() - cached[1] < ttl:
            if requested is None or set(requested) <= set(cached[0].scopes):
                return cached[0]
        return await self._scopes_asked.call(key, lambda: self._ask_application_scopes(key, self._rbac_generation))

    async def _ask_application_scopes(self, key: tuple[str, str], generation: int | None) -> AllowedScopes:
        application_id, indicator = key
        answer = await self._rbac(
            APPLICATION_SCOPES,
            ApplicationScopesRequest(application_id=application_id, indicator=indicator, tenant_id=self.tenant_id),
        )
        if generation == self._rbac_generation and answer.resource is not None:  # no rbac event since
            if len(self._application_scopes) > 10_000:
                self._application_scopes.clear()
            self._application_scopes[key] = (answer, time.monotonic())
        return answer

    # ------------------------------------------------------------ cookies

    def cookie_value(self, request: Request, name: str) -> str | None:
        """A signed cookie's value (`<name>` checked against `<name>.sig`), or None."""
        return self.cookies.verify(name, request.cookies.get(name), request.cookies.get(f"{name}.sig"))


def providers(ctx: ServiceContext) -> dict[str, Provider]:
    """Every tenant's provider (empty until start-up has built them)."""
    return ctx.extras.get(EXTRAS_KEY) or {}


def provider_for(ctx: ServiceContext, tenant_id: str | None = None) -> Provider:
    """The provider of `tenant_id`, by default the tenant of the request (or rpc) at hand."""
    return ctx.extras[EXTRAS_KEY][tenant_id or current_tenant()]


def provider_of(request: Request) -> Provider:
    return provider_for(request.app.state.ctx)

"""OIDC clients from the `applications` table (logto-behaviour.md §5.3), cached in memory.

| type             | application_type | grant types                          | token endpoint auth          |
| Native           | native           | authorization_code, refresh_token    | none (PKCE required)         |
| SPA              | web              | authorization_code, refresh_token    | none (PKCE required)         |
| Traditional      | web              | authorization_code, refresh_token    | client_secret_basic (or _post) |
| MachineToMachine | web              | client_credentials                   | client_secret_basic (or _post) |

Lookups are cached for `oidc_client_cache_seconds`; any `identity.application.*` event (seen on
the bus, from whichever replica changed the row) empties the cache sooner. Callers that find a
cached client wrong (secret or redirect URI mismatch) reread it once before refusing, so a
rotated secret or a new redirect URI works at once; a client is reread so at most once per
REREAD_SECONDS, so a flood of refused requests costs few reads.

Concurrent misses of one client share one read (a cache entry expiring under load is one query,
not one per request in flight). A read that was under way when its client was evicted is not
kept, nor handed to requests that came after the eviction: what the event took away cannot come
back from a read that started before it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import asyncpg

from tessera_identity.oidc import store
from tessera_kit.tasks import SharedCalls

# A client refusing requests is read again at most this often (read_again_before_refusing).
REREAD_SECONDS = 0.05

DEMO_APP_ID = "demo-app"
DEFAULT_ID_TOKEN_TTL = 3600
DEFAULT_REFRESH_TOKEN_TTL = 14 * 86400
PUBLIC_TYPES = frozenset({"Native", "SPA"})


def origin_of(url: str) -> str | None:
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True)
class Client:
    id: str
    name: str
    secret: str
    type: str
    redirect_uris: tuple[str, ...] = ()
    post_logout_redirect_uris: tuple[str, ...] = ()
    cors_allowed_origins: frozenset[str] = frozenset()
    id_token_ttl: int = DEFAULT_ID_TOKEN_TTL
    refresh_token_ttl: int = DEFAULT_REFRESH_TOKEN_TTL
    always_issue_refresh_token: bool = False
    rotate_refresh_token: bool = True
    loaded_at: float = field(default_factory=time.monotonic, compare=False)

    @property
    def is_public(self) -> bool:
        return self.type in PUBLIC_TYPES

    @property
    def auth_method(self) -> str:
        return "none" if self.is_public else "client_secret_basic"

    @property
    def requires_pkce(self) -> bool:
        # Logto §5.3: PKCE for every client whose auth method is not client_secret_basic.
        return self.auth_method != "client_secret_basic"

    @property
    def application_type(self) -> str:
        return "native" if self.type == "Native" else "web"

    @property
    def grant_types(self) -> tuple[str, ...]:
        if self.type == "MachineToMachine":
            return ("client_credentials",)
        return ("authorization_code", "refresh_token")

    @property
    def response_types(self) -> tuple[str, ...]:
        return () if self.type == "MachineToMachine" else ("code",)

    def allows_origin(self, origin: str) -> bool:
        return origin.lower() in self.cors_allowed_origins


def _positive_int(value: Any, default: int) -> int:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 else default


def client_from_row(row: asyncpg.Record | dict[str, Any]) -> Client:
    oidc = row["oidc_client_metadata"] or {}
    custom = row["custom_client_metadata"] or {}
    redirect_uris = tuple(u for u in oidc.get("redirectUris") or () if isinstance(u, str))
    cors = {o for o in (origin_of(u) for u in redirect_uris) if o}
    cors |= {o for o in (origin_of(u) for u in custom.get("corsAllowedOrigins") or () if isinstance(u, str)) if o}
    refresh_ttl = _positive_int(custom.get("refreshTokenTtl"), DEFAULT_REFRESH_TOKEN_TTL)
    if custom.get("refreshTokenTtlInDays"):  # Logto 1.6's name for the same setting
        refresh_ttl = _positive_int(custom.get("refreshTokenTtlInDays"), 14) * 86400
    return Client(
        id=row["id"],
        name=row["name"],
        secret=row["secret"],
        type=row["type"],
        redirect_uris=redirect_uris,
        post_logout_redirect_uris=tuple(
            u for u in oidc.get("postLogoutRedirectUris") or () if isinstance(u, str)
        ),
        cors_allowed_origins=frozenset(cors),
        id_token_ttl=_positive_int(custom.get("idTokenTtl"), DEFAULT_ID_TOKEN_TTL),
        refresh_token_ttl=refresh_ttl,
        always_issue_refresh_token=custom.get("alwaysIssueRefreshToken") is True,
        rotate_refresh_token=custom.get("rotateRefreshToken") is not False,
    )


def _demo_app(endpoint: str) -> Client:
    """Logto's synthetic `demo-app` ("Live Preview"), never stored (§5.3)."""
    uri = endpoint.rstrip("/") + "/demo-app"
    return client_from_row({
        "id": DEMO_APP_ID, "name": "Live Preview", "secret": "", "type": "SPA",
        "oidc_client_metadata": {"redirectUris": [uri], "postLogoutRedirectUris": [uri]},
        "custom_client_metadata": {},
    })


class ClientCache:
    def __init__(self, pool: asyncpg.Pool, tenant_id: str, endpoint: str, ttl: float, *,
                 demo_app: bool = True) -> None:
        self.pool = pool
        self.tenant_id = tenant_id
        self.ttl = ttl
        # Logto's user tenants have the demo app; the admin tenant has not.
        self._demo = _demo_app(endpoint) if demo_app else None
        self._cache: dict[str, Client] = {}
        self._reading: SharedCalls[str, Client | None] = SharedCalls()  # by client id
        self._generation = 0  # one more at each eviction
        self._read_again_at: dict[str, float] = {}  # by client id: read_again_before_refusing

    async def get(self, client_id: str, *, fresh: bool = False, conn: asyncpg.Connection | None = None
                  ) -> Client | None:
        """`conn`: a caller inside a transaction reads on its own connection, never waiting
        for a second one from the pool (a miss is read there, not shared with other callers).
        `fresh`: read now (not the cache, nor a read under way)."""
        if not fresh:
            cached = self._cache.get(client_id)
            if cached is not None and time.monotonic() - cached.loaded_at < self.ttl:
                return cached
        if fresh or conn is not None:
            return await self._read(client_id, conn, self._generation)
        return await self._reading.call(client_id, lambda: self._read(client_id, None, self._generation))

    async def _read(self, client_id: str, conn: asyncpg.Connection | None, generation: int) -> Client | None:
        row = await store.find_application(conn or self.pool, self.tenant_id, client_id)
        current = generation == self._generation  # no eviction since the read began
        if row is None:
            if current:
                self._cache.pop(client_id, None)
            # The demo app exists whether or not the applications context stored its row.
            return self._demo if client_id == DEMO_APP_ID else None
        client = client_from_row(row)
        if current:
            if len(self._cache) > 10_000:
                self._cache.clear()
            self._cache[client_id] = client
        return client

    async def read_again_before_refusing(self, client: Client) -> Client | None:
        """The client as the database has it now, before a request is refused on `client`: the
        copy, however young, may predate a new secret or redirect URI whose event has yet to
        arrive. Unless this client was read again for a refusal less than REREAD_SECONDS ago
        (then the cached copy, which that read refreshed): a flood of refused requests costs at
        most one read per client per REREAD_SECONDS."""
        now = time.monotonic()
        if now - self._read_again_at.get(client.id, -REREAD_SECONDS) < REREAD_SECONDS:
            return self._cache.get(client.id) or client
        if len(self._read_again_at) > 10_000:
            self._read_again_at.clear()
        self._read_again_at[client.id] = now
        return await self.get(client.id, fresh=True)

    def evict(self, client_id: str | None = None) -> None:
        """Forget a client (None: every client), and any read of it under way."""
        self._generation += 1
        if client_id is None:
            self._cache.clear()
        else:
            self._cache.pop(client_id, None)
        self._reading.forget(client_id)

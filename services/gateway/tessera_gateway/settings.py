"""The gateway's configuration, read from the environment (see `tessera_kit.config`).

Field `foo` is read from `TESSERA_FOO`, except Logto's own names (`PORT`, `ENDPOINT`,
`LOG_LEVEL`, `HOST`). An upstream whose URL is empty is "not deployed": its routes answer 503.
An upstream URL setting may list several replicas, comma-separated (see `replicas.py`).
"""

from __future__ import annotations

import msgspec

from tessera_kit.config import ADMIN_TENANT, ConfigError, env_name, load_settings, redacted_repr, tenant_endpoints
from tessera_kit.context import DEFAULT_TENANT

# Service name (as used in the route table) -> settings field holding its base URL.
UPSTREAM_URL_FIELDS = {
    "identity": "identity_url",
    "rbac": "rbac_url",
    "connectors": "connectors_url",
    "experience": "experience_url",
    "audit-log": "audit_log_url",
    "webhook-dispatcher": "webhook_dispatcher_url",
}


class GatewaySettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_name):
    port: int = 3001
    host: str = "127.0.0.1"
    # The public base URL; the OIDC issuer is `<endpoint>/oidc`.
    endpoint: str = "http://localhost:3001"
    log_level: str = "info"

    # Upstream base URLs, e.g. http://127.0.0.1:3101 (TESSERA_IDENTITY_URL, ...), or several
    # replicas' comma-separated: http://127.0.0.1:3101,http://127.0.0.1:3201.
    identity_url: str = ""
    rbac_url: str = ""
    connectors_url: str = ""
    experience_url: str = ""
    audit_log_url: str = ""
    webhook_dispatcher_url: str = ""

    # Management API tokens: signed by a key of this JWKS (default `<identity_url>/oidc/jwks`,
    # the tenant's keys), issued by `<tenant endpoint>/oidc`, for this audience (default Logto's
    # fixed indicator of the tenant's Management API, `https://<tenant>.logto.app/api`, §1.8).
    jwks_url: str = ""
    management_audience: str = ""
    # The admin tenant's Me API (`/me*`), answered on the admin endpoint only.
    me_audience: str = "https://admin.logto.app/me"
    # Seconds of clock skew tolerated on exp/nbf/iat (the gateway and identity may be on
    # different hosts; a token must not be "issued in the future" by a second of drift).
    jwt_leeway: int = 5
    # An unknown `kid` refetches the JWKS at most this often (seconds); a token forged with
    # random kids must not turn the gateway into a JWKS hammer.
    jwks_refresh_interval: float = 10.0
    # The JWKS is also refetched when older than this (seconds), so removed keys stop working.
    jwks_max_age: float = 300.0
    # Verified tokens remembered (token -> caller, until `exp`), so a repeated token costs no crypto.
    token_cache_size: int = 10_000

    # Logto's `development-user-id` header bypass (§1.8); never enable in production.
    dev_auth: bool = False

    # Upstream timeouts (seconds): a service that does not accept a connection fails fast (503);
    # one that accepted but does not answer gets the read timeout (504).
    connect_timeout: float = 2.0
    read_timeout: float = 60.0
    max_upstream_connections: int = 512
    # A replica the gateway could not connect to is tried last for this long (seconds).
    replica_down_seconds: float = 2.0

    # Behind a trusted load balancer: keep its X-Forwarded-Proto/Host and append to its
    # X-Forwarded-For. Off by default, because the gateway is normally the public edge and a
    # client must not choose the host the services put in Link headers and redirects.
    trust_forwarded: bool = False

    # How long (seconds) the merged /api/swagger.json is reused before asking the services again.
    openapi_cache_seconds: float = 10.0

    # The key every forwarded request's assertion is signed with (`tessera_kit.assertion`), the
    # services' TESSERA_INTERNAL_KEY; no default, the gateway does not start without it.
    internal_key: str = ""
    # The tenant this listener serves: the one its endpoint belongs to (`default` on ENDPOINT,
    # `admin` on ADMIN_ENDPOINT). Every assertion names it; nothing a client sends changes it.
    tenant_id: str = "default"
    # The deployment's tenants, as the services read them (`tessera_kit.config`): ENDPOINT is
    # the default tenant's, ADMIN_ENDPOINT the admin tenant's, TESSERA_TENANT_ENDPOINTS more.
    admin_endpoint: str = ""
    tenant_endpoints: str = ""

    def __repr__(self) -> str:  # the key stays out of logs and tracebacks
        return redacted_repr(self)

    @property
    def tenants(self) -> dict[str, str]:
        return tenant_endpoints(DEFAULT_TENANT, self.endpoint, self.admin_endpoint, self.tenant_endpoints)

    @property
    def tenant_endpoint(self) -> str:
        """The public base URL of the tenant this listener serves."""
        try:
            return self.tenants[self.tenant_id]
        except KeyError:
            raise ConfigError(f"TESSERA_TENANT_ID={self.tenant_id!r} has no endpoint (ENDPOINT, ADMIN_ENDPOINT,"
                              " TESSERA_TENANT_ENDPOINTS)") from None

    @property
    def issuer(self) -> str:
        return self.tenant_endpoint + "/oidc"

    @property
    def effective_management_audience(self) -> str:
        return self.management_audience or f"https://{self.tenant_id}.logto.app/api"

    @property
    def is_admin_tenant(self) -> bool:
        return self.tenant_id == ADMIN_TENANT

    @property
    def upstream_replicas(self) -> dict[str, list[str]]:
        """Configured upstreams only: service name -> its replicas' base URLs (no trailing slash)."""
        replicas = {name: [url.strip().rstrip("/") for url in getattr(self, field).split(",")]
                    for name, field in UPSTREAM_URL_FIELDS.items()}
        return {name: [url for url in urls if url] for name, urls in replicas.items() if any(urls)}

    @property
    def upstream_urls(self) -> dict[str, str]:
        """Configured upstreams only: service name -> the first replica's base URL (the gateway's
        own calls, JWKS and OpenAPI documents, go there)."""
        return {name: urls[0] for name, urls in self.upstream_replicas.items()}

    @property
    def effective_jwks_url(self) -> str:
        if self.jwks_url:
            return self.jwks_url
        identity = self.upstream_urls.get("identity", "")
        return f"{identity}/oidc/jwks" if identity else ""


def load() -> GatewaySettings:
    settings = load_settings(GatewaySettings)
    settings.tenant_endpoint  # a listener for a tenant without an endpoint does not start
    return settings

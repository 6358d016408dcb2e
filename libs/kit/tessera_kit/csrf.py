"""Cross-site request forgery: a state-changing request that rides on a browser's cookies
must come from a page of this site (OWASP CSRF cheat sheet, "verifying origin with standard
headers"; ASVS 4.0.3 V4.2.2).

`Origin` (every browser sends it on POST, PUT, PATCH and DELETE) must be this endpoint's
origin: the configured `ENDPOINT`, or the scheme and host the request arrived on (which a
cross-site page cannot choose). Without `Origin`, `Referer` must point here. With neither,
the request did not come from a page of another site: browsers send `Origin` on every
cross-origin POST, PUT, PATCH and DELETE. It is what server-side clients send (Logto's SDKs
for Node, its integration suite, curl), so it is served, unless the browser's Fetch Metadata
says it came from elsewhere (`Sec-Fetch-Site: cross-site` or `same-site`).
"""

from __future__ import annotations

from urllib.parse import urlsplit

from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from tessera_kit.context import current_tenant
from tessera_kit.errors import RequestError
from tessera_kit.http import public_origin

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of a URL, lower-cased, default ports left out."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https") or not parts.hostname:
        return None
    default = {"http": 80, "https": 443}[scheme]
    host = parts.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}" + (f":{port}" if port and port != default else "")


def allowed_origins(connection: ASGIConnection) -> set[str]:
    origins = set()
    scheme, host = public_origin(connection)  # type: ignore[arg-type]
    own = origin_of(f"{scheme}://{host}")
    if own:
        origins.add(own)
    ctx = getattr(connection.app.state, "ctx", None)
    # The endpoint of the tenant the request is for (each tenant has its own).
    tenant_endpoint = ctx.settings.tenants.get(current_tenant()) if ctx is not None else None
    endpoint = origin_of(tenant_endpoint) if tenant_endpoint else None
    if endpoint:
        origins.add(endpoint)
    return origins


def cross_site(reason: str) -> RequestError:
    return RequestError("auth.forbidden", 403, details=reason)


async def same_origin(connection: ASGIConnection, _: BaseRouteHandler) -> None:
    """A Litestar guard for routes a browser reaches with its cookies. Async although it
    awaits nothing: Litestar runs a plain function guard in a worker thread, a thread hop
    per request for a few header comparisons."""
    if connection.scope.get("method", "GET") in SAFE_METHODS:
        return
    headers = connection.headers
    origin = headers.get("origin")
    if origin is not None:
        if origin_of(origin) not in allowed_origins(connection):
            raise cross_site("cross-origin request refused")
        return
    referer = headers.get("referer")
    if referer:
        if origin_of(referer) not in allowed_origins(connection):
            raise cross_site("cross-origin request refused")
        return
    if headers.get("sec-fetch-site", "none") not in ("same-origin", "none"):
        raise cross_site("cross-site request refused")

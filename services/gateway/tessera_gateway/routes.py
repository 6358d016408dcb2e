"""The route table: which service answers which public path, and who may call it.

Patterns are matched segment by segment against the request path:
- a literal segment matches itself; `:name` matches any one non-empty segment;
- a trailing `*` means "this path or anything below it" (`/oidc*` matches `/oidc` and
  `/oidc/token`, never `/oidcx`);
- without `*` the path must match exactly (a trailing slash is tolerated, as Koa does).

When several patterns match, the most specific wins: more segments first, then more literal
segments, then an exact pattern before a `*` one. So `/api/users/:id/roles*` (rbac) beats
`/api/users*` (identity) whatever the order of the table.
"""

from __future__ import annotations

from dataclasses import dataclass

# Answered by the gateway itself, not proxied.
GATEWAY = "gateway"


@dataclass(frozen=True, slots=True)
class Route:
    pattern: str
    service: str
    # True: Management API route, needs `Authorization: Bearer <JWT>` with scope `all` (§1.8).
    management: bool
    # True: the admin tenant's Me API, needs a user's token for the Me API resource.
    me: bool = False


def managed(pattern: str, service: str) -> Route:
    return Route(pattern, service, management=True)


def public(pattern: str, service: str) -> Route:
    return Route(pattern, service, management=False)


ROUTE_TABLE: tuple[Route, ...] = (
    # The gateway's own answers.
    public("/health/live", GATEWAY),
    public("/health/ready", GATEWAY),
    public("/metrics", GATEWAY),
    public("/api/status", GATEWAY),
    public("/api/swagger.json", GATEWAY),
    public("/api/asyncapi.json", GATEWAY),
    # Management API. Role assignments live in rbac, under identity's paths.
    managed("/api/users/:id/roles*", "rbac"),
    managed("/api/applications/:id/roles*", "rbac"),
    managed("/api/users*", "identity"),
    managed("/api/applications*", "identity"),
    managed("/api/resources*", "rbac"),
    managed("/api/roles*", "rbac"),
    managed("/api/connectors*", "connectors"),
    managed("/api/connector-factories*", "connectors"),
    managed("/api/sign-in-exp*", "experience"),
    managed("/api/custom-phrases*", "experience"),
    managed("/api/configs*", "experience"),
    managed("/api/domains*", "experience"),
    managed("/api/verification-codes*", "experience"),
    managed("/api/logs*", "audit-log"),
    managed("/api/dashboard*", "audit-log"),
    managed("/api/hooks*", "webhook-dispatcher"),
    # Anonymous API: the sign-in flow relies on the OIDC interaction cookie, not on a token.
    public("/api/.well-known*", "experience"),
    public("/api/interaction*", "experience"),
    # The OIDC provider and the hosted sign-in pages.
    public("/oidc*", "identity"),
    public("/sign-in*", "experience"),
    public("/register*", "experience"),
    public("/forgot-password*", "experience"),
    public("/unknown-session*", "experience"),
    public("/consent*", "experience"),
    public("/static/experience*", "experience"),
)


# The admin tenant's own routes (its endpoint only): the signed-in console user's Me API.
ADMIN_ROUTES: tuple[Route, ...] = (
    Route("/me*", "identity", management=False, me=True),
)
# A user tenant's `/me*` is a page of the sign-in app (as every unknown page of Logto's UI).
USER_TENANT_ROUTES: tuple[Route, ...] = (
    public("/me*", "experience"),
)


def route_table_for(admin_tenant: bool) -> tuple[Route, ...]:
    return ROUTE_TABLE + (ADMIN_ROUTES if admin_tenant else USER_TENANT_ROUTES)


@dataclass(frozen=True, slots=True)
class _CompiledRoute:
    route: Route
    segments: tuple[str | None, ...]  # None = `:param`
    prefix: bool  # pattern ended in `*`

    @property
    def specificity(self) -> tuple[int, int, int]:
        literals = sum(1 for s in self.segments if s is not None)
        return (len(self.segments), literals, 0 if self.prefix else 1)

    def matches(self, path_segments: list[str]) -> bool:
        n = len(self.segments)
        if len(path_segments) < n:
            return False
        if len(path_segments) > n and not self.prefix:
            # Exact patterns tolerate one trailing slash only.
            if len(path_segments) != n + 1 or path_segments[n] != "":
                return False
        for expected, actual in zip(self.segments, path_segments):
            if expected is None:
                if not actual:
                    return False
            elif expected != actual:
                return False
        return True


def _compile(route: Route) -> _CompiledRoute:
    pattern = route.pattern
    prefix = pattern.endswith("*")
    body = pattern[:-1] if prefix else pattern
    if not body.startswith("/") or body.endswith("/"):
        raise ValueError(f"bad route pattern {pattern!r}")
    segments = tuple(None if s.startswith(":") else s for s in body[1:].split("/"))
    return _CompiledRoute(route, segments, prefix)


def _index_key(segments: tuple[str | None, ...]) -> tuple[str, ...]:
    """The leading literal segments (at most two) a pattern can be looked up by."""
    key: list[str] = []
    for segment in segments[:2]:
        if segment is None:
            break
        key.append(segment)
    return tuple(key)


class RouteTable:
    """The table compiled once at start-up; `match` costs a split and a dict lookup or two."""

    def __init__(self, routes: tuple[Route, ...] = ROUTE_TABLE):
        compiled = [_compile(route) for route in routes]
        by_key: dict[tuple[str, ...], list[_CompiledRoute]] = {}
        for entry in compiled:
            by_key.setdefault(_index_key(entry.segments), []).append(entry)
        # Each bucket also holds every less-indexed pattern that could match the same paths
        # (a two-segment bucket includes its one-segment parent's and the unindexed ones), sorted
        # most specific first, so one bucket answers a lookup.
        self._buckets: dict[tuple[str, ...], tuple[_CompiledRoute, ...]] = {}
        for key in {*by_key, ()}:
            candidates = [e for k, entries in by_key.items() if key[: len(k)] == k for e in entries]
            candidates.sort(key=lambda e: e.specificity, reverse=True)
            self._buckets[key] = tuple(candidates)

    def match(self, path: str) -> Route | None:
        segments = path.split("/")
        del segments[0]  # the empty string before the leading slash
        buckets = self._buckets
        candidates = (
            len(segments) >= 2 and buckets.get((segments[0], segments[1]))
            or buckets.get((segments[0],))
            or buckets[()]
        )
        for entry in candidates:
            if entry.matches(segments):
                return entry.route
        return None

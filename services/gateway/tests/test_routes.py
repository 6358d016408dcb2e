"""The route table: most specific pattern wins; prefixes stop at segment boundaries."""

import pytest

from tessera_gateway.routes import GATEWAY, ROUTE_TABLE, Route, RouteTable, managed, public

table = RouteTable()


@pytest.mark.parametrize(
    ("path", "service", "management"),
    [
        ("/api/users", "identity", True),
        ("/api/users/", "identity", True),
        ("/api/users/abc", "identity", True),
        ("/api/users/abc/password/verify", "identity", True),
        ("/api/users/abc/roles", "rbac", True),
        ("/api/users/abc/roles/role-1", "rbac", True),
        ("/api/users/abc/rolesx", "identity", True),
        ("/api/applications/app-1", "identity", True),
        ("/api/applications/app-1/roles", "rbac", True),
        ("/api/resources/r/scopes/s", "rbac", True),
        ("/api/roles", "rbac", True),
        ("/api/connectors/c/test", "connectors", True),
        ("/api/connector-factories", "connectors", True),
        ("/api/sign-in-exp", "experience", True),
        ("/api/custom-phrases/en", "experience", True),
        ("/api/configs/admin-console", "experience", True),
        ("/api/verification-codes/verify", "experience", True),
        ("/api/logs", "audit-log", True),
        ("/api/dashboard/users/total", "audit-log", True),
        ("/api/hooks/h/test", "webhook-dispatcher", True),
        ("/api/.well-known/sign-in-exp", "experience", False),
        ("/api/interaction", "experience", False),
        ("/api/interaction/submit", "experience", False),
        ("/oidc", "identity", False),
        ("/oidc/token", "identity", False),
        ("/oidc/.well-known/openid-configuration", "identity", False),
        ("/sign-in", "experience", False),
        ("/sign-in/consent", "experience", False),
        ("/register", "experience", False),
        ("/forgot-password/email", "experience", False),
        ("/unknown-session", "experience", False),
        ("/consent", "experience", False),
        ("/static/experience/assets/index.js", "experience", False),
        ("/api/status", GATEWAY, False),
        ("/api/swagger.json", GATEWAY, False),
        ("/api/asyncapi.json", GATEWAY, False),
        ("/health/live", GATEWAY, False),
        ("/health/ready", GATEWAY, False),
    ],
)
def test_routes(path: str, service: str, management: bool) -> None:
    route = table.match(path)
    assert route is not None, path
    assert (route.service, route.management) == (service, management)


@pytest.mark.parametrize(
    "path",
    ["/", "/api", "/api/", "/api/unknown", "/api/usersx", "/oidcx", "/api/status/extra",
     "/sign-inx", "/api/sign-in-expx", "/static", "/static/other/x.js", "/api/users//roles"],
)
def test_unknown_paths(path: str) -> None:
    route = table.match(path)
    # "/api/users//roles" has an empty id: not rbac's pattern, so identity's prefix takes it.
    if path == "/api/users//roles":
        assert route is not None and route.service == "identity"
    else:
        assert route is None, (path, route)


def test_specificity_does_not_depend_on_table_order() -> None:
    reversed_table = RouteTable(tuple(reversed(ROUTE_TABLE)))
    assert reversed_table.match("/api/users/x/roles").service == "rbac"  # type: ignore[union-attr]
    assert reversed_table.match("/api/users/x").service == "identity"  # type: ignore[union-attr]


def test_params_and_exact_patterns() -> None:
    custom = RouteTable((
        public("/a/:id", "param"),
        public("/a/fixed", "literal"),
        managed("/a*", "prefix"),
        Route("/:any/deep/:x*", "unindexed", False),
    ))
    assert custom.match("/a/fixed").service == "literal"  # type: ignore[union-attr]
    assert custom.match("/a/other").service == "param"  # type: ignore[union-attr]
    assert custom.match("/a/other/more").service == "prefix"  # type: ignore[union-attr]
    assert custom.match("/zz/deep/1/2").service == "unindexed"  # type: ignore[union-attr]
    assert custom.match("/a/deep/1").service == "unindexed"  # type: ignore[union-attr]
    assert custom.match("/zz/deep") is None


def test_bad_patterns_are_refused() -> None:
    with pytest.raises(ValueError):
        RouteTable((public("api/users", "x"),))
    with pytest.raises(ValueError):
        RouteTable((public("/api/users/", "x"),))

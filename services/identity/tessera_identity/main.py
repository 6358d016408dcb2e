"""identity: wiring only. Each bounded context (users, applications, oidc) brings its
routes, rpc handlers and start-up hooks."""

from pathlib import Path

from litestar import Router

from tessera_events import STREAMS
from tessera_identity import ratelimits
from tessera_identity.applications import routes as applications
from tessera_identity.applications import rpc as applications_rpc
from tessera_identity.applications.seed import seed_demo_app
from tessera_identity.openapi_bodies import REQUEST_BODIES
from tessera_identity.oidc import wiring as oidc
from tessera_identity.oidc.openapi import OIDC_OPERATIONS
from tessera_identity.users import housekeeping, me
from tessera_identity.users import routes as users
from tessera_identity.users import rpc as users_rpc
from tessera_kit.app import ServiceSpec, create_app
from tessera_kit.config import ServiceSettings

# Request bodies that fit each surface (Litestar's default would read 10 MB): OIDC's form
# posts are a few parameters and perhaps a client assertion; the Management API's users and
# applications carry custom data.
OIDC_BODY_MAX_BYTES = 64 * 1024
MANAGEMENT_BODY_MAX_BYTES = 1024 * 1024


def build_spec(settings: ServiceSettings | None = None, name: str = "identity") -> ServiceSpec:
    """A fresh spec per identity instance; tests build their own."""
    return ServiceSpec(
        name=name,
        route_handlers=[
            Router("/", route_handlers=[*users.handlers, *applications.handlers, *me.handlers],
                   request_max_body_size=MANAGEMENT_BODY_MAX_BYTES),
            Router("/", route_handlers=oidc.ROUTES, request_max_body_size=OIDC_BODY_MAX_BYTES),
        ],
        migrations=Path(__file__).parent / "migrations",
        publishes=STREAMS["identity"],
        rpc_handlers=[
            *users_rpc.HANDLERS,
            *applications_rpc.HANDLERS,
            *oidc.RPC_HANDLERS,
        ],
        on_startup=[ratelimits.start, seed_demo_app, housekeeping.start, *oidc.ON_STARTUP],
        on_shutdown=[housekeeping.stop, *oidc.ON_SHUTDOWN],
        settings=settings,
        documented_bodies=REQUEST_BODIES,
        documented_operations=OIDC_OPERATIONS,
        direct_routes=oidc.DIRECT_ROUTES,
    )


spec = build_spec()
app = create_app(spec)

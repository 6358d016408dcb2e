"""identity: wiring only. Each bounded context (users, applications, oidc) brings its
routes, rpc handlers and start-up hooks."""

from pathlib import Path

from tessera_events import STREAMS
from tessera_identity.applications import routes as applications
from tessera_identity.applications import rpc as applications_rpc
from tessera_identity.applications.seed import seed_demo_app
from tessera_identity.openapi_bodies import REQUEST_BODIES
from tessera_identity.oidc import wiring as oidc
from tessera_identity.users import housekeeping
from tessera_identity.users import routes as users
from tessera_identity.users import rpc as users_rpc
from tessera_kit.app import ServiceSpec, create_app
from tessera_kit.config import ServiceSettings


def build_spec(settings: ServiceSettings | None = None, name: str = "identity") -> ServiceSpec:
    """A fresh spec per identity instance; tests build their own."""
    return ServiceSpec(
        name=name,
        route_handlers=[*users.handlers, *applications.handlers, *oidc.ROUTES],
        migrations=Path(__file__).parent / "migrations",
        publishes=STREAMS["identity"],
        rpc_handlers=[
            *users_rpc.HANDLERS,
            *applications_rpc.HANDLERS,
            *oidc.RPC_HANDLERS,
        ],
        on_startup=[seed_demo_app, housekeeping.start, *oidc.ON_STARTUP],
        on_shutdown=[housekeeping.stop, *oidc.ON_SHUTDOWN],
        settings=settings,
        documented_bodies=REQUEST_BODIES,
    )


spec = build_spec()
app = create_app(spec)

"""identity: wiring only. Each bounded context (users, applications, oidc) brings its
routes, rpc handlers and start-up hooks."""

from pathlib import Path

from tessera_events import STREAMS
from tessera_identity.applications import routes as applications
from tessera_identity.oidc import wiring as oidc
from tessera_identity.users import routes as users
from tessera_kit.app import ServiceSpec, create_app

spec = ServiceSpec(
    name="identity",
    route_handlers=[*users.handlers, *applications.handlers, *oidc.ROUTES],
    migrations=Path(__file__).parent / "migrations",
    publishes=STREAMS["identity"],
    rpc_handlers=[*oidc.RPC_HANDLERS],
    on_startup=[*oidc.ON_STARTUP],
    on_shutdown=[*oidc.ON_SHUTDOWN],
)
app = create_app(spec)

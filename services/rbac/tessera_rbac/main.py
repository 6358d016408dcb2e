"""rbac: wiring only."""

from pathlib import Path

from tessera_events import STREAMS
from tessera_kit.app import ServiceSpec, create_app
from tessera_kit.config import ServiceSettings
from tessera_rbac.http import DOCUMENTED_OPERATIONS
from tessera_rbac.directory import routes as directory
from tessera_rbac.events import identity_events
from tessera_rbac.holders import routes as holders
from tessera_rbac.resources import routes as resources
from tessera_rbac.roles import routes as roles
from tessera_rbac.rpc import HANDLERS as rpc_handlers
from tessera_rbac.seed import seed


def build_spec(settings: ServiceSettings | None = None) -> ServiceSpec:
    """A fresh spec per app: tests build several in one process."""
    return ServiceSpec(
        name="rbac",
        route_handlers=[
            *resources.route_handlers, *roles.route_handlers, *holders.route_handlers, *directory.route_handlers,
        ],
        migrations=Path(__file__).parent / "migrations",
        publishes=STREAMS["rbac"],
        subscriptions=[identity_events],
        rpc_handlers=rpc_handlers,
        on_startup=[seed],
        settings=settings,
        documented_operations=DOCUMENTED_OPERATIONS,
    )


spec = build_spec()
app = create_app(spec)

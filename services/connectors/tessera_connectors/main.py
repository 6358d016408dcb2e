"""connectors: wiring only."""

from pathlib import Path

from tessera_connectors import rpc, service
from tessera_connectors.settings import ConnectorsSettings
from tessera_connectors.routes import route_handlers
from tessera_events import STREAMS
from tessera_kit.app import ServiceSpec, create_app
from tessera_kit.config import ServiceSettings


def build_spec(settings: ServiceSettings | None = None, name: str = "connectors",
               connectors_settings: ConnectorsSettings | None = None) -> ServiceSpec:
    """A fresh spec per instance; tests build their own (default: both from the environment)."""

    async def start(ctx):
        await service.start(ctx, connectors_settings)

    return ServiceSpec(
        name=name,
        route_handlers=route_handlers,
        migrations=Path(__file__).parent / "migrations",
        publishes=STREAMS["connectors"],
        rpc_handlers=rpc.HANDLERS,
        on_startup=[start],
        on_shutdown=[service.stop],
        settings=settings,
    )


spec = build_spec()
app = create_app(spec)

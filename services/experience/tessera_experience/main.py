"""experience: wiring only."""

from pathlib import Path

from litestar import Router

from tessera_events import STREAMS
from tessera_experience.config.routes import route_handlers as config_routes
from tessera_experience.connectors import connector_events
from tessera_experience.interaction.openapi import INTERACTION_OPERATIONS
from tessera_experience.interaction.purge import start_purging, stop_purging
from tessera_experience.domains.routes import route_handlers as domain_routes
from tessera_experience.interaction.routes import route_handlers as interaction_routes
from tessera_experience.pages.routes import route_handlers as page_routes
from tessera_experience.seed import seed_defaults
from tessera_experience.verification_codes import service as verification_codes
from tessera_experience.verification_codes.routes import DOCUMENTED_BODIES as code_bodies
from tessera_experience.verification_codes.routes import DOCUMENTED_OPERATIONS as code_operations
from tessera_experience.verification_codes.routes import route_handlers as code_routes
from tessera_experience.verification_codes.settings import CodeSettings
from tessera_kit.app import ServiceSpec, create_app
from tessera_kit.config import ServiceSettings

# The Management API's sign-in experience and phrases: custom CSS and a language's phrases
# fit in well under a megabyte (Litestar's default would take 10 MB).
CONFIG_BODY_MAX_BYTES = 1024 * 1024


def build_spec(settings: ServiceSettings | None = None, name: str = "experience",
               code_settings: CodeSettings | None = None) -> ServiceSpec:
    """A fresh spec per instance; tests build their own (default: settings from the environment)."""

    async def install_codes(ctx) -> None:
        verification_codes.install(ctx, code_settings)

    return ServiceSpec(
        name=name,
        route_handlers=[
            Router("/", route_handlers=[*config_routes, *domain_routes],
                   request_max_body_size=CONFIG_BODY_MAX_BYTES),
            *interaction_routes, *code_routes, *page_routes,
        ],
        migrations=Path(__file__).parent / "migrations",
        publishes=STREAMS["experience"],
        subscriptions=[connector_events],
        on_startup=[install_codes, seed_defaults, start_purging],
        on_shutdown=[stop_purging],
        settings=settings,
        documented_bodies=code_bodies,
        documented_operations={**INTERACTION_OPERATIONS, **code_operations},
    )


spec = build_spec()
app = create_app(spec)

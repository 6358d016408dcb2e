"""audit-log: wiring only."""

from pathlib import Path

from tessera_audit_log.events import every_event
from tessera_audit_log.routes import route_handlers
from tessera_kit.app import ServiceSpec, create_app

spec = ServiceSpec(
    name="audit-log",
    route_handlers=route_handlers,
    migrations=Path(__file__).parent / "migrations",
    subscriptions=[every_event],
)
app = create_app(spec)

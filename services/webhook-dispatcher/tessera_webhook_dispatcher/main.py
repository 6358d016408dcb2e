"""webhook-dispatcher: wiring only."""

from __future__ import annotations

from pathlib import Path

from tessera_events import STREAMS
from tessera_kit.app import ServiceContext, ServiceSpec, create_app
from tessera_kit.config import load_settings
from tessera_webhook_dispatcher.clock import Clock
from tessera_webhook_dispatcher.deliveries import routes as delivery_routes
from tessera_webhook_dispatcher.deliveries.scheduler import Scheduler
from tessera_webhook_dispatcher.events import subscriptions
from tessera_webhook_dispatcher.hooks import routes as hook_routes
from tessera_webhook_dispatcher.settings import DispatcherSettings


def build_spec(settings: DispatcherSettings | None = None, *, clock: Clock | None = None,
               name: str = "webhook-dispatcher") -> ServiceSpec:
    """A fresh spec per app: tests build several in one process (own schema, own clock)."""
    settings = settings or load_settings(DispatcherSettings)
    clock = clock or Clock()
    channel = f"deliveries_{name.replace('-', '_')}"

    async def start_scheduler(ctx: ServiceContext) -> None:
        ctx.extras["clock"] = clock
        ctx.extras["scheduler"] = scheduler = Scheduler(ctx.pool, ctx.outbox, ctx.relay, settings, clock, channel)
        await scheduler.start()

    async def stop_scheduler(ctx: ServiceContext) -> None:
        if "scheduler" in ctx.extras:
            await ctx.extras["scheduler"].stop()

    return ServiceSpec(
        name=name,
        route_handlers=[*hook_routes.route_handlers, *delivery_routes.route_handlers],
        migrations=Path(__file__).parent / "migrations",
        publishes=STREAMS["webhooks"],
        subscriptions=subscriptions(channel, clock),
        on_startup=[start_scheduler],
        on_shutdown=[stop_scheduler],
        settings=settings,
    )


spec = build_spec()
app = create_app(spec)

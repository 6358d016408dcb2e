"""Webhook latency: a sign-in event committed by experience → the hook's POST at a receiver.

Experience's `InteractionSignedIn` events are published directly (an outbox and relay of our
own on experience's stream, as experience's transaction would), at a fixed rate: sign-ins
without the sign-in work, so what is measured is the dispatcher's path (consume → delivery row
→ scheduler → signed POST). A local receiver (aiohttp) records when each arrives, by the
interaction id Logto's payload carries as `sessionId`. Reports p50/p99 and how many were lost.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from dataclasses import dataclass

import httpx
from aiohttp import web

from tessera_events import STREAMS
from tessera_events.experience import InteractionApplication, InteractionContext, InteractionSignedIn
from tessera_events.identity import UserSnapshot
from tessera_kit.testing import publisher

from tessera_bench.events import _percentile
from tessera_bench.scenario import BenchContext


@dataclass
class WebhookResult:
    rate: int
    published: int
    received: int
    p50_ms: float
    p99_ms: float
    max_ms: float
    consumed_p50_ms: float  # committed → delivery row (the dispatcher's consumer)
    consumed_p99_ms: float
    sent_p50_ms: float  # delivery row → received (the scheduler and sender)
    sent_p99_ms: float


class _Receiver:
    def __init__(self) -> None:
        self.arrived: dict[str, float] = {}  # sessionId → ms since the epoch

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        at = time.time() * 1000
        self.arrived.setdefault(json.loads(body).get("sessionId", ""), at)
        return web.Response(status=204)


async def measure_webhook_latency(ctx: BenchContext, client: httpx.AsyncClient, database_url: str, nats_url: str,
                                  namespace: str, *, rate: int = 500, seconds: int = 10) -> WebhookResult:
    receiver = _Receiver()
    app = web.Application()
    app.router.add_post("/hook", receiver.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # aiohttp exposes the bound port only here
    headers = await ctx.management_headers(client)
    config = {"url": f"http://127.0.0.1:{port}/hook"}
    hook = await client.post(f"{ctx.url}/api/hooks", headers=headers, json={
        "name": "bench receiver", "events": ["PostSignIn"], "config": config})
    hook.raise_for_status()
    # Steady state: the hook's test route opens the first connection to the receiver (and
    # waits for the HTTP client's import if the dispatcher has only just started). The test
    # payload reaches the receiver too, under an id none of the measured events has.
    tested = await client.post(f"{ctx.url}/api/hooks/{hook.json()['id']}/test", headers=headers,
                               json={"events": ["PostSignIn"], "config": config})
    tested.raise_for_status()
    tag = secrets.token_hex(3)
    committed: dict[str, float] = {}
    event_ids: dict[str, str] = {}  # envelope id → session
    queued: dict[str, float] = {}
    try:
        async with publisher(database_url, nats_url, namespace=namespace, stream=STREAMS["experience"],
                             schema=f"bench_webhooks_{tag}") as experience:
            user = UserSnapshot(id="bench-user", username="bench")
            application = InteractionApplication(id="bench-app", type="SPA", name="bench", description=None)
            interval, start = 1.0 / rate, time.perf_counter()
            for n in range(rate * seconds):
                delay = start + n * interval - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                session = f"bench-{tag}-{n}"
                async with experience.pool.acquire() as conn, conn.transaction():
                    envelope = await experience.outbox.emit(conn, InteractionSignedIn(
                        user_id=user.id, user=user, application=application, methods=["Password"],
                        context=InteractionContext(interaction_id=session, application_id=application.id,
                                                   ip="127.0.0.1", user_agent="tessera-bench")))
                committed[session] = time.time() * 1000
                event_ids[envelope.id] = session
            # Wait for the stragglers (bounded: a lost delivery must not hang the bench).
            for _ in range(600):
                if len(committed.keys() & receiver.arrived.keys()) >= len(committed):
                    break
                await asyncio.sleep(0.1)
            # Where the time went: the dispatcher stamps each delivery row when it consumes the
            # event, so committed → row is the consumer's share, row → received the sender's.
            rows = await experience.pool.fetch(
                "SELECT source_event_id, extract(epoch FROM created_at) * 1000 AS ms"
                " FROM webhook_dispatcher.deliveries WHERE source_event_id = ANY($1::text[])", list(event_ids))
            queued = {event_ids[r["source_event_id"]]: float(r["ms"]) for r in rows}
    finally:
        await client.delete(f"{ctx.url}/api/hooks/{hook.json()['id']}", headers=headers)
        await runner.cleanup()
    latencies = [receiver.arrived[s] - t for s, t in committed.items() if s in receiver.arrived]
    consumed = [queued[s] - t for s, t in committed.items() if s in queued]
    sent = [receiver.arrived[s] - t for s, t in queued.items() if s in receiver.arrived]
    return WebhookResult(rate, len(committed), len(latencies), _percentile(latencies, 0.5),
                         _percentile(latencies, 0.99), max(latencies, default=0),
                         _percentile(consumed, 0.5), _percentile(consumed, 0.99),
                         _percentile(sent, 0.5), _percentile(sent, 0.99))

"""Event latency: committed (outbox) -> relayed -> JetStream -> applied by a consumer.

The publisher commits one event per transaction at a fixed rate; a consumer in its
own process applies each in a transaction with its inbox row and records the time.
Reports p50/p99 of (applied - committed) and checks that none was lost.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import subprocess
import sys
import time
from dataclasses import dataclass

from tessera_events import STREAMS
from tessera_events.identity import UserUpdated, UserSnapshot
from tessera_kit.bus import Bus
from tessera_kit.db import create_pool, migrate
from tessera_kit.outbox import Outbox, OutboxRelay


@dataclass
class EventResult:
    rate: int
    published: int
    applied: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def measure_event_latency(database_url: str, nats_url: str, *, rate: int = 500, seconds: int = 10) -> EventResult:
    tag = secrets.token_hex(3)
    namespace, schema = f"bench{tag}", f"bench_events_{tag}"
    env = {**os.environ, "DATABASE_URL": database_url, "NATS_URL": nats_url,
           "TESSERA_NAMESPACE": namespace, "BENCH_SCHEMA": f"{schema}_consumer"}
    consumer = subprocess.Popen([sys.executable, "-m", "tessera_bench.event_consumer"], env=env,
                                stdout=subprocess.PIPE, text=True)
    pool = await create_pool(database_url, schema, max_size=4)
    await migrate(pool, schema, None)
    bus = await Bus.connect(nats_url, namespace=namespace)
    await bus.ensure_stream(STREAMS["identity"])
    outbox = Outbox(schema)
    relay = OutboxRelay(pool, bus, outbox)
    relay.start()
    try:
        assert consumer.stdout is not None
        await asyncio.to_thread(consumer.stdout.readline)  # "ready"
        committed: dict[str, float] = {}
        snapshot = UserSnapshot(id="bench-user")
        interval, start = 1.0 / rate, time.perf_counter()
        for n in range(rate * seconds):
            delay = start + n * interval - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            async with pool.acquire() as conn:
                async with conn.transaction():
                    envelope = await outbox.emit(conn, UserUpdated(user=snapshot, changed=["name"]))
                committed[envelope.id] = time.time() * 1000
        applied: dict[str, float] = {}
        reader = await create_pool(database_url, f"{schema}_consumer", max_size=1)
        for _ in range(300):
            rows = await reader.fetch("SELECT event_id, applied_ms FROM applied")
            applied = {r["event_id"]: r["applied_ms"] for r in rows}
            if len(applied) >= len(committed):
                break
            await asyncio.sleep(0.1)
        await reader.close()
    finally:
        consumer.terminate()
        consumer.wait(10)
        await relay.stop()
        await bus.close()
        await pool.close()
    latencies = [applied[i] - t for i, t in committed.items() if i in applied]
    return EventResult(rate, len(committed), len(set(applied) & set(committed)),
                       _percentile(latencies, 0.5), _percentile(latencies, 0.99), max(latencies, default=0))

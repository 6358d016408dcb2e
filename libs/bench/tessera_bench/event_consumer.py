"""A consumer process for the event-latency benchmark: records when each event was
applied (one transaction per event, inbox included, exactly as services consume)."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from tessera_events import STREAMS
from tessera_kit.bus import Bus
from tessera_kit.consumer import EventConsumer, Subscription
from tessera_kit.db import create_pool, migrate

SCHEMA = os.environ["BENCH_SCHEMA"]


async def record(conn, envelope) -> None:
    await conn.execute(
        "INSERT INTO applied (event_id, applied_ms) VALUES ($1, $2)", envelope.id, time.time() * 1000
    )


async def main() -> None:
    pool = await create_pool(os.environ["DATABASE_URL"], SCHEMA)
    await migrate(pool, SCHEMA, None)
    await pool.execute("CREATE TABLE IF NOT EXISTS applied (event_id text PRIMARY KEY, applied_ms double precision)")
    bus = await Bus.connect(os.environ["NATS_URL"], namespace=os.environ["TESSERA_NAMESPACE"])
    stream = STREAMS["identity"]
    consumer = EventConsumer(pool, bus, Subscription("bench", (stream,), record), stream)
    await consumer.ensure()
    consumer.start()
    print("ready", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await consumer.stop()
    await bus.close()
    await pool.close()


if __name__ == "__main__":
    asyncio.run(main())

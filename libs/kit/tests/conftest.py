"""Fixtures for kit tests against the real PostgreSQL and NATS of the devstack plugin.

Each test gets its own schema and its own NATS namespace, so tests never see each
other's rows, streams or consumers.
"""

import itertools

import pytest

from tessera_kit.bus import Bus
from tessera_kit.db import create_pool, migrate

_counter = itertools.count()


@pytest.fixture
def unique(namespace):
    return f"{namespace}k{next(_counter)}"


@pytest.fixture
async def pool(database_url, unique):
    pool = await create_pool(database_url, unique)
    await migrate(pool, unique, None)
    yield pool
    await pool.close()


@pytest.fixture
async def bus(nats_url, unique):
    bus = await Bus.connect(nats_url, namespace=unique)
    yield bus
    await bus.close()

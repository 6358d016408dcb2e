"""An identity service in the test's loop, on real PostgreSQL and NATS.

Each test module gets its own schema and NATS namespace (nothing is shared between
modules); tests inside a module use unique names (`unique()`), so they may share it.
Events are read back from the outbox, where the change's own transaction wrote them.
"""

from __future__ import annotations

import itertools
import secrets
from dataclasses import dataclass
from typing import Any

import httpx
import msgspec
import pytest

from tessera_events import Actor, decode_envelope
from tessera_identity.main import build_spec
from tessera_kit.app import ServiceContext
from tessera_kit.config import ServiceSettings
from tessera_kit.testing import service_client, started

_modules = itertools.count()
ADMIN = Actor(type="user", id="test-admin")


def _unique(prefix: str = "u") -> str:
    return f"{prefix}{secrets.token_hex(5)}"


@pytest.fixture
def unique():
    """`unique("alice")` -> a name no other test uses (a valid username)."""
    return _unique


@pytest.fixture
def phone():
    """`phone()` -> a phone number (digits) no other test uses."""
    return lambda: "1" + "".join(secrets.choice("0123456789") for _ in range(12))


@dataclass
class Identity:
    client: httpx.AsyncClient
    ctx: ServiceContext
    namespace: str

    async def events(self, aggregate_id: str) -> list[tuple[str, dict[str, Any]]]:
        """(type, data) of every event written for `aggregate_id`, oldest first."""
        rows = await self.ctx.pool.fetch(
            "SELECT envelope FROM outbox WHERE aggregate_id = $1 ORDER BY seq", aggregate_id
        )
        envelopes = [decode_envelope(r["envelope"]) for r in rows]
        return [(e.type, msgspec.json.decode(e.data)) for e in envelopes]

    async def event_types(self, aggregate_id: str) -> list[str]:
        return [t for t, _ in await self.events(aggregate_id)]

    async def outbox_size(self) -> int:
        return await self.ctx.pool.fetchval("SELECT count(*) FROM outbox")

    async def create_user(self, **body: Any) -> dict[str, Any]:
        response = await self.client.post("/api/users", json=body)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="module")
async def identity(database_url, nats_url, namespace):
    ns = f"{namespace}id{next(_modules)}"
    settings = ServiceSettings(database_url=database_url, nats_url=nats_url, namespace=ns,
                               endpoint="http://tessera.test")
    spec = build_spec(settings, name=f"identity-{ns}")
    async with started(spec) as (app, ctx), service_client(app, ADMIN, base_url="http://identity") as client:
        yield Identity(client, ctx, ns)

"""Read model of the connectors service's instances (`connectors.connector.*` events).

The sign-in experience needs to know which social connectors exist (targets, metadata for
`/.well-known/sign-in-exp`) and whether an Email or SMS connector exists (sign-up rules,
forgot password, sending codes). Until a connectors service publishes, the model is empty.

The model follows the owner some milliseconds late, so what decides a write, or refuses a
connector by id, asks the owner first (`connectors_now`, `find_connector_now`): an admin who
has just created an Email connector may at once require e-mail verification.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from tessera_events import STREAMS, Envelope, decode_data
from tessera_events.connectors import ConnectorCreated, ConnectorDeleted, ConnectorSnapshot, ConnectorUpdated
from tessera_events.contracts.connectors import LIST_CONNECTORS, ListConnectorsRequest
from tessera_kit.app import ServiceContext
from tessera_kit.consumer import Subscription

DEMO_SOCIAL_FACTORY = "logto-social-demo"

Executor = asyncpg.Connection | asyncpg.Pool


async def apply(conn: asyncpg.Connection, envelope: Envelope) -> None:
    data = decode_data(envelope)
    if isinstance(data, (ConnectorCreated, ConnectorUpdated)):
        c = data.connector
        await conn.execute(
            "INSERT INTO connectors (tenant_id, id, connector_factory_id, type, target, platform, snapshot)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7)"
            " ON CONFLICT (tenant_id, id) DO UPDATE SET connector_factory_id = excluded.connector_factory_id,"
            " type = excluded.type, target = excluded.target, platform = excluded.platform,"
            " snapshot = excluded.snapshot",
            envelope.tenant_id, c.id, c.connector_factory_id, c.type, c.target, c.platform, msgspec.to_builtins(c),
        )
    elif isinstance(data, ConnectorDeleted):
        await conn.execute("DELETE FROM connectors WHERE tenant_id = $1 AND id = $2", envelope.tenant_id, data.id)


connector_events = Subscription(
    name="experience-connectors",
    streams=(STREAMS["connectors"],),
    handler=apply,
    event_types=("connectors.connector.created", "connectors.connector.updated", "connectors.connector.deleted"),
)


async def all_connectors(conn: Executor, tenant_id: str) -> list[ConnectorSnapshot]:
    rows = await conn.fetch("SELECT snapshot FROM connectors WHERE tenant_id = $1 ORDER BY id", tenant_id)
    return [msgspec.convert(r["snapshot"], ConnectorSnapshot) for r in rows]


async def connector_types(conn: Executor, tenant_id: str) -> set[str]:
    rows = await conn.fetch("SELECT DISTINCT type FROM connectors WHERE tenant_id = $1", tenant_id)
    return {r["type"] for r in rows}


async def find_connector(conn: Executor, tenant_id: str, connector_id: str) -> ConnectorSnapshot | None:
    snapshot = await conn.fetchval(
        "SELECT snapshot FROM connectors WHERE tenant_id = $1 AND id = $2", tenant_id, connector_id
    )
    return msgspec.convert(snapshot, ConnectorSnapshot) if snapshot is not None else None


async def _owners_list(ctx: ServiceContext, tenant_id: str) -> list[ConnectorSnapshot] | None:
    """The connectors service's list as it is now; None when it cannot answer (503)."""
    reply = await ctx.call_unless_away(LIST_CONNECTORS, ListConnectorsRequest(tenant_id=tenant_id))
    return reply.connectors if reply is not None else None


async def connectors_now(ctx: ServiceContext, tenant_id: str) -> list[ConnectorSnapshot]:
    """What a write checks against: the owner's list, or the read model while it is away."""
    owners = await _owners_list(ctx, tenant_id)
    return owners if owners is not None else await all_connectors(ctx.pool, tenant_id)


async def find_connector_now(ctx: ServiceContext, tenant_id: str, connector_id: str) -> ConnectorSnapshot | None:
    """The read model's answer, and the owner's when the model has not heard of the connector."""
    found = await find_connector(ctx.pool, tenant_id, connector_id)
    if found is None:
        found = next((c for c in await _owners_list(ctx, tenant_id) or () if c.id == connector_id), None)
    return found


def social_connector_response(connector: ConnectorSnapshot) -> dict[str, Any]:
    """A social connector as `/.well-known/sign-in-exp` lists it: metadata plus the instance id."""
    return {
        "id": connector.id,
        "target": connector.target,
        "platform": connector.platform,
        "name": connector.name,
        "logo": connector.logo,
        "logoDark": connector.logo_dark,
        "description": connector.description,
        "readme": "",
        "isStandard": connector.is_standard,
        "connectorId": connector.connector_factory_id,
    }

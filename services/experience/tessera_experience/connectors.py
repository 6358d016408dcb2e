"""Read model of the connectors service's instances (`connectors.connector.*` events).

The sign-in experience needs to know which social connectors exist (targets, metadata for
`/.well-known/sign-in-exp`) and whether an Email or SMS connector exists (sign-up rules,
forgot password, sending codes). Until a connectors service publishes, the model is empty.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from tessera_events import STREAMS, Envelope, decode_data
from tessera_events.connectors import ConnectorCreated, ConnectorDeleted, ConnectorSnapshot, ConnectorUpdated
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

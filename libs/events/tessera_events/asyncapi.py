"""The AsyncAPI 3.0 document of the event catalogue (served as `/api/asyncapi.json`).

One channel per event type (its subject), one message per (type, version); each
message's payload is the envelope with `data` set to that version's schema.
"""

from __future__ import annotations

from typing import Any

import msgspec

from tessera_events.catalogue import STREAMS, all_event_types
from tessera_events.envelope import Actor

REF_TEMPLATE = "#/components/schemas/{name}"


def _message_name(event_type: str, version: int) -> str:
    return f"{event_type}.v{version}"


def build_document() -> dict[str, Any]:
    events = all_event_types()
    schemas_list, components = msgspec.json.schema_components(
        [e.data for e in events] + [Actor], ref_template=REF_TEMPLATE
    )
    envelope_props = {
        "id": {"type": "string", "description": "unique event id; the JetStream Nats-Msg-Id"},
        "tenant_id": {"type": "string"},
        "occurred_at": {"type": "integer", "description": "milliseconds since the epoch"},
        "request_id": {"anyOf": [{"type": "string"}, {"type": "null"}],
                       "description": "the HTTP request that caused the event"},
    }
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for entry, data_schema in zip(events, schemas_list):
        name = _message_name(entry.type, entry.version)
        messages[name] = {
            "name": name,
            "title": f"{entry.type} v{entry.version}",
            "summary": entry.summary,
            "contentType": "application/json",
            "headers": {
                "type": "object",
                "properties": {"Nats-Msg-Id": {"type": "string", "description": "= envelope id"}},
            },
            "payload": {
                "type": "object",
                "required": ["id", "type", "version", "tenant_id", "occurred_at", "actor", "data"],
                "properties": {
                    **envelope_props,
                    "type": {"const": entry.type},
                    "version": {"const": entry.version},
                    "actor": {"$ref": REF_TEMPLATE.format(name="Actor")},
                    "data": data_schema,
                },
            },
        }
        channel = channels.setdefault(
            entry.type,
            {
                "address": entry.type,
                "description": f"Stream {STREAMS[entry.service].name}",
                "messages": {},
            },
        )
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
    for type_, channel in channels.items():
        operations[f"publish.{type_}"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{type_}"},
            "messages": [{"$ref": f"#/channels/{type_}/messages/{m}"} for m in channel["messages"]],
        }
    description = (
        "Domain events of Tessera on NATS JetStream. The subject of an event is its type; "
        "a deployment namespace, when set, prefixes subjects and stream names. "
        "Messages are delivered at least once: deduplicate on the envelope `id`."
    )
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Tessera events", "version": "1.0.0", "description": description},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }

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
            "headers": _HEADERS,
            "examples": [{"name": "example", "headers": _example_headers(entry),
                          "payload": _example_envelope(entry, data_schema, components)}],
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
                "description": (
                    f"Stream `{STREAMS[entry.service].name}` (subjects `{STREAMS[entry.service].subjects}`), "
                    f"published by {entry.service}. Read it with a durable pull consumer on that "
                    f"stream filtered to `{entry.type}`; with a namespace, prefix the subject "
                    f"(`<namespace>.{entry.type}`) and the stream (`<NAMESPACE>_{STREAMS[entry.service].name}`)."
                ),
                "x-tessera-stream": STREAMS[entry.service].name,
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
        "Messages are delivered at least once: deduplicate on the envelope `id`. "
        "Each message is also a CloudEvents 1.0 event in the NATS binding's binary mode: "
        "the `ce-*` headers carry its context attributes and the envelope is its data."
    )
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "Tessera events", "version": "1.0.0", "description": description},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": components},
    }


_HEADERS = {
    "type": "object",
    "properties": {
        "Nats-Msg-Id": {"type": "string", "description": "= envelope id (JetStream deduplication)"},
        "ce-specversion": {"const": "1.0"},
        "ce-id": {"type": "string", "description": "= envelope id"},
        "ce-source": {"type": "string", "description": "/tessera/<publishing service>"},
        "ce-type": {"type": "string", "description": "= envelope type"},
        "ce-subject": {"type": "string", "description": "the aggregate id, when the event has one"},
        "ce-time": {"type": "string", "format": "date-time", "description": "= occurred_at"},
        "ce-datacontenttype": {"const": "application/json"},
        "ce-dataschema": {"type": "string", "description": "urn:tessera:event:<type>:v<version>"},
        "ce-tenantid": {"type": "string", "description": "= envelope tenant_id (extension)"},
    },
    "required": ["Nats-Msg-Id", "ce-specversion", "ce-id", "ce-source", "ce-type", "ce-time"],
}


def _example_headers(entry) -> dict[str, str]:
    from tessera_events.cloudevents import dataschema, source

    return {"Nats-Msg-Id": _EXAMPLE_ID, "ce-specversion": "1.0", "ce-id": _EXAMPLE_ID,
            "ce-source": source(entry.service), "ce-type": entry.type,
            "ce-time": "2026-01-01T00:00:00.000Z", "ce-datacontenttype": "application/json",
            "ce-dataschema": dataschema(entry.type, entry.version), "ce-tenantid": "default"}


_EXAMPLE_ID = "evt0example0000000001"


def _example_envelope(entry, data_schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    return {"id": _EXAMPLE_ID, "type": entry.type, "version": entry.version, "tenant_id": "default",
            "occurred_at": 1767225600000, "actor": {"type": "system"}, "request_id": None,
            "data": example_of(data_schema, components)}


def example_of(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A value that satisfies `schema` (msgspec's JSON Schema): defaults where given, else a
    plain value of the type. Used for the document's examples, checked against the catalogue
    in the tests."""
    if depth > 8:
        return None
    if "$ref" in schema:
        return example_of(components[schema["$ref"].rsplit("/", 1)[1]], components, depth + 1)
    if "default" in schema:
        return schema["default"]
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [o for o in schema[key] if o.get("type") != "null"] or schema[key]
            return example_of(options[0], components, depth + 1)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        properties = schema.get("properties", {})
        return {name: example_of(sub, components, depth + 1) for name, sub in properties.items()
                if name in schema.get("required", properties)}
    if kind == "array":
        return [example_of(schema.get("items", {}), components, depth + 1)] if schema.get("items") else []
    return {"string": "string", "integer": 0, "number": 0, "boolean": False, "null": None}.get(kind, "string")

"""CloudEvents 1.0 attributes of a Tessera event, for the NATS binary content mode.

Each event is published with its envelope (JSON) as the message data and the CloudEvents
context attributes as `ce-*` headers (CloudEvents NATS protocol binding, binary mode), so tools
that speak CloudEvents read Tessera's events without knowing the envelope. The envelope keeps
every field: a Tessera subscriber reads the body as before.

| header | value |
|---|---|
| ce-specversion | 1.0 |
| ce-id | the event id (also `Nats-Msg-Id`) |
| ce-source | `/tessera/<service>` (the publishing service) |
| ce-type | the event type, e.g. `identity.user.created` |
| ce-subject | the aggregate id (the user, role, ... the event is about), when there is one |
| ce-time | `occurred_at` as RFC 3339, UTC, milliseconds |
| ce-datacontenttype | application/json |
| ce-dataschema | `urn:tessera:event:<type>:v<version>` (the frozen schema of that version) |
| ce-tenantid | the tenant (an extension attribute) |
"""

from __future__ import annotations

import msgspec

from tessera_events.epoch_ms import from_ms

SPEC_VERSION = "1.0"


class _Attributes(msgspec.Struct, frozen=True):
    """What the headers need from an envelope (the rest of it is ignored when decoding)."""

    id: str
    type: str
    version: int
    tenant_id: str
    occurred_at: int


_decode_attributes = msgspec.json.Decoder(_Attributes).decode


def rfc3339(ms: int) -> str:
    moment = from_ms(ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def source(service: str) -> str:
    return f"/tessera/{service}"


def dataschema(type_: str, version: int) -> str:
    return f"urn:tessera:event:{type_}:v{version}"


def headers_for(envelope_json: bytes, subject: str | None = None) -> dict[str, str]:
    """The `ce-*` headers of a published envelope; `subject` is its aggregate id."""
    event = _decode_attributes(envelope_json)
    headers = {
        "ce-specversion": SPEC_VERSION,
        "ce-id": event.id,
        "ce-source": source(event.type.split(".", 1)[0]),
        "ce-type": event.type,
        "ce-time": rfc3339(event.occurred_at),
        "ce-datacontenttype": "application/json",
        "ce-dataschema": dataschema(event.type, event.version),
        "ce-tenantid": event.tenant_id,
    }
    if subject:
        headers["ce-subject"] = subject
    return headers

"""The event catalogue: the envelope, every versioned event, the streams, rpc contracts.

Importing the package registers every event module, so `all_event_types()` is
complete wherever the catalogue is used.
"""

from tessera_events import connectors, experience, identity, rbac, webhooks  # noqa: F401  (registers events)
from tessera_events.catalogue import (
    STREAMS,
    EventType,
    Stream,
    all_event_types,
    decode_data,
    event,
    event_type_of,
    lookup,
)
from tessera_events.envelope import SYSTEM, Actor, Envelope, EventData, decode_envelope

__all__ = [
    "STREAMS",
    "SYSTEM",
    "Actor",
    "Envelope",
    "EventData",
    "EventType",
    "Stream",
    "all_event_types",
    "decode_data",
    "decode_envelope",
    "event",
    "event_type_of",
    "lookup",
]

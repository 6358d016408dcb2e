"""The registry of event types: (type, version) -> payload struct, grouped in streams.

Published versions are frozen: a change that is not backward compatible gets a
new version (`identity.user.created` v2) next to the old one, and the snapshot test
in tests/ fails when a published schema changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, TypeVar

import msgspec

from tessera_events.envelope import Envelope, EventData

T = TypeVar("T", bound=type[EventData])


@dataclass(frozen=True)
class EventType:
    type: str
    version: int
    data: type[EventData]
    summary: str

    @property
    def service(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def aggregate(self) -> str:
        return self.type.split(".")[1]


@dataclass(frozen=True)
class Stream:
    """One JetStream stream per publishing service (`IDENTITY` holds `identity.>`)."""

    name: str
    service: str

    @property
    def subjects(self) -> str:
        return f"{self.service}.>"


STREAMS: dict[str, Stream] = {
    service: Stream(name=service.upper().replace("-", "_"), service=service)
    for service in ("identity", "rbac", "connectors", "experience", "webhooks")
}

_registry: dict[tuple[str, int], EventType] = {}
_latest: dict[type[EventData], EventType] = {}


def event(type_: str, version: int = 1, *, summary: str = "") -> Callable[[T], T]:
    """Class decorator registering a payload struct as `type_` at `version`."""

    def register(cls: T) -> T:
        service = type_.split(".", 1)[0]
        if service not in STREAMS:
            raise ValueError(f"event {type_}: no stream for service {service!r}")
        key = (type_, version)
        if key in _registry:
            raise ValueError(f"event {type_} v{version} registered twice")
        entry = EventType(type_, version, cls, summary or (cls.__doc__ or "").strip())
        _registry[key] = entry
        _latest[cls] = entry
        return cls

    return register


def event_type_of(data: EventData) -> EventType:
    try:
        return _latest[type(data)]
    except KeyError:
        raise LookupError(f"{type(data).__name__} is not a registered event") from None


def event_type_of_class(cls: type[EventData]) -> EventType:
    """The newest registered (type, version) whose payload is `cls`."""
    try:
        return _latest[cls]
    except KeyError:
        raise LookupError(f"{cls.__name__} is not a registered event") from None


def lookup(type_: str, version: int) -> EventType | None:
    return _registry.get((type_, version))


def all_event_types() -> list[EventType]:
    return sorted(_registry.values(), key=lambda e: (e.type, e.version))


def decode_data(envelope: Envelope) -> EventData:
    entry = lookup(envelope.type, envelope.version)
    if entry is None:
        raise LookupError(f"unknown event {envelope.type} v{envelope.version}")
    return msgspec.json.decode(envelope.data, type=entry.data)

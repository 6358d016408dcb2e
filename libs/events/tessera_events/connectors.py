"""Events published by the connectors service (connector instances).

The experience service keeps a read model of them: which social connectors the sign-in
experience can list, and whether an Email or SMS connector exists (sign-up rules, forgot
password). A connector's `config` (credentials) never travels in an event.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from tessera_events.catalogue import event
from tessera_events.envelope import EventData

ConnectorType = Literal["Email", "Sms", "Social"]
ConnectorPlatform = Literal["Native", "Universal", "Web"]


class ConnectorSnapshot(msgspec.Struct, frozen=True, kw_only=True):
    """A connector instance with its effective metadata (factory metadata overlaid with the
    instance's own, Logto §7.1). `id` is the instance id, `connector_factory_id` the factory
    (Logto's `connectorId`). Texts keyed by language tag, e.g. `{"en": "Google"}`."""

    id: str
    connector_factory_id: str
    type: ConnectorType
    target: str
    platform: ConnectorPlatform | None = None
    name: dict[str, str] = {}
    logo: str = ""
    logo_dark: str | None = None
    description: dict[str, str] = {}
    is_standard: bool = False
    is_demo: bool = False
    sync_profile: bool = False


@event("connectors.connector.created")
class ConnectorCreated(EventData):
    """A connector instance was created."""

    connector: ConnectorSnapshot


@event("connectors.connector.updated")
class ConnectorUpdated(EventData):
    """A connector instance's metadata or settings changed (its config is not in the event)."""

    connector: ConnectorSnapshot


@event("connectors.connector.deleted")
class ConnectorDeleted(EventData):
    """A connector instance was deleted."""

    id: str
    connector_factory_id: str
    type: ConnectorType


MessageType = Literal["Email", "Sms"]


@event("connectors.message.sent")
class MessageSent(EventData):
    """A message (a verification code) left through a connector. `recipient` is masked
    (`j***@example.com`, `*******4567`); the payload (the code) is never in the event."""

    connector_id: str
    connector_factory_id: str
    type: MessageType
    template: str
    recipient: str


@event("connectors.message.failed")
class MessageFailed(EventData):
    """A connector could not send a message; `error_code` is the `connector.*` code the
    caller received (e.g. `connector.general` for a provider that timed out or answered 5xx)."""

    connector_id: str
    connector_factory_id: str
    type: MessageType
    template: str
    recipient: str
    error_code: str

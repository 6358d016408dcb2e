"""Connector instances as Logto shapes them (§7): effective metadata, the response, the
uniqueness rules, and what an event may say about one. Plain functions, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

import msgspec

from tessera_connectors.factories.base import Factory
from tessera_events.connectors import ConnectorSnapshot
from tessera_kit.errors import RequestError

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
# Logto's phone and email regexes for the test route (length capped before matching).
Phone = Annotated[str, msgspec.Meta(max_length=64, pattern=r"^\d+$")]
Email = Annotated[str, msgspec.Meta(max_length=320, pattern=r"^\S+@\S+\.\S+$")]


class MetadataOverride(msgspec.Struct, rename="camel", omit_defaults=True):
    """What a standard connector's instance may set over its factory's metadata."""

    target: str | None = None
    name: dict[str, str] | None = None
    logo: str | None = None
    logo_dark: str | None = None


class CreateConnector(msgspec.Struct, rename="camel"):
    connector_id: Id
    id: Id | None = None
    config: dict[str, Any] | None = None
    metadata: MetadataOverride | None = None
    sync_profile: bool | None = None
    tenant_id: str | None = None  # accepted and ignored (§1.2)


class UpdateConnector(msgspec.Struct, rename="camel"):
    config: dict[str, Any] | None = None
    metadata: MetadataOverride | None = None
    sync_profile: bool | None = None


class TestMessage(msgspec.Struct):
    config: dict[str, Any]
    phone: Phone | None = None
    email: Email | None = None


class AuthorizationUriBody(msgspec.Struct, rename="camel"):
    state: str
    redirect_uri: str


def clean_deep(value: Any) -> Any:
    """clean-deep: drop null, empty strings, and empty objects and arrays, recursively."""
    if isinstance(value, dict):
        cleaned = {k: clean_deep(v) for k, v in value.items()}
        return {k: v for k, v in cleaned.items() if not _empty(v)}
    if isinstance(value, list):
        return [v for v in (clean_deep(v) for v in value) if not _empty(v)]
    return value


def _empty(value: Any) -> bool:
    return value is None or value == "" or value == {} or value == []


def override_of(metadata: MetadataOverride | None) -> dict[str, Any] | None:
    return None if metadata is None else clean_deep(msgspec.to_builtins(metadata))


@dataclass(frozen=True)
class Instance:
    """A stored connector with its factory and its decrypted config."""

    id: str
    factory: Factory
    sync_profile: bool
    config: dict[str, Any]
    metadata: dict[str, Any]  # the instance's own overrides

    @property
    def type(self) -> str:
        return self.factory.type

    @property
    def effective_metadata(self) -> dict[str, Any]:
        """Factory metadata overlaid with the instance's (only standard factories take any)."""
        return {**self.factory.metadata, **self.metadata}

    @property
    def target(self) -> str:
        return self.effective_metadata["target"]

    @property
    def platform(self) -> str | None:
        return self.factory.platform


def connector_response(instance: Instance) -> dict[str, Any]:
    """§7.2: `{type, ...metadata, id, connectorId, syncProfile, metadata, isDemo, config}`."""
    return {
        "type": instance.type,
        **instance.effective_metadata,
        "id": instance.id,
        "connectorId": instance.factory.id,
        "syncProfile": instance.sync_profile,
        "metadata": instance.metadata,
        "isDemo": False,
        "config": instance.config,
    }


def snapshot(instance: Instance) -> ConnectorSnapshot:
    """What events say about an instance: never its config."""
    meta = instance.effective_metadata
    return ConnectorSnapshot(
        id=instance.id, connector_factory_id=instance.factory.id, type=instance.type, target=instance.target,
        platform=instance.platform, name=dict(meta.get("name") or {}), logo=meta.get("logo") or "",
        logo_dark=meta.get("logoDark"), description=dict(meta.get("description") or {}),
        is_standard=instance.factory.is_standard, sync_profile=instance.sync_profile,
    )


def social_clash(instances: list[Instance], target: str, platform: str | None) -> Instance | None:
    for other in instances:
        if other.type == "Social" and other.target == target and other.platform == platform:
            return other
    return None


def clash_error(clash: Instance) -> RequestError:
    return RequestError("connector.multiple_target_with_same_platform", 422,
                        data={"connectorId": clash.factory.id, "connectorName": clash.effective_metadata.get("name")})


def check_integrity(instances: list[Instance]) -> None:
    """GET /connectors asserts the rules a list must keep (400 each)."""
    seen: set[tuple[str, str]] = set()
    for instance in instances:
        if instance.type == "Social" and instance.platform is not None:
            key = (instance.target, instance.platform)
            if key in seen:
                raise RequestError("connector.multiple_target_with_same_platform", 400)
            seen.add(key)
    if sum(1 for i in instances if i.type == "Email") > 1:
        raise RequestError("connector.more_than_one_email", 400)
    if sum(1 for i in instances if i.type == "Sms") > 1:
        raise RequestError("connector.more_than_one_sms", 400)


def mask_recipient(to: str) -> str:
    """`j***@example.com` for an address, `*******4567` for a phone number."""
    if "@" in to:
        local, _, domain = to.rpartition("@")
        return f"{local[:1]}***@{domain}"
    return "*" * max(len(to) - 4, 0) + to[-4:]

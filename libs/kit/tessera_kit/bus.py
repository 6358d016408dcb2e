"""The NATS connection of a service, and the naming of subjects and streams.

A deployment namespace (`TESSERA_NAMESPACE`) prefixes every subject and stream,
so several deployments or test runs can share one NATS server. Stream definitions
come from the event catalogue; publishers and consumers both ensure them, so
start-up order between services does not matter.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Callable
import ssl

import nats
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from tessera_events import Stream
from tessera_kit import access
from tessera_kit.config import ServiceSettings
from tessera_kit.logging import get_logger

log = get_logger(__name__)

# JetStream drops a re-published event id seen within this window; the relay marks
# rows right after publishing, so the window only has to outlast a relay restart.
DUPLICATE_WINDOW_SECONDS = 3600.0
DEAD_LETTER_STREAM = access.DEAD_LETTER_STREAM


@dataclass(frozen=True)
class Retention:
    """How long the owner's stream keeps events (JetStream limits; 0 / -1: no limit).

    Subscribers replay from the oldest event still kept, so the default keeps everything:
    every user and auth fact stays readable until an operator sets a limit."""

    max_age_seconds: float = 0
    max_bytes: int = -1
    max_msgs: int = -1


class Bus:
    def __init__(self, nc: NatsClient, namespace: str = "", stream_replicas: int = 1,
                 retention: Retention = Retention()) -> None:
        self.nc = nc
        self.js: JetStreamContext = nc.jetstream()
        self.namespace = namespace
        self.stream_replicas = stream_replicas
        self.retention = retention
        # Called after the connection came back (a NATS restart): pull consumers ask again at
        # once instead of waiting for their lost pull request to expire.
        self.reconnect_listeners: list[Callable[[], None]] = []

    @classmethod
    async def connect(
        cls,
        url: str,
        *,
        namespace: str = "",
        name: str = "tessera",
        stream_replicas: int = 1,
        user: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        inbox_prefix: str | None = None,
        retention: Retention = Retention(),
    ) -> "Bus":
        async def on_error(exc: Exception) -> None:
            log.warning("nats error", error=str(exc))

        listeners: list[Callable[[], None]] = []

        async def on_reconnect() -> None:
            log.info("nats reconnected")
            for listener in list(listeners):
                listener()

        options = {}
        if user:  # else whatever the URL carries (a test's admin user, or none)
            options.update(user=user, password=password or "")
        if tls is not None:
            options["tls"] = tls
        nc = await nats.connect(
            url,
            name=name,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            error_cb=on_error,
            reconnected_cb=on_reconnect,
            inbox_prefix=inbox_prefix or access.inbox_prefix(namespace, name),
            **options,
        )
        bus = cls(nc, namespace, stream_replicas, retention)
        bus.reconnect_listeners = listeners
        return bus

    @classmethod
    async def from_settings(cls, settings: ServiceSettings, name: str) -> "Bus":
        """The service's own connection: its user, its reply inboxes, TLS when configured."""
        return await cls.connect(
            settings.nats_url,
            namespace=settings.namespace,
            name=name,
            stream_replicas=settings.stream_replicas,
            user=settings.nats_user or None,
            password=settings.nats_password or None,
            tls=tls_context(settings),
            retention=Retention(settings.stream_max_age_seconds, settings.stream_max_bytes,
                                settings.stream_max_msgs),
        )

    @property
    def connected(self) -> bool:
        return self.nc.is_connected

    def subject(self, name: str) -> str:
        return access.subject(self.namespace, name)

    def unprefixed(self, subject: str) -> str:
        prefix = f"{self.namespace}." if self.namespace else ""
        return subject[len(prefix):] if prefix and subject.startswith(prefix) else subject

    def stream_name(self, name: str) -> str:
        return access.stream_name(self.namespace, name)

    def dead_letter_subject(self, consumer: str) -> str:
        return self.subject(f"deadletter.{consumer}")

    async def ensure_stream(self, stream: Stream, *, owner: bool = True) -> str:
        """Create the stream if missing. Only its `owner` (the publishing service) brings an
        existing stream's config up to date; a consumer's user may not (tessera_kit.access)."""
        return await self._ensure(
            self.stream_name(stream.name), self.subject(stream.subjects), owner=owner
        )

    async def ensure_dead_letter_stream(self) -> str:
        return await self._ensure(
            self.stream_name(DEAD_LETTER_STREAM), self.subject("deadletter.>"), owner=False
        )

    async def _ensure(self, name: str, subjects: str, *, owner: bool = True) -> str:
        config = StreamConfig(
            name=name,
            subjects=[subjects],
            storage=StorageType.FILE,
            num_replicas=self.stream_replicas,
            duplicate_window=DUPLICATE_WINDOW_SECONDS,
            max_age=self.retention.max_age_seconds,
            max_bytes=self.retention.max_bytes,
            max_msgs=self.retention.max_msgs,
        )
        for attempt in range(5):
            try:
                await self.js.add_stream(config)
                return name
            except BadRequestError as exc:
                # Already there with another config (e.g. an older duplicate window).
                if exc.err_code == 10058:
                    if owner:
                        await self.js.update_stream(config)
                    return name
                raise
            except Exception:
                if attempt == 4:
                    raise
                await asyncio.sleep(0.2 * (attempt + 1))
        return name

    async def close(self) -> None:
        if not self.nc.is_closed:
            await self.nc.drain()


def tls_context(settings: ServiceSettings) -> ssl.SSLContext | None:
    if not (settings.nats_tls_ca or settings.nats_tls_cert):
        return None
    context = ssl.create_default_context(cafile=settings.nats_tls_ca or None)
    if settings.nats_tls_cert:
        context.load_cert_chain(settings.nats_tls_cert, settings.nats_tls_key or None)
    return context

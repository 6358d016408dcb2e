"""The NATS connection of a service, and the naming of subjects and streams.

A deployment namespace (`TESSERA_NAMESPACE`) prefixes every subject and stream,
so several deployments or test runs can share one NATS server. Stream definitions
come from the event catalogue; publishers and consumers both ensure them, so
start-up order between services does not matter.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass
from typing import Callable
import ssl

import nats
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import PubAck, StorageType, StreamConfig
from nats.js.errors import APIError, BadRequestError, NoStreamResponseError

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


class JetStreamAcks:
    """Publishes to JetStream whose acknowledgements come back on one reply subscription, each
    resolving its future: with the PubAck, or with the error JetStream answered (the APIError
    nats-py would raise), or NoStreamResponseError when no stream stores the subject.

    nats-py's `publish_async` does the same with more per message (a task to acquire its
    stall semaphore, a random token, callbacks): ~25 µs of CPU per event, a good part of an
    outbox relay's. And it never resolves the future of a publish JetStream refuses (its reply
    handler raises the APIError instead of setting it), so a caller waited out its timeout."""

    def __init__(self, nc: NatsClient) -> None:
        self._nc = nc
        self._prefix: str | None = None
        self._subscribing: asyncio.Lock = asyncio.Lock()
        self._pending: dict[str, asyncio.Future] = {}
        self._count = 0

    async def publish(self, subject: str, payload: bytes, headers: dict[str, str]) -> asyncio.Future:
        """Send one message; the future resolves with its PubAck (or the refusal)."""
        if self._prefix is None:
            async with self._subscribing:
                if self._prefix is None:
                    prefix = self._nc.new_inbox() + "."
                    await self._nc.subscribe(prefix + "*", cb=self._on_reply)
                    self._prefix = prefix
        self._count += 1
        token = str(self._count)
        future = asyncio.get_running_loop().create_future()
        self._pending[token] = future
        try:
            await self._nc.publish(subject, payload, reply=self._prefix + token, headers=headers)
        except BaseException:
            self._pending.pop(token, None)
            raise
        return future

    def forget(self, futures: list[asyncio.Future]) -> None:
        """Stop waiting for these (a failure made them moot): their replies are dropped."""
        moot = set(futures)
        for token in [t for t, f in self._pending.items() if f in moot]:
            future = self._pending.pop(token)
            if not future.done():
                future.cancel()

    @property
    def waiting(self) -> int:
        return len(self._pending)

    async def _on_reply(self, msg: Msg) -> None:
        future = self._pending.pop(msg.subject[len(self._prefix or ""):], None)
        if future is None or future.done():
            return
        if msg.headers and msg.headers.get("Status") == "503":  # no responders: no such stream
            future.set_exception(NoStreamResponseError())
            return
        try:
            answer = json.loads(msg.data)
            if "error" in answer:
                try:
                    APIError.from_error(answer["error"])  # raises the matching APIError
                except APIError as refused:
                    future.set_exception(refused)
                return
            future.set_result(PubAck.from_response(answer))
        except Exception as exc:  # a reply that is no PubAck
            future.set_exception(APIError(description=f"unreadable JetStream acknowledgement: {exc!r}"))


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
        self.acks = JetStreamAcks(nc)

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

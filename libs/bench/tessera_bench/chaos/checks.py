"""The promises checked after each round, exactly (counts, not rates):

- every write that got a 2xx is in the database (read as the admin, in each service's schema);
- every committed event (an outbox row) is in its JetStream stream exactly once, by event id;
- every consumer has applied every event it subscribes to exactly once (its inbox, its effect)
  and dead-lettered none;
- no user can sign in with a password a 2xx change replaced, and the current one works.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

import asyncpg
import httpx
import msgspec
import nats
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from tessera_events import STREAMS
from tessera_kit.access import durable_name, stream_name, subject

from .load import ADMIN, REQUEST_TIMEOUT, Load, LoadState

# Publishers: the schema whose outbox feeds each stream.
PUBLISHERS = {"identity": "identity", "rbac": "rbac", "connectors": "connectors",
              "experience": "experience", "webhooks": "webhook_dispatcher"}


@dataclass(frozen=True)
class ConsumerSpec:
    schema: str
    name: str  # the inbox's `consumer` column
    streams: tuple[str, ...]  # keys of STREAMS
    event_types: tuple[str, ...]  # empty: all


def consumer_specs() -> list[ConsumerSpec]:
    """Every subscription of the installed services, from the services' own declarations."""
    found: list[tuple[str, object]] = []
    try:
        from tessera_audit_log.events import every_event
        found.append(("audit_log", every_event))
    except ImportError:
        pass
    try:
        from tessera_rbac.events import identity_events
        found.append(("rbac", identity_events))
    except ImportError:
        pass
    try:
        from tessera_experience.connectors import connector_events
        found.append(("experience", connector_events))
    except ImportError:
        pass
    try:
        from tessera_webhook_dispatcher.events import subscriptions
        found.extend(("webhook_dispatcher", s) for s in subscriptions("unused", None))
    except ImportError:
        pass
    by_stream_name = {stream.name: key for key, stream in STREAMS.items()}
    return [
        ConsumerSpec(schema, s.name, tuple(by_stream_name[st.name] for st in s.streams), tuple(s.event_types))
        for schema, s in found
    ]


@dataclass
class StreamEvent:
    id: str
    type: str


@dataclass
class CheckResult:
    events_lost: int = 0
    duplicates: int = 0
    unpublished: int = 0
    dead_letters: int = 0
    violations: list[str] = field(default_factory=list)

    def problem(self, text: str) -> None:
        self.violations.append(text)


async def read_stream(js, namespace: str, key: str) -> list[StreamEvent]:
    """Every message of a stream, in order, through an ephemeral consumer without acks."""
    name = stream_name(namespace, STREAMS[key].name)
    try:
        info = await js.stream_info(name)
    except nats.js.errors.NotFoundError:
        return []
    total = info.state.messages
    if not total:
        return []
    prefix = f"{namespace}." if namespace else ""
    subscription = await js.pull_subscribe(
        subject(namespace, STREAMS[key].subjects), stream=name,
        config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL,
                              inactive_threshold=30.0),
    )
    events: list[StreamEvent] = []
    try:
        while len(events) < total:
            try:
                messages = await subscription.fetch(min(1000, total - len(events)), timeout=5.0)
            except nats.errors.TimeoutError:
                break
            for message in messages:
                msg_id = (message.headers or {}).get("Nats-Msg-Id", "")
                body = msgspec.json.decode(message.data)
                if body.get("id") != msg_id:
                    raise AssertionError(f"event {body.get('id')} published with Nats-Msg-Id {msg_id}")
                events.append(StreamEvent(msg_id, message.subject.removeprefix(prefix)))
    finally:
        await subscription.unsubscribe()
    return events


class Checker:
    def __init__(self, database_url: str, nats_url: str, namespace: str, gateway_url: str):
        self.database_url = database_url
        self.nats_url = nats_url
        self.namespace = namespace
        self.gateway_url = gateway_url
        self.consumers = consumer_specs()
        self._passwords_checked: set[tuple[str, str]] = set()  # each replaced password once

    # ------------------------------------------------------------------ settling

    async def settle(self, limit: float = 90.0) -> float:
        """Wait until every outbox row is published and every consumer has caught up with its
        streams (or `limit` passes: then the checks report what is missing). Returns seconds."""
        started = time.monotonic()
        while time.monotonic() - started < limit:
            try:
                if not await self._behind():
                    break
            except (OSError, asyncpg.PostgresError, nats.errors.Error):
                pass
            await asyncio.sleep(0.5)
        return time.monotonic() - started

    async def _behind(self) -> bool:
        conn = await asyncpg.connect(self.database_url)
        try:
            for schema in PUBLISHERS.values():
                if await self._has_table(conn, schema, "outbox") and await conn.fetchval(
                        f'SELECT count(*) FROM "{schema}".outbox WHERE published_at IS NULL'):
                    return True
        finally:
            await conn.close()
        nc = await nats.connect(self.nats_url, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            for consumer in self.consumers:
                for key in consumer.streams:
                    durable = durable_name(consumer.name, STREAMS[key])
                    info = await js.consumer_info(stream_name(self.namespace, STREAMS[key].name), durable)
                    if (info.num_pending or 0) + (info.num_ack_pending or 0):
                        return True
        finally:
            await nc.close()
        return False

    @staticmethod
    async def _has_table(conn: asyncpg.Connection, schema: str, table: str) -> bool:
        return bool(await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".{table}'))

    # ------------------------------------------------------------------ the checks

    async def check(self, state: LoadState, *, passwords: bool = True) -> CheckResult:
        result = CheckResult()
        conn = await asyncpg.connect(self.database_url)
        nc = await nats.connect(self.nats_url, max_reconnect_attempts=0)
        try:
            js = nc.jetstream()
            streams = {key: await read_stream(js, self.namespace, key) for key in STREAMS}
            await self._check_events(conn, streams, result)
            await self._check_consumers(conn, streams, result)
            await self._check_writes(conn, state, result)
        finally:
            await nc.close()
            await conn.close()
        if passwords:
            await self._check_passwords(state, result)
        return result

    async def _check_events(self, conn, streams: dict[str, list[StreamEvent]], result: CheckResult) -> None:
        for key, schema in PUBLISHERS.items():
            if not await self._has_table(conn, schema, "outbox"):
                continue
            rows = await conn.fetch(f'SELECT id, published_at IS NOT NULL AS published FROM "{schema}".outbox')
            committed = {r["id"] for r in rows}
            unpublished = sum(not r["published"] for r in rows)
            counts = collections.Counter(e.id for e in streams[key])
            lost = committed - set(counts)
            duplicated = {i: n for i, n in counts.items() if n > 1}
            unknown = set(counts) - committed  # outbox rows are kept a day: none may be missing
            result.unpublished += unpublished
            result.events_lost += len(lost)
            result.duplicates += sum(n - 1 for n in duplicated.values())
            if lost:
                result.problem(f"{key}: {len(lost)} committed events not in the stream, e.g. {sorted(lost)[:3]}")
            if duplicated:
                result.problem(f"{key}: events in the stream more than once: {dict(list(duplicated.items())[:3])}")
            if unknown:
                result.problem(f"{key}: {len(unknown)} events in the stream without an outbox row")
            if unpublished:
                result.problem(f"{key}: {unpublished} outbox rows never published")

    async def _check_consumers(self, conn, streams: dict[str, list[StreamEvent]], result: CheckResult) -> None:
        for consumer in self.consumers:
            if not await self._has_table(conn, consumer.schema, "inbox"):
                continue
            expected = {e.id for key in consumer.streams for e in streams[key]
                        if not consumer.event_types or e.type in consumer.event_types}
            applied = {r["event_id"] for r in await conn.fetch(
                f'SELECT event_id FROM "{consumer.schema}".inbox WHERE consumer = $1', consumer.name)}
            missing = expected - applied
            if missing:
                result.events_lost += len(missing)
                result.problem(f"{consumer.name}: {len(missing)} events never applied, e.g. {sorted(missing)[:3]}")
        seen_schemas = {c.schema for c in self.consumers}
        for schema in sorted(seen_schemas | set(PUBLISHERS.values())):
            if not await self._has_table(conn, schema, "dead_letters"):
                continue
            rows = await conn.fetch(f'SELECT consumer, event_id, error FROM "{schema}".dead_letters')
            if rows:
                result.dead_letters += len(rows)
                result.events_lost += len(rows)
                result.problem(f"{schema}: {len(rows)} dead letters, e.g. {dict(rows[0])}")
        # The effects themselves: one audit log per event, one delivery per hook and event.
        if await self._has_table(conn, "audit_log", "logs"):
            twice = await conn.fetchval(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM audit_log.logs"
                " WHERE event_id IS NOT NULL GROUP BY event_id HAVING count(*) > 1) t")
            without = await conn.fetchval(
                "SELECT count(*) FROM audit_log.inbox i WHERE i.consumer = 'audit-log' AND NOT EXISTS"
                " (SELECT 1 FROM audit_log.logs l WHERE l.event_id = i.event_id)")
            result.duplicates += twice
            result.events_lost += without
            if twice:
                result.problem(f"audit-log: {twice} events logged more than once")
            if without:
                result.problem(f"audit-log: {without} applied events without their log entry")
        if await self._has_table(conn, "webhook_dispatcher", "deliveries"):
            twice = await conn.fetchval(
                "SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM webhook_dispatcher.deliveries"
                " GROUP BY hook_id, source_event_id HAVING count(*) > 1) t")
            result.duplicates += twice
            if twice:
                result.problem(f"webhook-dispatcher: {twice} deliveries made twice for one event")

    async def _check_writes(self, conn, state: LoadState, result: CheckResult) -> None:
        names = {r["username"] for r in await conn.fetch(
            "SELECT username FROM identity.users WHERE username = ANY($1)", state.registered)}
        missing = set(state.registered) - names
        if missing:
            result.problem(f"{len(missing)} registrations answered 2xx are not in identity.users: {sorted(missing)[:3]}")
        users = {r["id"]: r for r in await conn.fetch(
            "SELECT id, name FROM identity.users WHERE id = ANY($1)", [u.id for u in state.users])}
        links = {r["user_id"] for r in await conn.fetch(
            "SELECT user_id FROM rbac.users_roles WHERE role_id = $1", state.role_id)}
        for user in state.users:
            row = users.get(user.id)
            if row is None:
                result.problem(f"user {user.id} ({user.username}) is not in identity.users")
                continue
            if row["name"] != user.name and row["name"] not in user.name_candidates:
                result.problem(f"user {user.id}: name {row['name']!r}, the last 2xx set {user.name!r}")
            if user.role is not None and (user.id in links) != user.role:
                result.problem(f"user {user.id}: role held is {user.id in links}, the last 2xx said {user.role}")

    async def _check_passwords(self, state: LoadState, result: CheckResult) -> None:
        load = Load(self.gateway_url, state)
        async with httpx.AsyncClient(base_url=self.gateway_url, timeout=REQUEST_TIMEOUT) as client:
            for user in state.users:
                for password in sorted(user.retired):
                    if (user.id, password) in self._passwords_checked:
                        continue
                    self._passwords_checked.add((user.id, password))
                    status, text = await self._sign_in_status(load, client, user, password)
                    if status != 422:
                        result.problem(f"user {user.id}: a replaced password answers {status} at sign-in,"
                                       f" not 422: {text[:160]}")
                if user.password is not None:
                    verify = await client.post(f"/api/users/{user.id}/password/verify", headers=ADMIN,
                                               json={"password": user.password})
                    if verify.status_code != 204:
                        result.problem(f"user {user.id}: the current password answers {verify.status_code}:"
                                       f" {verify.text[:160]}")

    @staticmethod
    async def _sign_in_status(load: Load, client: httpx.AsyncClient, user, password: str) -> tuple[int | None, str]:
        cookies = httpx.Cookies()
        outcomes_before = len(load.state.outcomes)
        try:
            if not await load._authorize(client, cookies, "check"):
                return None, load.state.outcomes[-1].error
            cookie = "; ".join(f"{name}={value}" for name, value in cookies.items())
            put = await client.put("/api/interaction", headers={"cookie": cookie}, json={
                "event": "SignIn", "identifier": {"username": user.username, "password": password}})
            return put.status_code, put.text
        finally:
            del load.state.outcomes[outcomes_before:]  # the checks' own requests are not load

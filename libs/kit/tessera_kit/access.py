"""Who may do what: the one table of each service's reach into NATS and PostgreSQL.

From this table come the NATS permissions of each service's user (publish to its own
stream and the rpc it calls, serve its own rpc, use its own consumers and reply inboxes)
and the PostgreSQL role that owns its schema. A new service is one entry here; an
entry for a service that is not installed costs nothing. `tests` in libs/devstack check
the entries against the specs of the services that are installed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tessera_events import STREAMS, Stream
from tessera_events.contracts import connectors, identity, oidc, rbac
from tessera_events.rpc import RpcOperation
from tessera_events.subscribers import inbox_prefix, stream_name, subject  # noqa: F401 (re-exported)

# The kit's dead-letter stream (`deadletter.>`), shared by every consuming service.
DEAD_LETTER_STREAM = "DEADLETTER"


@dataclass(frozen=True)
class Consumes:
    """A `Subscription` of the service: its name and the streams it reads."""

    subscription: str
    streams: tuple[Stream, ...]

    def durables(self) -> list[tuple[Stream, str]]:
        return [(stream, durable_name(self.subscription, stream)) for stream in self.streams]


@dataclass(frozen=True)
class ServiceAccess:
    name: str
    publishes: Stream | None = None
    calls: tuple[RpcOperation, ...] = ()
    consumes: tuple[Consumes, ...] = ()
    # Event subjects it follows live, without a durable consumer (core NATS subscriptions,
    # e.g. to drop a cache when another replica or service announces a change).
    listens: tuple[str, ...] = ()
    uses_nats: bool = True
    uses_database: bool = True
    # Extensions the admin step creates in `public` (a service role may not create them).
    extensions: tuple[str, ...] = ()

    @property
    def schema(self) -> str:
        return self.name.replace("-", "_")


def durable_name(subscription: str, stream: Stream) -> str:
    return f"{subscription}-{stream.name.lower()}".replace(".", "_")


ACCESS: dict[str, ServiceAccess] = {
    entry.name: entry
    for entry in (
        ServiceAccess("gateway", uses_nats=False, uses_database=False),
        # The gateway again, listening on ADMIN_ENDPOINT for the tenant `admin`.
        ServiceAccess("gateway-admin", uses_nats=False, uses_database=False),
        ServiceAccess(
            "identity",
            publishes=STREAMS["identity"],
            calls=(
                rbac.RESOURCE_BY_INDICATOR, rbac.DEFAULT_RESOURCE, rbac.USER_SCOPES,
                rbac.APPLICATION_SCOPES, rbac.SET_APPLICATION_ADMIN, rbac.IS_APPLICATION_ADMIN,
                rbac.ROLE_USER_IDS, connectors.INTERACTION_USER_INFO,
            ),
            # Evicts cached OIDC clients and rbac answers (oidc/provider.py).
            listens=("identity.application.>", "rbac.>"),
            extensions=("pg_trgm",),
        ),
        ServiceAccess(
            "rbac",
            publishes=STREAMS["rbac"],
            consumes=(Consumes("rbac-directory", (STREAMS["identity"],)),),
        ),
        ServiceAccess("connectors", publishes=STREAMS["connectors"]),
        ServiceAccess(
            "experience",
            publishes=STREAMS["experience"],
            calls=(
                identity.FIND_USER, identity.VERIFY_PASSWORD, identity.CREATE_USER,
                identity.UPDATE_USER, identity.HASH_PASSWORD, identity.APPLICATION_CLIENT,
                oidc.INTERACTION_DETAILS, oidc.FINISH_LOGIN, oidc.GRANT_CONSENT,
                oidc.ABORT_INTERACTION,
                connectors.SEND_MESSAGE, connectors.AUTHORIZATION_URI,
                connectors.INTERACTION_USER_INFO, connectors.DELETE_CONNECTORS,
                connectors.LIST_CONNECTORS,
            ),
            consumes=(Consumes("experience-connectors", (STREAMS["connectors"],)),),
        ),
        ServiceAccess(
            "audit-log", calls=(identity.USER_COUNTS,),
            consumes=(Consumes("audit-log", tuple(STREAMS.values())),),
        ),
        ServiceAccess(
            "webhook-dispatcher",
            publishes=STREAMS["webhooks"],
            consumes=(
                Consumes("webhook-dispatcher-interactions", (STREAMS["experience"],)),
                Consumes("webhook-dispatcher-identity", (STREAMS["identity"],)),
                Consumes("webhook-dispatcher-rbac", (STREAMS["rbac"],)),
            ),
        ),
    )
}


def service_access(name: str) -> ServiceAccess:
    try:
        return ACCESS[name]
    except KeyError:
        raise KeyError(f"service {name!r} has no entry in tessera_kit.access.ACCESS") from None


# ------------------------------------------------------------------ NATS naming


# Subjects, streams and inboxes are named by the catalogue's rule (tessera_events.subscribers),
# which subscribers outside Tessera follow too: `subject`, `stream_name`, `inbox_prefix`.


def nats_user(namespace: str, service: str) -> str:
    return f"{namespace}-{service}" if namespace else service


def nats_permissions(entry: ServiceAccess, namespace: str = "") -> dict[str, Any]:
    """The nats-server `permissions` block of the service's user."""
    publish: list[str] = []
    subscribe = [subject(namespace, f"rpc.{entry.name}.>"), inbox_prefix(namespace, entry.name) + ".>",
                 *(subject(namespace, listened) for listened in entry.listens)]

    def stream_api(stream: str, *, owner: bool) -> None:
        publish.extend(f"$JS.API.STREAM.{verb}.{stream}" for verb in ("CREATE", "INFO"))
        if owner:
            publish.append(f"$JS.API.STREAM.UPDATE.{stream}")

    if entry.publishes is not None:
        publish.append(subject(namespace, entry.publishes.subjects))
        stream_api(stream_name(namespace, entry.publishes.name), owner=True)
    publish.extend(subject(namespace, op.subject) for op in entry.calls)
    dead_letters = stream_name(namespace, DEAD_LETTER_STREAM)
    for consumes in entry.consumes:
        publish.append(subject(namespace, f"deadletter.{consumes.subscription}"))
        for stream, durable in consumes.durables():
            name = stream_name(namespace, stream.name)
            if not (entry.publishes and entry.publishes.name == stream.name):
                stream_api(name, owner=False)
            publish.extend((
                f"$JS.API.CONSUMER.CREATE.{name}.{durable}",
                f"$JS.API.CONSUMER.CREATE.{name}.{durable}.>",
                f"$JS.API.CONSUMER.DURABLE.CREATE.{name}.{durable}",
                f"$JS.API.CONSUMER.INFO.{name}.{durable}",
                f"$JS.API.CONSUMER.MSG.NEXT.{name}.{durable}",
                f"$JS.ACK.{name}.{durable}.>",
            ))
    if entry.consumes:
        stream_api(dead_letters, owner=False)
    return {
        "publish": {"allow": sorted(set(publish))},
        "subscribe": {"allow": subscribe},
        # Serving rpc: answering on the caller's reply subject, once per request.
        "allow_responses": True,
    }


def subscriber_permissions(consumer: str, patterns: tuple[str, ...], namespace: str = "") -> dict[str, Any]:
    """An outside subscriber (tessera-subscriber, `TESSERA_SUBSCRIBERS`): read-only on the
    streams of the events it is given. It may create, read and ack only its own durables (the
    subscriber kit's names for those events), publish only its dead letters, and read replies
    only on its own inbox prefix. It can neither publish an event nor touch a service's
    consumer nor change a stream."""
    from tessera_events.subscribers import durable_name, inbox_prefix as subscriber_inbox, stream_of

    publish = [subject(namespace, f"deadletter.{consumer}")]
    for pattern in patterns:
        stream = stream_name(namespace, stream_of(pattern).name)
        durable = durable_name(consumer, pattern)
        publish.extend((
            f"$JS.API.STREAM.INFO.{stream}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.CREATE.{stream}.{durable}.>",
            f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.{durable}",
            f"$JS.API.CONSUMER.INFO.{stream}.{durable}",
            f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}",
            f"$JS.ACK.{stream}.{durable}.>",
        ))
    return {
        "publish": {"allow": sorted(set(publish))},
        "subscribe": {"allow": [subscriber_inbox(namespace, consumer) + ".>"]},
    }


def nats_services() -> list[ServiceAccess]:
    return [entry for entry in ACCESS.values() if entry.uses_nats]


def database_services() -> list[ServiceAccess]:
    return [entry for entry in ACCESS.values() if entry.uses_database]

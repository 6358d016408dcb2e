"""Naming on the bus, shared by the services' kit, its access table (the NATS permissions) and
the subscriber kit: one rule for subjects, streams, inboxes and subscriber durables."""

from __future__ import annotations

from tessera_events.catalogue import STREAMS, Stream


def durable_name(consumer: str, pattern: str) -> str:
    """`crm-sync` + `identity.user.*` -> `crm-sync-identity_user_any` (no dots: NATS tokens)."""
    return f"{consumer}-{pattern}".replace(".", "_").replace("*", "any").replace(">", "all")


def stream_of(pattern: str) -> Stream:
    service = pattern.split(".", 1)[0]
    if service not in STREAMS:
        raise ValueError(f"{pattern!r}: no Tessera stream for {service!r}")
    return STREAMS[service]


def subject(namespace: str, name: str) -> str:
    """A deployment namespace prefixes every subject: `<ns>.identity.user.created`."""
    return f"{namespace}.{name}" if namespace else name


def stream_name(namespace: str, name: str) -> str:
    """... and every stream name: `<NS>_IDENTITY`."""
    return f"{namespace.upper()}_{name}" if namespace else name


def inbox_prefix(namespace: str, client: str) -> str:
    """Replies to a client (a service or a subscriber) arrive under its own prefix, which only
    its NATS user may read."""
    return f"_INBOX_{namespace}_{client}" if namespace else f"_INBOX_{client}"


def parse_subscribers(spec: str) -> dict[str, tuple[str, ...]]:
    """`TESSERA_SUBSCRIBERS`: `crm=identity.user.created,identity.user.*;mailer=experience.interaction.*`
    -> {consumer: event types or patterns}. Each pattern's stream must exist."""
    subscribers: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, _, patterns = part.partition("=")
        name = name.strip()
        listed = tuple(p.strip() for p in patterns.split(",") if p.strip())
        if not name or not name.replace("-", "").replace("_", "").isalnum() or not listed:
            raise ValueError(f"TESSERA_SUBSCRIBERS: {part!r} is not 'name=event.type,other.*'")
        for pattern in listed:
            stream_of(pattern)
        subscribers[name] = listed
    return subscribers

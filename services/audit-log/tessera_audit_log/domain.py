"""From events to log entries and dashboard figures: plain functions, no I/O."""

from __future__ import annotations

import datetime as dt
from typing import Any

import msgspec

from tessera_events import Envelope
from tessera_events.epoch_ms import from_ms

# identity.token.* grant types -> Logto's `ExchangeTokenBy.<X>` keys (§9.2).
GRANT_LOG_KEYS = {
    "authorization_code": "ExchangeTokenBy.AuthorizationCode",
    "refresh_token": "ExchangeTokenBy.RefreshToken",
    "client_credentials": "ExchangeTokenBy.ClientCredentials",
}
# identity.interaction.* -> Logto's `Interaction.Create` / `Interaction.End` (§9.2).
INTERACTION_LOG_KEYS = {
    "identity.interaction.started": "Interaction.Create",
    "identity.interaction.ended": "Interaction.End",
}
MASK = "******"


class LogEntry(msgspec.Struct, frozen=True):
    key: str
    payload: dict[str, Any]
    created_at: dt.datetime
    # The log id when the event names one (a hook attempt: the id its recent-logs show).
    id: str | None = None


def mask_passwords(value: Any) -> Any:
    """Mask any object property named `password` at any depth, not inside arrays (§9.1)."""
    if isinstance(value, dict):
        return {k: MASK if k == "password" else mask_passwords(v) for k, v in value.items()}
    return value


def _first(data: dict[str, Any], *paths: tuple[str, ...]) -> str | None:
    for path in paths:
        node: Any = data
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, str):
            return node
    return None


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _camel_keys(value: Any) -> Any:
    if isinstance(value, dict):
        return {_camel(k): _camel_keys(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel_keys(v) for v in value]
    return value


def log_entry_for(envelope: Envelope) -> LogEntry:
    """The log entry an event becomes: Logto's key and payload where one maps (§9.2),
    otherwise the event type as key with the event's data."""
    data: dict[str, Any] = msgspec.json.decode(envelope.data)
    base: dict[str, Any] = {"result": "Success"}
    if envelope.type == "identity.token.issued":
        key = GRANT_LOG_KEYS.get(data.get("grant_type", ""), "ExchangeTokenBy.Unknown")
        extra = {k: data.get(k) for k in ("application_id", "user_id", "session_id", "token_types", "scope")}
    elif envelope.type == "identity.token.exchange_failed":
        key = GRANT_LOG_KEYS.get(data.get("grant_type", ""), "ExchangeTokenBy.Unknown")
        base["result"] = "Error"
        extra = {
            "application_id": data.get("application_id"),
            "error": {"message": data.get("error_description") or data.get("error"), "code": data.get("error")},
        }
    elif envelope.type == "identity.token.revoked":
        key = "RevokeToken"
        extra = {k: data.get(k) for k in ("application_id", "user_id", "grant_id", "token_types")}
    elif envelope.type in INTERACTION_LOG_KEYS:
        # oidc-provider's interaction.started / interaction.ended, as Logto's listener logs them.
        key = INTERACTION_LOG_KEYS[envelope.type]
        extra = {k: data.get(k) for k in ("application_id", "session_id", "interaction_id", "user_id", "params", "prompt")}
    elif envelope.type == "experience.interaction.step":
        key = data["log_key"]
        base["result"] = data.get("result", "Success")
        extra = {**data.get("payload", {}), "interactionId": data.get("interaction_id")}
        for name in ("user_id", "application_id", "error"):
            if data.get(name) is not None:
                extra[name] = data[name]
    elif envelope.type in ("webhooks.delivery.succeeded", "webhooks.delivery.failed"):
        return _hook_attempt_entry(envelope, data)
    else:
        key = envelope.type
        extra = {
            "user_id": _first(data, ("user_id",), ("user", "id")),
            "application_id": _first(data, ("application_id",), ("application", "id")),
            "data": data,
        }
    payload = {
        "key": key,
        **base,
        **{_camel(k): v for k, v in extra.items() if v is not None},
        "eventId": envelope.id,
        "eventType": envelope.type,
        "actor": msgspec.to_builtins(envelope.actor),
    }
    if envelope.request_id:
        payload["requestId"] = envelope.request_id
    if "data" in payload:
        payload["data"] = _camel_keys(payload["data"])
    return LogEntry(key, mask_passwords(payload), from_ms(envelope.occurred_at))


def _hook_attempt_entry(envelope: Envelope, data: dict[str, Any]) -> LogEntry:
    """One hook call: Logto's `TriggerHook.<event>` entry (§6.4), under the attempt's id."""
    attempt = data["attempt"]
    key = f"TriggerHook.{attempt['event']}"
    succeeded = envelope.type == "webhooks.delivery.succeeded"
    payload: dict[str, Any] = {
        "key": key,
        "result": "Success" if succeeded else "Error",
        "hookId": attempt["hook_id"],
        "hookRequest": {"body": attempt["request_body"]},
    }
    if attempt.get("response") is not None:
        payload["response"] = attempt["response"]
    if not succeeded:
        payload["error"] = data.get("error")
    payload.update(deliveryId=attempt["delivery_id"], attempt=attempt["attempt"], eventId=envelope.id,
                   eventType=envelope.type, actor=msgspec.to_builtins(envelope.actor))
    return LogEntry(key, mask_passwords(payload), from_ms(envelope.occurred_at), id=attempt["attempt_id"])


def is_user_activity(entry: LogEntry) -> bool:
    """Logto's active users: distinct userId over successful `ExchangeTokenBy.*` logs."""
    return (
        entry.key.startswith("ExchangeTokenBy.")
        and entry.payload.get("result") == "Success"
        and isinstance(entry.payload.get("userId"), str)
    )


class CountDelta(msgspec.Struct):
    count: int
    delta: int


def count_delta(current: int, previous: int) -> CountDelta:
    return CountDelta(count=current, delta=current - previous)


def parse_day(raw: str | None, today: dt.date) -> dt.date | None:
    """`date` of /dashboard/users/active: `YYYY-MM-DD` (Logto's regex allows a suffix)."""
    if raw is None:
        return today
    try:
        return dt.date.fromisoformat(raw[:10])
    except ValueError:
        return None

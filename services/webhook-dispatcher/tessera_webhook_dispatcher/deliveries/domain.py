"""Deliveries: the retry schedule, the signatures, and how attempts read as Logto's logs. No I/O."""

from __future__ import annotations

import base64
import datetime as dt
import email.utils
import hashlib
import hmac
import random
from typing import Any, Mapping

import msgspec

from tessera_webhook_dispatcher.hooks.domain import USER_AGENT

# Svix's schedule: after the immediate first attempt, wait this long before each retry.
RETRY_DELAYS = (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, 36000.0)
JITTER = 0.2  # +/- 20 %
RETRY_AFTER_CAP = 86400.0
RESPONSE_BODY_CAP = 4096
# How the body is framed and the connection kept is the HTTP client's business: a hook's own
# `content-length` or `transfer-encoding` would go out beside the client's own (a smuggling shape).
CLIENT_OWNED_HEADERS = frozenset({
    "content-length", "transfer-encoding", "host", "connection", "keep-alive", "te", "trailer", "upgrade",
    "proxy-connection",
})


def retry_delay(failed_attempts: int, retry_after: float | None = None, *, rng: random.Random | None = None) -> float:
    """Seconds before the next attempt after `failed_attempts` failures (1-based), with jitter;
    a receiver's `Retry-After` is honoured (never earlier than it asks, at most a day)."""
    base = RETRY_DELAYS[min(failed_attempts, len(RETRY_DELAYS)) - 1]
    delay = base * (1 + (rng or random).uniform(-JITTER, JITTER))
    if retry_after is not None:
        delay = max(delay, min(retry_after, RETRY_AFTER_CAP))
    return delay


def parse_retry_after(value: str | None, now: dt.datetime) -> float | None:
    """`Retry-After` as seconds (delta-seconds or an HTTP date); None when absent or malformed."""
    if not value:
        return None
    value = value.strip()[:64]
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return max(0.0, (when - now).total_seconds())


def logto_signature(signing_key: str, body: bytes) -> str:
    """`logto-signature-sha-256`: hex HMAC-SHA256 of the body, keyed by the signing key's UTF-8."""
    return hmac.new(signing_key.encode(), body, hashlib.sha256).hexdigest()


def standard_secret(signing_key: str) -> str:
    """The Standard Webhooks secret of a hook: `whsec_` + base64 of the signing key's bytes."""
    return "whsec_" + base64.b64encode(signing_key.encode()).decode()


def standard_signature(signing_key: str, message_id: str, timestamp: int, body: bytes) -> str:
    """`webhook-signature`: `v1,` + base64 HMAC-SHA256 of `id.timestamp.body`."""
    signed = f"{message_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(signing_key.encode(), signed, hashlib.sha256).digest()).decode()


def request_headers(
    *, signing_key: str, custom: Mapping[str, str] | None, body: bytes, message_id: str, now: dt.datetime,
) -> dict[str, str]:
    """Logto's headers (§6.2: user-agent, then the hook's own, then its signature) and the
    Standard Webhooks ones, which a custom header cannot override, nor the client's framing."""
    headers: dict[str, str] = {"user-agent": USER_AGENT}
    for name, value in (custom or {}).items():
        if name.lower() not in CLIENT_OWNED_HEADERS:
            headers[name.lower()] = value
    timestamp = int(now.timestamp())
    if signing_key:
        headers["logto-signature-sha-256"] = logto_signature(signing_key, body)
    headers["content-type"] = "application/json"
    headers["webhook-id"] = message_id
    headers["webhook-timestamp"] = str(timestamp)
    if signing_key:
        headers["webhook-signature"] = standard_signature(signing_key, message_id, timestamp, body)
    return headers


class NewDelivery(msgspec.Struct, frozen=True):
    """An event turned into a delivery for one hook that selects it."""

    tenant_id: str
    hook_id: str
    event: str  # the hook event (Logto's name)
    source_event_id: str
    body: bytes
    max_attempts: int


class Outcome(msgspec.Struct, frozen=True):
    """What one attempt came to."""

    success: bool
    status_code: int | None = None
    body: str | None = None
    error: str | None = None
    retry_after: float | None = None

    def response(self) -> dict[str, Any] | None:
        """Logto's `response: {statusCode, body}`: JSON when it parses, else the text."""
        if self.status_code is None:
            return None
        body: Any = self.body
        if self.body:
            try:
                body = msgspec.json.decode(self.body)
            except msgspec.DecodeError:
                pass
        return {"statusCode": self.status_code, "body": body}


def log_payload(hook_id: str, event: str, body: str, result: str, response: Any, error: str | None) -> dict[str, Any]:
    """The `TriggerHook.<event>` log payload (§6.4)."""
    payload: dict[str, Any] = {
        "key": f"TriggerHook.{event}",
        "result": result,
        "hookId": hook_id,
        "hookRequest": {"body": msgspec.json.decode(body)},
    }
    if response is not None:
        payload["response"] = response
    if error is not None:
        payload["error"] = error
    return payload

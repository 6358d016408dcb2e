"""The gateway's signed word to a service: who the caller is, for exactly this request, now.

A service believes nothing because of where a request came from. The gateway adds one header
to every request it forwards:

    x-tessera-assertion: 1.<unix seconds>.<caller type>.<caller id, base64url>.<tenant, base64url>.<mac>

`mac` is HMAC-SHA256 (base64url) under the internal key (`TESSERA_INTERNAL_KEY`, shared by the
gateway and the services) over the request's method, its raw target (path and query, as sent),
its `x-request-id`, its `x-tessera-client-ip` (the client's address, which the gateway states and
services count rate limits by) and the other fields of the header, in one length-prefixed (msgpack)
message, so no field can be moved into another. A service verifies it before any handler runs and takes
the caller from it alone; an assertion is good for `MAX_AGE_SECONDS` (a few seconds of clock
skew either way), for one method and target. A request smuggled into a service, or sent to its
port by anything but the gateway, carries none and is refused.

The key: base64url (padding optional) or hex of at least 32 random bytes; several keys separated
by commas rotate without downtime (the first signs, any verifies).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import string
import time
from typing import Callable, Iterable

import msgspec

from tessera_events import SYSTEM, Actor
from tessera_kit.config import ConfigError

ASSERTION_HEADER = b"x-tessera-assertion"
# The client's address as the gateway saw it; believed because the assertion covers it.
CLIENT_IP_HEADER = b"x-tessera-client-ip"
VERSION = b"1"
MAX_AGE_SECONDS = 30
# Hosts' clocks drift a little: an assertion stamped slightly in the future is still good.
MAX_SKEW_SECONDS = 5
MIN_KEY_BYTES = 32
# Caller ids are short (21-character ids, a development user's name): an assertion longer than
# this is refused before it is parsed.
MAX_HEADER_BYTES = 1024
CALLER_TYPES = frozenset({b"user", b"application", b"system"})

_DOMAIN = b"tessera-assertion/1"
_HEX = frozenset(string.hexdigits)
_encode = msgspec.msgpack.Encoder().encode


def generate_key() -> str:
    """A fresh internal key, as `TESSERA_INTERNAL_KEY` takes it."""
    return base64.urlsafe_b64encode(secrets.token_bytes(MIN_KEY_BYTES)).rstrip(b"=").decode()


def parse_keys(value: str) -> tuple[bytes, ...]:
    """The keys of a `TESSERA_INTERNAL_KEY` value; ConfigError when missing or too short."""
    keys = []
    for text in (part.strip() for part in value.split(",")):
        if not text:
            continue
        if len(text) % 2 == 0 and set(text) <= _HEX:
            key = bytes.fromhex(text)
        else:
            try:
                key = base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
            except (binascii.Error, ValueError):
                raise ConfigError("TESSERA_INTERNAL_KEY: not base64url or hex") from None
        if len(key) < MIN_KEY_BYTES:
            raise ConfigError(f"TESSERA_INTERNAL_KEY: a key must be at least {MIN_KEY_BYTES} random bytes")
        keys.append(key)
    if not keys:
        raise ConfigError(
            "TESSERA_INTERNAL_KEY is not set: the gateway and every service need the same internal key "
            "(base64url or hex of at least 32 random bytes)")
    return tuple(keys)


def _b64(data: bytes) -> bytes:
    return base64.urlsafe_b64encode(data).rstrip(b"=")


def _unb64(data: bytes) -> bytes:
    return base64.urlsafe_b64decode(data + b"=" * (-len(data) % 4))


def _message(method: bytes, target: bytes, request_id: bytes, client: bytes, claims: bytes) -> bytes:
    return _encode((_DOMAIN, method, target, request_id, client, claims))


class AssertionSigner:
    """Signs assertions (the gateway; tests standing in for it)."""

    def __init__(self, internal_key: str, tenant_id: str = "default", *,
                 clock: Callable[[], float] = time.time):
        # The HMAC state after the key is absorbed, copied per request (cheaper than re-keying).
        self._mac = hmac.new(parse_keys(internal_key)[0], digestmod=hashlib.sha256)
        self.tenant_id = tenant_id
        self._tenant = _b64(tenant_id.encode())
        self._clock = clock

    def sign(self, method: str | bytes, target: bytes, caller: Actor, request_id: bytes,
             *, client: bytes = b"", issued_at: int | None = None) -> bytes:
        """The header value for `method target` (raw path and query) on behalf of `caller`, from
        the address `client` (sent as `x-tessera-client-ip`; empty: none stated)."""
        if isinstance(method, str):
            method = method.encode()
        stamp = int(self._clock()) if issued_at is None else issued_at
        claims = b"%s.%d.%s.%s.%s" % (VERSION, stamp, caller.type.encode(),
                                      _b64((caller.id or "").encode()), self._tenant)
        mac = self._mac.copy()
        mac.update(_message(method, target, request_id, client, claims))
        return claims + b"." + _b64(mac.digest())


class InvalidAssertion(Exception):
    """Why a request's assertion was refused (said in the 401's `data`)."""


class AssertionVerifier:
    """Checks a request's assertion and answers its caller and tenant (the services' middleware).

    A service serves the tenants it is configured for (`tenants`, the first being the default);
    an assertion naming any other is refused."""

    def __init__(self, internal_key: str, tenants: str | Iterable[str] = "default", *,
                 clock: Callable[[], float] = time.time):
        self.internal_key = internal_key  # for tests that sign as the gateway would
        names = (tenants,) if isinstance(tenants, str) else tuple(tenants)
        if not names:
            raise ConfigError("a service serves at least one tenant")
        self.tenant_id = names[0]
        self._macs = [hmac.new(key, digestmod=hashlib.sha256) for key in parse_keys(internal_key)]
        self._tenants = {_b64(name.encode()): name for name in names}
        self._clock = clock

    def verify(self, header: bytes | None, method: bytes, target: bytes, request_id: bytes,
               client: bytes = b"") -> Actor:
        return self.verify_request(header, method, target, request_id, client)[0]

    def verify_request(self, header: bytes | None, method: bytes, target: bytes,
                       request_id: bytes, client: bytes = b"") -> tuple[Actor, str]:
        """The caller and the tenant the gateway signed for this request (whose
        `x-tessera-client-ip` is `client`, empty when it has none)."""
        if not header:
            raise InvalidAssertion("the request carries no internal assertion")
        if len(header) > MAX_HEADER_BYTES:
            raise InvalidAssertion("the internal assertion is too long")
        claims, dot, signature = header.rpartition(b".")
        if not dot:
            raise InvalidAssertion("the internal assertion is malformed")
        message = _message(method, target, request_id, client, claims)
        for template in self._macs:
            mac = template.copy()
            mac.update(message)
            if hmac.compare_digest(_b64(mac.digest()), signature):
                break
        else:
            raise InvalidAssertion("the internal assertion's signature does not match this request")
        # Signed by a holder of the key: the fields are as the gateway wrote them.
        parts = claims.split(b".")
        if len(parts) != 5 or parts[0] != VERSION or not parts[1].isdigit() or parts[2] not in CALLER_TYPES:
            raise InvalidAssertion("the internal assertion is malformed")
        _, stamp, caller_type, caller_id, tenant = parts
        age = self._clock() - int(stamp)
        if age > MAX_AGE_SECONDS:
            raise InvalidAssertion("the internal assertion has expired")
        if age < -MAX_SKEW_SECONDS:
            raise InvalidAssertion("the internal assertion is issued in the future")
        tenant_id = self._tenants.get(tenant)
        if tenant_id is None:
            raise InvalidAssertion("the internal assertion is for another tenant")
        if caller_type == b"system":
            return SYSTEM, tenant_id
        try:
            identifier = _unb64(caller_id).decode()
        except (binascii.Error, ValueError):
            raise InvalidAssertion("the internal assertion is malformed") from None
        if not identifier:
            raise InvalidAssertion("the internal assertion names no caller")
        return Actor(type=caller_type.decode(), id=identifier), tenant_id


def request_target(scope: dict) -> bytes:
    """The raw target of an ASGI request (path and query) as it was sent and signed."""
    target: bytes = scope.get("raw_path") or scope["path"].encode()
    query: bytes = scope.get("query_string") or b""
    return target + b"?" + query if query else target

"""Custom domains as Logto 1.6 keeps them when no DNS provider (Cloudflare) is configured:
the hostname is stored with the one DNS record its owner must set — a CNAME to this
deployment's own host — and stays `PendingVerification`, since nothing can verify it.
No I/O here."""

from __future__ import annotations

import re
from typing import Annotated, Any
from urllib.parse import urlsplit

import msgspec
from msgspec import Meta

PENDING_VERIFICATION = "PendingVerification"
MAX_DOMAIN_LENGTH = 256  # Logto's domains.domain varchar(256)
# RFC 1123 host names: dot-separated labels of letters, digits and inner hyphens (1-63 chars).
_HOSTNAME = re.compile(r"^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")

# Logto's response fields (domainSelectFields), in its order.
RESPONSE_FIELDS = ("id", "domain", "status", "errorMessage", "dnsRecords")


class CreateDomain(msgspec.Struct):
    """Logto's `Domains.createGuard.pick({domain: true})`; other keys are dropped as zod does."""

    domain: Annotated[str, Meta(min_length=1, max_length=MAX_DOMAIN_LENGTH)]


def normalised_hostname(value: str) -> str | None:
    """The hostname in lower case, or None when it is not one (length capped before the regex)."""
    if len(value) > MAX_DOMAIN_LENGTH:
        return None
    hostname = value.lower()
    return hostname if _HOSTNAME.match(hostname) else None


def cname_target(endpoint: str) -> str:
    """Where a custom domain points: the host of this deployment's public endpoint."""
    return urlsplit(endpoint).hostname or endpoint


def dns_records(hostname: str, endpoint: str) -> list[dict[str, Any]]:
    return [{"type": "CNAME", "name": hostname, "value": cname_target(endpoint)}]


def response(row: dict[str, Any]) -> dict[str, Any]:
    return {name: row[name] for name in RESPONSE_FIELDS}

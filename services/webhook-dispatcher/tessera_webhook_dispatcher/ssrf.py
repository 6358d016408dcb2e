"""The SSRF guard: hook URLs may not reach loopback, private, link-local or metadata addresses.

Checked on the literal host at creation, and at delivery on every address a new connection
may go to (the sender's resolver: each connection resolves and checks anew, and connects
only to what was checked), so a name that re-resolves elsewhere (DNS rebinding) gains
nothing; a kept-alive connection stays with the peer that was checked when it opened.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

from tessera_kit.errors import RequestError, ValidationIssue, invalid_input

# Cloud metadata endpoints that are not in a private range (AWS/GCP/Azure use 169.254.169.254,
# which link-local covers; Alibaba uses 100.100.100.200; AWS's IPv6 one is fd00:ec2::254).
METADATA = {ipaddress.ip_address("100.100.100.200"), ipaddress.ip_address("fd00:ec2::254")}
METADATA_NAMES = {"metadata.google.internal", "metadata", "instance-data"}


class BlockedAddress(OSError):
    """The URL points where hooks may not go."""


def is_forbidden(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(address, ipaddress.IPv6Address):
        # IPv4 reached through IPv6 (mapped, or 6to4's 2002::/16) is judged as that IPv4.
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is not None:
            return is_forbidden(embedded)
        if address.is_site_local:  # fec0::/10, deprecated but still routed as private
            return True
    return (
        address in METADATA
        or address.is_loopback
        or address.is_private
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or (isinstance(address, ipaddress.IPv4Address) and address in ipaddress.ip_network("100.64.0.0/10"))
    )


def split_target(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of an http(s) URL; ValueError otherwise."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError("not an http(s) URL")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, parts.hostname, port


def check_url(url: str, *, allow_private: bool) -> None:
    """At creation: a literal address or a known metadata name is not forbidden (names are
    resolved at delivery). Logto stores any string as the URL (its own tests create hooks to
    `not_work_url`); such a hook fails at delivery with "RequestError: Invalid URL"."""
    if allow_private:
        return
    try:
        _, host, _ = split_target(url)
    except ValueError:
        return
    if host.lower().rstrip(".") in METADATA_NAMES:
        raise forbidden_target()
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return
    if is_forbidden(address):
        raise forbidden_target()


def forbidden_target() -> RequestError:
    return invalid_input("body", [ValidationIssue(
        "config.url", "custom", "The URL must not point to a loopback, private, link-local or metadata address")])


async def resolve_allowed(host: str, port: int, *, allow_private: bool) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """The addresses to connect to for `host`, every one of them checked. Raises
    BlockedAddress or OSError (DNS failure)."""
    try:
        literal = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        addresses = [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]
        if not addresses:
            raise OSError(f"{host} does not resolve")
    if not allow_private and any(is_forbidden(a) for a in addresses):
        raise BlockedAddress(f"{host} resolves to a forbidden address")
    return addresses

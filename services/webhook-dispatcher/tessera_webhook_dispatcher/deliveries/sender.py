"""One HTTP attempt: POST with aiohttp through a resolver that applies the SSRF guard to
every connection it opens, keep the answer.

aiohttp rather than httpx: a webhook costs a fraction of the CPU (its parser and writer are
compiled), and connections are kept alive per receiver. Its own DNS cache is off: each new
connection resolves through `_CheckedResolver`, which checks every address it returns, so
only checked peers are ever connected to; a kept-alive connection is reused only with the
peer it was opened to.

aiohttp (with yarl, attrs and ~80 modules, ~7 MB) is imported in a thread, not by the service's
first import: on the event loop its ~0.2 s of CPU held every event and answer of the service
(the bench's webhook p99 went from ~20 to ~200 ms when the first delivery imported it there).
And only once there is a hook to send to (a dispatcher without hooks never loads it): when the
scheduler starts if a hook exists, and in the request that creates one, which answers only once
it is imported (`ready`), so the first delivery is not late: Logto's own suite reads hook.stats
right after the sign-in that fires a hook it has just created. A replica that saw no hook at
start and created none imports it with its first delivery. tessera_kit.serve.import_declared
says why it goes through there.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import re
import socket
from typing import TYPE_CHECKING, Any, Mapping

from tessera_kit.serve import import_declared
from tessera_webhook_dispatcher.clock import Clock
from tessera_webhook_dispatcher.deliveries.domain import RESPONSE_BODY_CAP, Outcome, parse_retry_after
from tessera_webhook_dispatcher.ssrf import BlockedAddress, resolve_allowed, split_target

if TYPE_CHECKING:
    import aiohttp


# RFC 9110 §5.6.2 token: aiohttp writes any header name it is given, so `transfer-encoding `
# or `a: b` would reach the receiver as written (a lenient parser may frame the body by them).
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _sendable(text: str) -> bool:
    return text.isascii() and "\r" not in text and "\n" not in text and "\0" not in text


class _CheckedResolver:
    """The SSRF guard as a resolver: every address a name resolves to is checked. Plain, so a
    Sender exists without aiohttp; `_for_aiohttp` makes it one of aiohttp's resolvers."""

    def __init__(self, *, allow_private: bool) -> None:
        self.allow_private = allow_private

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET,
                      ) -> list[dict[str, Any]]:
        addresses = await resolve_allowed(host, port, allow_private=self.allow_private)
        # aiohttp's ResolveResult is a TypedDict: these dicts are that.
        return [dict(hostname=host, host=str(address), port=port,
                     family=socket.AF_INET6 if address.version == 6 else socket.AF_INET,
                     proto=0, flags=socket.AI_NUMERICHOST) for address in addresses]

    async def close(self) -> None:
        pass


@functools.cache
def _aiohttp_resolver_class() -> type:
    from aiohttp.abc import AbstractResolver

    class _ForAiohttp(AbstractResolver):
        def __init__(self, checked: _CheckedResolver) -> None:
            self.checked = checked

        async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET):
            return await self.checked.resolve(host, port, family)

        async def close(self) -> None:
            await self.checked.close()

    return _ForAiohttp


def _for_aiohttp(checked: _CheckedResolver):
    return _aiohttp_resolver_class()(checked)


def _import_aiohttp():
    aiohttp = import_declared("aiohttp")
    import_declared("yarl")
    return aiohttp


class Sender:
    def __init__(self, *, timeout: float, allow_private: bool, clock: Clock, max_connections: int = 256) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.clock = clock
        self._max_connections = max_connections
        self.resolver = _CheckedResolver(allow_private=allow_private)
        self._session: aiohttp.ClientSession | None = None
        self._imported: asyncio.Future | None = None

    def warm(self) -> None:
        """Import aiohttp now, in a thread (once)."""
        if self._imported is None:
            self._imported = asyncio.ensure_future(asyncio.to_thread(_import_aiohttp))
            self._imported.add_done_callback(self._forget_a_failed_import)

    def _forget_a_failed_import(self, imported: asyncio.Future) -> None:
        if imported.cancelled() or imported.exception() is not None:  # retrieved: not logged as lost
            self._imported = None  # the next delivery tries again

    async def _aiohttp(self):
        self.warm()
        return await asyncio.shield(self._imported)

    async def ready(self) -> None:
        """Return once aiohttp is imported (in a thread, the first time)."""
        await self._aiohttp()

    def _client(self, aiohttp) -> aiohttp.ClientSession:
        # Made on first use, inside the running loop (aiohttp binds a session to it).
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=_for_aiohttp(self.resolver), use_dns_cache=False,
                # As many connections as requests may be in flight, so a hook whose receiver
                # hangs never leaves the others waiting for a connection.
                limit=self._max_connections, limit_per_host=0,
            )
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False, auto_decompress=True, cookie_jar=aiohttp.DummyCookieJar(),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        try:
            return await asyncio.wait_for(self._post(url, headers, body), self.timeout)
        except asyncio.TimeoutError:
            return Outcome(False, error=f"TimeoutError: Timeout awaiting 'request' for {int(self.timeout * 1000)}ms")

    async def _post(self, url: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        aiohttp = await self._aiohttp()
        from yarl import URL  # aiohttp's, imported with it

        try:
            _, _, port = split_target(url)
            target = URL(url, encoded=False)
        except ValueError:
            return Outcome(False, error="RequestError: Invalid URL")
        # The host aiohttp connects to is yarl's, which normalises what urlsplit keeps as written
        # (fullwidth digits become an address): the literal check looks at that one.
        host = target.host
        if not host:
            return Outcome(False, error="RequestError: Invalid URL")
        if not all(len(name) <= 4096 and _TOKEN.fullmatch(name) for name in headers):
            return Outcome(False, error="RequestError: Header name must be a valid HTTP token")
        if not all(_sendable(value) for value in headers.values()):
            # A hook's header value that is not ASCII text (Logto stores any string) is not sent.
            return Outcome(False, error="RequestError: Invalid character in header content")
        try:
            ipaddress.ip_address(host)
        except ValueError:
            pass  # a name: the resolver checks each connection's addresses
        else:
            # aiohttp connects to a literal address without asking the resolver: check it here.
            try:
                await resolve_allowed(host, port, allow_private=self.allow_private)
            except BlockedAddress as exc:
                return Outcome(False, error=f"RequestError: {exc}")
        try:
            # No redirects: a 3xx is an answer (a failure), never a hop to an unchecked address.
            async with self._client(aiohttp).post(target, data=body, headers=dict(headers), allow_redirects=False) as response:
                kept = bytearray()
                while len(kept) < RESPONSE_BODY_CAP:
                    chunk = await response.content.read(RESPONSE_BODY_CAP - len(kept))
                    if not chunk:
                        break
                    kept.extend(chunk)
                status, reason = response.status, response.reason
                retry_after = response.headers.get("retry-after")
        except asyncio.TimeoutError:
            raise
        except aiohttp.ClientConnectorError as exc:
            blocked = exc.os_error if isinstance(exc.os_error, BlockedAddress) else None
            if blocked is not None:
                return Outcome(False, error=f"RequestError: {blocked}")
            return Outcome(False, error=f"RequestError: {type(exc).__name__}: {exc}"[:1000])
        except BlockedAddress as exc:
            return Outcome(False, error=f"RequestError: {exc}")
        except (aiohttp.ClientError, OSError) as exc:
            return Outcome(False, error=f"RequestError: {type(exc).__name__}: {exc}"[:1000])
        except (UnicodeEncodeError, ValueError):  # a header value the client still refuses
            return Outcome(False, error="RequestError: Invalid character in header content")
        text = kept.decode("utf-8", errors="replace")
        if 200 <= status < 300:
            return Outcome(True, status_code=status, body=text)
        return Outcome(
            False, status_code=status, body=text,
            error=f"HTTPError: Response code {status} ({reason})",
            retry_after=parse_retry_after(retry_after, self.clock.now()),
        )

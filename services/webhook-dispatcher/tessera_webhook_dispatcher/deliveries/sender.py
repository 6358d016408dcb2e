"""One HTTP attempt: resolve and check the address (SSRF guard), POST with httpx, keep the answer."""

from __future__ import annotations

import asyncio
from typing import Mapping

import httpx

from tessera_webhook_dispatcher.deliveries.domain import RESPONSE_BODY_CAP, Outcome, parse_retry_after
from tessera_webhook_dispatcher.clock import Clock
from tessera_webhook_dispatcher.ssrf import BlockedAddress, resolve_allowed, split_target


class Sender:
    def __init__(self, *, timeout: float, allow_private: bool, clock: Clock, max_connections: int = 256) -> None:
        self.timeout = timeout
        self.allow_private = allow_private
        self.clock = clock
        # No redirects: a 3xx is an answer (a failure), never a hop to an unchecked address.
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout), follow_redirects=False, trust_env=False,
            # As many connections as requests may be in flight, so a hook whose receiver hangs
            # never leaves the others waiting for a connection; idle ones are kept for reuse.
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
        )

    async def close(self) -> None:
        await self.client.aclose()

    async def post(self, url: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        try:
            return await asyncio.wait_for(self._post(url, headers, body), self.timeout)
        except (asyncio.TimeoutError, httpx.TimeoutException):
            return Outcome(False, error=f"TimeoutError: Timeout awaiting 'request' for {int(self.timeout * 1000)}ms")

    async def _post(self, url: str, headers: Mapping[str, str], body: bytes) -> Outcome:
        try:
            scheme, host, port = split_target(url)
            target = httpx.URL(url)
        except (ValueError, httpx.InvalidURL):
            return Outcome(False, error="RequestError: Invalid URL")
        try:
            address = await resolve_allowed(host, port, allow_private=self.allow_private)
        except BlockedAddress as exc:
            return Outcome(False, error=f"RequestError: {exc}")
        except OSError as exc:
            return Outcome(False, error=f"RequestError: getaddrinfo failed for {host}: {exc}")
        # Connect to the address that was checked; the name still goes in Host and TLS SNI.
        request_headers = {**headers, "host": target.netloc.decode("ascii")}
        extensions = {"sni_hostname": host} if scheme == "https" else {}
        try:
            async with self.client.stream(
                "POST", target.copy_with(host=address), content=body, headers=request_headers,
                extensions=extensions,
            ) as response:
                kept = bytearray()
                async for chunk in response.aiter_bytes():
                    kept.extend(chunk[: RESPONSE_BODY_CAP - len(kept)])
                    if len(kept) >= RESPONSE_BODY_CAP:
                        break
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            return Outcome(False, error=f"RequestError: {type(exc).__name__}: {exc}"[:1000])
        except UnicodeEncodeError:  # a hook's header value that is not ASCII cannot be sent
            return Outcome(False, error="RequestError: Invalid character in header content")
        text = kept.decode("utf-8", errors="replace")
        status = response.status_code
        if 200 <= status < 300:
            return Outcome(True, status_code=status, body=text)
        return Outcome(
            False, status_code=status, body=text,
            error=f"HTTPError: Response code {status} ({response.reason_phrase})",
            retry_after=parse_retry_after(response.headers.get("retry-after"), self.clock.now()),
        )

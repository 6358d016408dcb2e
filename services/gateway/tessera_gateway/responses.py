"""Sending the gateway's own (non-proxied) answers over raw ASGI."""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Sequence

import msgspec

from tessera_kit.errors import RequestError

Send = Callable[[dict[str, Any]], Awaitable[None]]
Headers = Sequence[tuple[bytes, bytes]]

JSON = b"application/json; charset=utf-8"
TEXT = b"text/plain; charset=utf-8"


async def send_bytes(send: Send, status: int, body: bytes = b"", content_type: bytes | None = None,
                     headers: Headers = ()) -> None:
    # RFC 9110 §8.6: no Content-Length on a 204.
    all_headers = [*headers] if status == 204 else [(b"content-length", str(len(body)).encode()), *headers]
    if content_type is not None:
        all_headers.append((b"content-type", content_type))
    await send({"type": "http.response.start", "status": status, "headers": all_headers})
    await send({"type": "http.response.body", "body": body})


async def send_json(send: Send, status: int, value: Any, headers: Headers = ()) -> None:
    await send_bytes(send, status, msgspec.json.encode(value), JSON, headers)


async def send_error(send: Send, error: RequestError, headers: Headers = ()) -> None:
    """Logto's error body: `{"message", "code", "data"?}` with the error's status."""
    await send_json(send, error.status, error.to_body(), headers)


async def send_not_found(send: Send, headers: Headers = ()) -> None:
    """Koa's default for a path no router knows: a plain-text 404."""
    await send_bytes(send, 404, b"Not Found", TEXT, headers)

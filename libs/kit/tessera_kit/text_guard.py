"""Text that PostgreSQL cannot store never reaches a handler.

A NUL character (`%00` in a path or query, `\\u0000` in JSON, `%00` in a form) or bytes that are
not UTF-8 answer 400 at the edge, in Logto's format (`guard.invalid_input`), or OAuth's
(`invalid_request`) under `/oidc`. Without this rule each store would raise
`CharacterNotInRepertoireError` (a 500), and an event carrying the text would be dead-lettered by
its consumers: anyone could make audit entries go missing.

Bodies are scanned as they stream past, chunk by chunk (nothing is buffered); a match raises
from `receive`, inside the framework's error handling, before the handler sees the body.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote_to_bytes

import msgspec
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from tessera_kit.errors import RequestError

_NUL = b"\x00"
_JSON_NUL = b"\\u0000"
_FORM_NUL = b"%00"
# C0 controls and DEL: no path segment of ours (ids are [0-9a-z]) contains one, and echoed
# into a header (Link, Location) they would end the response with a 500.
_PATH_FORBIDDEN = frozenset(range(0x20)) | {0x7F}


class InvalidText(RequestError):
    """`guard.invalid_input`: text with NUL characters or invalid UTF-8."""

    def __init__(self, where: str):
        super().__init__(
            "guard.invalid_input",
            400,
            data={"issues": [{"code": "invalid_string", "message": f"Invalid text in {where}",
                              "path": []}], "name": "ZodError"},
            details=f"{where} holds a NUL character or is not valid UTF-8",
            type=where,  # the message's {{type}}
        )
        self.where = where


def _is_valid_text(raw: bytes) -> bool:
    if _NUL in raw:
        return False
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_path(raw_path: bytes) -> None:
    decoded = unquote_to_bytes(raw_path)
    if not _is_valid_text(decoded) or not _PATH_FORBIDDEN.isdisjoint(decoded):
        raise InvalidText("path")


def check_query(query_string: bytes) -> None:
    if query_string and not _is_valid_text(unquote_to_bytes(query_string.replace(b"+", b" "))):
        raise InvalidText("query")


def _body_markers(headers: list[tuple[bytes, bytes]]) -> tuple[bytes, ...]:
    for name, value in headers:
        if name == b"content-type":
            media = value.split(b";", 1)[0].strip().lower()
            if media == b"application/json" or media.endswith(b"+json"):
                return (_NUL, _JSON_NUL)
            if media == b"application/x-www-form-urlencoded":
                return (_NUL, _FORM_NUL)
            return (_NUL,) if media.startswith(b"text/") else ()
    return (_NUL,)


def _scanning(receive: Receive, markers: tuple[bytes, ...]) -> Receive:
    overlap = max(len(m) for m in markers) - 1
    tail = b""

    async def scanned() -> Message:
        nonlocal tail
        message = await receive()
        body = message.get("body") if message["type"] == "http.request" else None
        if body:
            window = tail + body
            for marker in markers:
                if marker in window:
                    raise InvalidText("body")
            tail = window[-overlap:] if overlap else b""
        return message

    return scanned


def error_body(path: str, error: InvalidText) -> dict[str, Any]:
    if path.startswith("/oidc"):
        return {"error": "invalid_request",
                "error_description": f"the {error.where} holds a NUL character or invalid UTF-8"}
    return error.to_body()


async def _refuse(send: Send, path: str, error: InvalidText) -> None:
    body = msgspec.json.encode(error_body(path, error))
    await send({"type": "http.response.start", "status": 400, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def text_guard_middleware(app: ASGIApp) -> ASGIApp:
    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        raw_path = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
        try:
            check_path(raw_path)
            check_query(scope.get("query_string", b""))
        except InvalidText as error:
            await _refuse(send, scope["path"], error)
            return
        markers = _body_markers(scope["headers"]) if scope["method"] not in ("GET", "HEAD") else ()
        receive = _scanning(receive, markers) if markers else receive
        await app(scope, receive, send)

    return middleware

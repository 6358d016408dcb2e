"""HTTP pieces shared by every service: middleware, exception handlers, list answers."""

from __future__ import annotations

import asyncio
import base64
import hashlib
from typing import Any, Sequence

import msgspec
from litestar import Request, Response
from litestar.exceptions import (
    HTTPException,
    MethodNotAllowedException,
    NotFoundException,
    ValidationException,
)
from litestar.types import ASGIApp, Message, Receive, Scope, Send

from tessera_events import SYSTEM
from tessera_kit.assertion import ASSERTION_HEADER, CLIENT_IP_HEADER, AssertionVerifier, InvalidAssertion, request_target
from tessera_kit.context import actor_var, new_request_id, request_id_var, tenant_var
from tessera_kit.errors import RequestError, ValidationIssue, invalid_input
from tessera_kit.logging import get_logger
from tessera_kit.pagination import Page, pagination_headers
from tessera_kit.text_guard import InvalidText, error_body

log = get_logger(__name__)

REQUEST_ID_HEADER = b"x-request-id"
# Answered without an assertion: the orchestrator's probes and Prometheus's scrape do not go
# through the gateway (the gateway forwards none of these paths; NetworkPolicies limit who
# reaches a pod, and /metrics holds counts, never data).
HEALTH_PATHS = frozenset({"/health/live", "/health/ready", "/metrics"})


# How much of a body an answer sent early waits for (see `answer_after_the_body`).
DRAIN_LIMIT = 4 * 1024 * 1024
DRAIN_SECONDS = 5.0  # in all: a peer dribbling its body holds nothing longer
DRAINS_AT_ONCE = 64  # beyond: answered at once with `Connection: close`


def answer_after_the_body(app: ASGIApp) -> ASGIApp:
    """Every answer goes out after its request's body was read to the end (bounded).

    Many answers are decided before the body is read: a 401 for a missing assertion, a 503 when
    shedding load, a 413 on the declared length, a 400 for no interaction. granian closes a
    keep-alive connection whose request body was left unread, after the answer and without
    saying so (no `Connection: close`). The gateway then keeps that connection for the next
    request, which meets the close and fails (a 503 for a POST, which it may not resend), and a
    close with unread input resets the connection, which can take the answer with it.

    So such an answer is held until the app has returned (its load-shedding slot is free by
    then), the rest of the body is read, then the answer goes out. The wait is bounded: past
    DRAIN_LIMIT bytes or DRAIN_SECONDS (a peer dribbling its body, and that may be anyone who
    reaches the port: a 401 waits too), with DRAINS_AT_ONCE already waiting, or when the
    client waits for `100 Continue` before sending its body, the answer says
    `Connection: close` instead, so nobody reuses the connection."""
    draining = 0

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        nonlocal draining
        if scope["type"] != "http" or not _has_body(scope["headers"]):
            await app(scope, receive, send)
            return
        ended = False
        held: list[Message] = []

        async def noting_the_end() -> Message:
            nonlocal ended
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body"):
                ended = True
            return message

        async def holding_an_early_answer(message: Message) -> None:
            if held or (message["type"] == "http.response.start" and not ended):
                held.append(message)
            else:
                await send(message)

        await app(scope, noting_the_end, holding_an_early_answer)
        if not held:
            return
        if draining < DRAINS_AT_ONCE and not _expects_continue(scope["headers"]):
            draining += 1
            try:
                read = 0
                async with asyncio.timeout(DRAIN_SECONDS):
                    while read <= DRAIN_LIMIT and not ended:
                        read += len((await noting_the_end()).get("body", b""))
            except (TimeoutError, RuntimeError):  # RuntimeError: the client already left
                pass
            finally:
                draining -= 1
        start = held[0]
        if not ended and not any(name.lower() == b"connection" for name, _ in start.get("headers", ())):
            held[0] = {**start, "headers": [*start.get("headers", ()), (b"connection", b"close")]}
        for message in held:
            await send(message)

    return middleware


def _expects_continue(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    return any(name == b"expect" for name, _ in headers)


def _has_body(headers: Sequence[tuple[bytes, bytes]]) -> bool:
    for name, value in headers:
        if name == b"content-length":
            return value.strip() not in (b"0", b"")
        if name == b"transfer-encoding":
            return True
    return False


def context_middleware(app: ASGIApp, verifier: AssertionVerifier) -> ASGIApp:
    """In front of the whole service (routing included): refuse a request without the gateway's
    valid assertion (401), bind the request id, and the caller and tenant the assertion names,
    for handlers, stores, logs and events, echo the request id, give GET answers Logto's ETag and honour If-None-Match."""

    async def middleware(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            # No service speaks WebSocket, and none would be signed: refuse the handshake.
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = dict(scope["headers"])
        raw_request_id = headers.get(REQUEST_ID_HEADER) or b""
        request_id = raw_request_id.decode("latin-1")[:64] or new_request_id()
        if scope["path"] in HEALTH_PATHS:
            actor, tenant = SYSTEM, verifier.tenant_id
        else:
            try:
                actor, tenant = verifier.verify_request(headers.get(ASSERTION_HEADER), scope["method"].encode(),
                                                        request_target(scope), raw_request_id,
                                                        headers.get(CLIENT_IP_HEADER, b""))
            except InvalidAssertion as refusal:
                log.warning("request refused", reason=str(refusal), method=scope["method"],
                            path=scope["path"][:200], request_id=request_id)
                await _send_unauthorized(send, str(refusal), request_id)
                return
        rid_token = request_id_var.set(request_id)
        actor_token = actor_var.set(actor)
        tenant_token = tenant_var.set(tenant)
        try:
            if scope["method"] == "GET":
                await _with_etag(app, scope, receive, send, request_id, headers.get(b"if-none-match"))
            else:
                await app(scope, receive, _echo_request_id(send, request_id))
        finally:
            request_id_var.reset(rid_token)
            actor_var.reset(actor_token)
            tenant_var.reset(tenant_token)

    return middleware


async def _send_unauthorized(send: Send, reason: str, request_id: str) -> None:
    body = msgspec.json.encode(RequestError("auth.unauthorized", 401, data=reason).to_body())
    await send({"type": "http.response.start", "status": 401, "headers": [
        (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
        (REQUEST_ID_HEADER, request_id.encode()),
    ]})
    await send({"type": "http.response.body", "body": body})


def _echo_request_id(send: Send, request_id: str) -> Send:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
        await send(message)

    return wrapped


def etag_of(body: bytes) -> str:
    """The strong ETag koa-etag computes: `"<length hex>-<sha1 base64, 27 chars>"`."""
    digest = base64.b64encode(hashlib.sha1(body).digest()).decode()[:27]
    return f'"{len(body):x}-{digest}"'


async def _with_etag(app, scope, receive, send, request_id: str, if_none_match: bytes | None) -> None:
    start: Message | None = None
    chunks: list[bytes] = []

    async def buffered(message: Message) -> None:
        nonlocal start
        if message["type"] == "http.response.start":
            start = message
            return
        if message["type"] != "http.response.body" or start is None:
            await send(message)
            return
        chunks.append(message.get("body", b""))
        if message.get("more_body"):
            return
        body = b"".join(chunks)
        headers = [*start.get("headers", []), (b"x-request-id", request_id.encode())]
        status = start["status"]
        if status == 200:
            etag = etag_of(body).encode()
            headers.append((b"etag", etag))
            if if_none_match and etag in [t.strip() for t in if_none_match.split(b",")]:
                headers = [(k, v) for k, v in headers if k.lower() not in (b"content-length", b"content-type")]
                await send({**start, "status": 304, "headers": headers})
                await send({"type": "http.response.body", "body": b""})
                return
        await send({**start, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    await app(scope, receive, buffered)


def _logto_json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    return Response(content=body, status_code=status, headers=headers, media_type="application/json")


def request_error_handler(_: Request, exc: RequestError) -> Response:
    return _logto_json(exc.status, exc.to_body(), getattr(exc, "headers", None))


_SOURCES = {"body": "body", "query": "query", "path": "params", "header": "headers", "cookie": "cookies"}


def _issue(item: dict[str, Any]) -> ValidationIssue:
    message = str(item.get("message", "Invalid value"))
    if message.startswith("Expected"):
        code = "invalid_type"
        message = message.replace("`", "") + "."
    elif message.startswith("Object missing required field"):
        code = "invalid_type"
        message = "Required"
    else:
        code = "custom"
    key = str(item.get("key") or "")
    if "missing required field" in str(item.get("message", "")):
        field = str(item["message"]).split("`")[1] if "`" in str(item["message"]) else ""
        key = f"{key}.{field}".strip(".") if field else key
    return ValidationIssue(key, code, message)


def validation_error_handler(_: Request, exc: ValidationException) -> Response:
    extra = exc.extra if isinstance(exc.extra, list) else []
    source = _SOURCES.get(str(extra[0].get("source", "body")), "body") if extra else "body"
    issues = [_issue(item) for item in extra if isinstance(item, dict)] or [
        ValidationIssue("", "custom", exc.detail or "Invalid input")
    ]
    return request_error_handler(_, invalid_input(source, issues))


def http_exception_handler(_: Request, exc: HTTPException) -> Response:
    if isinstance(exc, NotFoundException):
        # Unknown routes: Koa's default 404 with a text body.
        return Response(content="Not Found", status_code=404, media_type="text/plain")
    if isinstance(exc, MethodNotAllowedException):
        return Response(content="Method Not Allowed", status_code=405, media_type="text/plain",
                        headers=exc.headers)
    if exc.status_code == 400:
        # A body that is not JSON reaches validation as {} in Logto; say so the same way.
        return request_error_handler(_, invalid_input("body", [ValidationIssue("", "custom", str(exc.detail))]))
    body = {"message": str(exc.detail), "code": "request.general"}
    return _logto_json(exc.status_code, body, headers=exc.headers)


def internal_error_handler(_: Request, exc: Exception) -> Response:
    log.exception("unhandled error", error=repr(exc))
    return _logto_json(500, {"message": "Internal server error."})


def too_deep_handler(_: Request, exc: RecursionError) -> Response:
    """A JSON body nested deeper than the interpreter's stack (msgspec, the json module) is a
    bad body, not a server error; where else a RecursionError comes from, it is logged."""
    log.warning("recursion limit reached, answered as invalid input", error=repr(exc)[:200])
    issue = ValidationIssue("", "custom", "Nested too deeply")
    return request_error_handler(_, invalid_input("body", [issue]))


def invalid_text_handler(request: Request, exc: InvalidText) -> Response:
    return _logto_json(400, error_body(request.url.path, exc))


EXCEPTION_HANDLERS = {
    InvalidText: invalid_text_handler,
    RequestError: request_error_handler,
    ValidationException: validation_error_handler,
    HTTPException: http_exception_handler,
    RecursionError: too_deep_handler,
    Exception: internal_error_handler,
}


def public_origin(request: Request) -> tuple[str, str]:
    """(scheme, host) as the client saw them, from the gateway's forwarded headers."""
    scheme = request.headers.get("x-forwarded-proto") or request.url.scheme
    host = request.headers.get("x-forwarded-host") or request.headers.get("host") or request.url.netloc
    return scheme, host


def paginated(request: Request, page: Page | None, items: Sequence[Any], total: int) -> Response:
    """A list answer; with a page, Logto's `Total-Number` and `Link` headers."""
    if page is None:
        return Response(content=items)
    scheme, host = public_origin(request)
    headers = pagination_headers(
        page, total, scheme=scheme, host=host, path=request.url.path,
        query=list(request.query_params.multi_items()),
    )
    return Response(content=items, headers=headers)


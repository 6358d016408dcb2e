"""A stand-in upstream service for the gateway's tests (raw ASGI, served by granian).

Started as `python -m tessera_kit.serve fake_upstream:app` with FAKE_SERVICE=<name>. Routes:
- GET  /api/users            a list with Total-Number, Link, ETag, two Set-Cookie, Location, ...
- GET  /api/logs/stream      ?size=N&pause=S: N bytes in 64 KiB chunks, pausing S seconds after
                             the first chunk (proves the gateway passes chunks on as they come)
- GET  /oidc/jwks            the JWKS last PUT there (the tests make the keys); 401 without the
                             gateway's assertion, as a real service would answer
- PUT  /oidc/jwks            replace it (key rotation); GET /oidc/jwks/fetches counts the GETs
- GET  /oidc/slow            ?seconds=S: answers after S seconds
- GET  /schema/openapi.json  a small OpenAPI document naming this service (assertion required)
- anything else              echo: the service name, method, path, query, headers, the caller the
                             gateway's assertion names (verified with TESSERA_INTERNAL_KEY, as the
                             kit does) or why it was refused, and the body's length, sha256 and
                             arrival (chunks, seconds between first and last)
- GET  /test/seen            ?marker=M: how many requests this process received whose path
                             contains M (the smuggling tests: nothing the gateway did not send)
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from urllib.parse import parse_qs

from tessera_kit.assertion import ASSERTION_HEADER, CLIENT_IP_HEADER, AssertionVerifier, InvalidAssertion, request_target

SERVICE = os.environ.get("FAKE_SERVICE", "fake")
_state: dict[str, object] = {"jwks": {"keys": []}, "jwks_fetches": 0}
_paths_seen: list[str] = []
_verifier = AssertionVerifier(os.environ["TESSERA_INTERNAL_KEY"], ["default", "admin"])


def _caller(scope) -> dict[str, object]:
    headers = dict(scope["headers"])
    try:
        actor, tenant = _verifier.verify_request(headers.get(ASSERTION_HEADER), scope["method"].encode(),
                                                 request_target(scope), headers.get(b"x-request-id") or b"",
                                                 headers.get(CLIENT_IP_HEADER, b""))
    except InvalidAssertion as refused:
        return {"refused": str(refused)}
    return {"type": actor.type, "id": actor.id, "tenant": tenant}


async def _read_body(receive) -> tuple[bytes, int, float]:
    chunks: list[bytes] = []
    first = last = None
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            break
        body = message.get("body", b"")
        if body:
            now = time.monotonic()
            first = first if first is not None else now
            last = now
            chunks.append(body)
        if not message.get("more_body"):
            break
    spread = (last - first) if first is not None and last is not None else 0.0
    return b"".join(chunks), len(chunks), spread


async def _answer(send, status: int, body: bytes, headers: list[tuple[bytes, bytes]] | None = None,
                  content_type: bytes = b"application/json") -> None:
    all_headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": all_headers + (headers or [])})
    await send({"type": "http.response.body", "body": body})


def _json(value: object) -> bytes:
    return json.dumps(value).encode()


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    method, path = scope["method"], scope["path"]
    query = {k: v[0] for k, v in parse_qs(scope["query_string"].decode()).items()}
    if path == "/test/seen":
        marker = query["marker"]
        await _answer(send, 200, _json({"seen": sum(marker in seen for seen in _paths_seen)}))
        return
    _paths_seen.append(path)

    if method == "GET" and path == "/health/ready":
        await _answer(send, 200, _json({"status": "ready"}))
    elif method == "GET" and path == "/api/users":
        await _answer(send, 200, _json([{"id": "u1"}, {"id": "u2"}]), [
            (b"total-number", b"42"),
            (b"link", b'<http://public.example/api/users?page=1>; rel="first"'),
            (b"link", b'<http://public.example/api/users?page=3>; rel="last"'),
            (b"etag", b'"abc-123"'),
            (b"set-cookie", b"first=1; Path=/; HttpOnly"),
            (b"set-cookie", b"second=2; Path=/; Expires=Wed, 21 Oct 2037 07:28:00 GMT"),
            (b"location", b"/somewhere/else"),
            (b"cache-control", b"no-store"),
            (b"x-custom", b"kept"),
        ])
    elif method == "GET" and path == "/api/logs/stream":
        size, pause = int(query.get("size", "0")), float(query.get("pause", "0"))
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"application/octet-stream")]})
        sent, chunk = 0, b"x" * 65536
        while sent < size:
            part = chunk[: size - sent]
            await send({"type": "http.response.body", "body": part, "more_body": True})
            if sent == 0 and pause:
                await asyncio.sleep(pause)
            sent += len(part)
        await send({"type": "http.response.body", "body": b""})
    elif path in ("/oidc/jwks", "/schema/openapi.json") and method == "GET" and "refused" in _caller(scope):
        await _answer(send, 401, _json({"code": "auth.unauthorized", "data": _caller(scope)["refused"]}))
    elif path == "/oidc/jwks" and method == "GET":
        _state["jwks_fetches"] = int(_state["jwks_fetches"]) + 1  # type: ignore[arg-type]
        await _answer(send, 200, _json(_state["jwks"]))
    elif path == "/oidc/jwks" and method == "PUT":
        body, _, _ = await _read_body(receive)
        _state["jwks"] = json.loads(body)
        await _answer(send, 204, b"")
    elif path == "/oidc/jwks/fetches":
        await _answer(send, 200, _json({"fetches": _state["jwks_fetches"]}))
    elif path == "/oidc/slow":
        await asyncio.sleep(float(query.get("seconds", "1")))
        await _answer(send, 200, _json({"slow": True}))
    elif path == "/schema/openapi.json":
        await _answer(send, 200, _json({
            "openapi": "3.1.0",
            "info": {"title": f"Tessera {SERVICE}", "version": "0.1.0"},
            "paths": {f"/api/{SERVICE}-things": {"get": {"operationId": f"List{SERVICE}Things",
                                                           "tags": [SERVICE],
                                                           "responses": {"200": {"description": "OK"}}}}},
            "components": {"schemas": {f"{SERVICE.capitalize()}Thing": {"type": "object"}}},
            "tags": [{"name": SERVICE}],
        }))
    else:
        body, chunks, spread = await _read_body(receive)
        await _answer(send, 200, _json({
            "service": SERVICE,
            "method": method,
            "path": path,
            "rawPath": scope.get("raw_path", b"").decode("latin-1"),
            "query": scope["query_string"].decode("latin-1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
            "caller": _caller(scope),
            "bodyLength": len(body),
            "bodySha256": hashlib.sha256(body).hexdigest(),
            "bodyChunks": chunks,
            "bodySpreadSeconds": spread,
        }), [(b"x-request-id", b"upstream-made-this-up")])

"""`GET /api/swagger.json`: the services' OpenAPI documents merged into one.

Each service serves its own document at `<service url>/schema/openapi.json` (the kit's
OpenAPIConfig). The gateway asks every configured service at once, merges what comes back
(paths and components; a service that is down or slow is simply left out), serves it as
OpenAPI 3.0 as Logto does (the services write 3.1: `openapi30.py` converts), and keeps the result
for a few seconds, so the Console opening the page does not fan out to every service each time.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import msgspec

from tessera_gateway.openapi30 import to_openapi_30
from tessera_gateway.routes import RouteTable
from tessera_kit.logging import get_logger

log = get_logger(__name__)

SPEC_PATH = "/schema/openapi.json"

# The gateway's own routes, so the merged document describes the whole public API.
GATEWAY_PATHS: dict[str, Any] = {
    "/api/status": {"get": {
        "operationId": "GetStatus", "tags": ["Status"], "summary": "Health check",
        "responses": {"204": {"description": "The service is up."}},
    }},
    "/api/swagger.json": {"get": {
        "operationId": "GetSwaggerJson", "tags": ["Swagger.json"],
        "summary": "The OpenAPI document of the Management API",
        "responses": {"200": {"description": "This document."}},
    }},
    "/api/asyncapi.json": {"get": {
        "operationId": "GetAsyncApiJson", "tags": ["Swagger.json"],
        "summary": "The AsyncAPI document of the domain events",
        "responses": {"200": {"description": "The event catalogue."}},
    }},
}


def merge_documents(documents: list[dict[str, Any]], *, version: str = "0.1.0") -> dict[str, Any]:
    """One document from many: paths merged per method, components per name (first one wins),
    tags deduplicated by name."""
    paths: dict[str, dict[str, Any]] = {path: dict(item) for path, item in GATEWAY_PATHS.items()}
    components: dict[str, dict[str, Any]] = {}
    tags: dict[str, dict[str, Any]] = {}
    for document in documents:
        for path, item in (document.get("paths") or {}).items():
            paths.setdefault(path, {}).update(item)
        for section, entries in (document.get("components") or {}).items():
            if isinstance(entries, dict):
                merged = components.setdefault(section, {})
                for name, value in entries.items():
                    merged.setdefault(name, value)
        for tag in document.get("tags") or []:
            if isinstance(tag, dict) and "name" in tag:
                tags.setdefault(tag["name"], tag)
    merged_document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "Tessera",
            "version": version,
            "description": "Management API of Tessera, compatible with Logto Core 1.6.",
        },
        "paths": dict(sorted(paths.items())),
    }
    _document_authentication(merged_document["paths"], components)
    _document_links(merged_document["paths"])
    if components:
        merged_document["components"] = components
    if tags:
        merged_document["tags"] = sorted(tags.values(), key=lambda t: t["name"])
    return merged_document


BEARER = "ManagementApiToken"
_AUTH_ERRORS = {
    "401": "No token, or not one this tenant issued (`auth.authorization_header_missing`, "
           "`auth.unauthorized`).",
    "403": "The token lacks the Management API's scope (`auth.forbidden`).",
}
_METHODS = ("get", "put", "post", "delete", "patch")


def _document_authentication(paths: dict[str, dict[str, Any]], components: dict[str, dict[str, Any]]) -> None:
    """The gateway checks the Management API's token (§1.8), so it says so: a bearer scheme,
    and 401 / 403 in Logto's error format on every operation of a managed path."""
    table = RouteTable()
    error_schema = {"$ref": "#/components/schemas/LogtoError"}
    managed = False
    for path, item in paths.items():
        route = table.match(path)
        if route is None or not route.management:
            continue
        for method in _METHODS:
            operation = item.get(method)
            if not isinstance(operation, dict):
                continue
            managed = True
            operation["security"] = [{BEARER: []}]
            responses = dict(operation.get("responses") or {})
            for status, description in _AUTH_ERRORS.items():
                responses.setdefault(status, {
                    "description": description, "content": {"application/json": {"schema": error_schema}}})
            operation["responses"] = dict(sorted(responses.items()))
    if managed:
        components.setdefault("securitySchemes", {})[BEARER] = {
            "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
            "description": "An access token for the Management API resource with scope `all` "
                           "(client credentials of a machine-to-machine application).",
        }
        components.setdefault("schemas", {}).setdefault("LogtoError", {
            "type": "object", "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "data": {},
                           "details": {"type": "string"}}})


def _document_links(paths: dict[str, dict[str, Any]]) -> None:
    """OpenAPI links from each create operation to what it created: a POST on a collection
    (`/api/roles`, `/api/resources/{resourceId}/scopes`) answers the entity with its `id`, which
    fills the next segment's parameter of every path below it (`/api/roles/{id}`,
    `/api/roles/{id}/scopes`); the collection's own parameters are passed on from the request.
    Generated clients and schemathesis' stateful phase follow them; the services answer with
    free-form objects, from which no tool can infer that the identifier is `id`."""
    for source_path, item in paths.items():
        create = item.get("post")
        if not source_path.startswith("/api/") or not isinstance(create, dict) \
                or "{" in source_path.rsplit("/", 1)[-1]:
            continue
        success = [status for status, response in (create.get("responses") or {}).items()
                   if status in ("200", "201") and _answers_an_object(response)]
        if not success:
            continue
        inherited = {segment[1:-1] for segment in source_path.split("/") if segment.startswith("{")}
        links: dict[str, Any] = {}
        for target_path, target_item in paths.items():
            rest = target_path[len(source_path):].split("/") if target_path.startswith(source_path + "/") else []
            if len(rest) < 2 or not (rest[1].startswith("{") and rest[1].endswith("}")):
                continue
            if any(segment.startswith("{") for segment in rest[2:]):
                continue  # another identifier the creation does not give
            created = rest[1][1:-1]
            if created != "id" and not created.endswith("Id"):
                continue  # `{target}`, `{languageTag}`: not the identifier of what was created
            for method in _METHODS:
                target = target_item.get(method)
                if not isinstance(target, dict) or not target.get("operationId"):
                    continue
                parameters = {name: f"$request.path.{name}" for name in sorted(inherited)}
                parameters[created] = "$response.body#/id"
                links[target["operationId"]] = {"operationId": target["operationId"], "parameters": parameters}
        if links:
            for status in success:
                create["responses"][status] = {**create["responses"][status], "links": links}


def _answers_an_object(response: Any) -> bool:
    """An entity comes back (an object), not a list or nothing (role and user assignments)."""
    schema = ((response.get("content") or {}).get("application/json") or {}).get("schema") \
        if isinstance(response, dict) else None
    return isinstance(schema, dict) and ("$ref" in schema or schema.get("type") == "object")


class OpenApiAggregator:
    def __init__(self, upstream_urls: dict[str, str], http: httpx.AsyncClient, *, cache_seconds: float = 10.0,
                 fetch_timeout: float = 3.0):
        # Several services may share one process (and URL); ask each URL once.
        self._urls = sorted(set(upstream_urls.values()))
        self._http = http
        self._cache_seconds = cache_seconds
        self._fetch_timeout = fetch_timeout
        self._cached: bytes | None = None
        self._cached_at = float("-inf")
        self._lock = asyncio.Lock()

    async def document(self) -> bytes:
        """The merged document, JSON-encoded."""
        if self._cached is not None and time.monotonic() - self._cached_at < self._cache_seconds:
            return self._cached
        async with self._lock:  # one rebuild at a time; the others get its result
            if self._cached is None or time.monotonic() - self._cached_at >= self._cache_seconds:
                documents = await asyncio.gather(*(self._fetch(url) for url in self._urls))
                merged = to_openapi_30(merge_documents([d for d in documents if d is not None]))
                self._cached = msgspec.json.encode(merged)
                self._cached_at = time.monotonic()
        return self._cached

    async def _fetch(self, base_url: str) -> dict[str, Any] | None:
        try:
            response = await self._http.get(base_url + SPEC_PATH, timeout=self._fetch_timeout)
            response.raise_for_status()
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            log.info("openapi document skipped", url=base_url, error=str(error))
            return None
        return document if isinstance(document, dict) else None

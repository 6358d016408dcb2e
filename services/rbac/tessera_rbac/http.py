"""HTTP answers rbac shares across its contexts."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Response

from tessera_kit.errors import RequestError
from tessera_kit.openapi_docs import error_response
from tessera_rbac.search import invalid_search


def created_text() -> Response:
    """Koa's answer when a route sets 201 without a body (POST /roles/:id/users, ...)."""
    return Response(content="Created", status_code=201, media_type="text/plain")


def ok_text() -> Response:
    """Koa's answer when a route sets 200 without a body (PUT /users/:id/roles)."""
    return Response(content="OK", status_code=200, media_type="text/plain")


def _text(status: str, text: str) -> dict[str, Any]:
    return {status: {"description": f"Koa's text `{text}` (no body of its own).",
                     "content": {"text/plain": {"schema": {"type": "string", "enum": [text]}}}}}


_NOT_MACHINE_TO_MACHINE = {"422": error_response(
    "Only machine-to-machine applications have roles (`application.invalid_type`).")}

# What the kit's OpenAPI rules cannot know (its `documented_operations`): the routes answering
# `created_text()` / `ok_text()` (Litestar would say JSON), an application's roles, which
# answer 422 for an application that is not machine-to-machine, reads included, and a new
# role's unknown `scopeIds` (404 with no id in the path; found by the schema fuzzer).
DOCUMENTED_OPERATIONS: dict[str, dict[str, Any]] = {
    "CreateRole": {"responses": {"404": error_response(
        "A `scopeIds` entry names no scope (`entity.not_exists_with_id`); no role is created.")}},
    **{name: {"responses": _text("201", "Created")} for name in (
        "CreateRoleUsers", "CreateRoleApplications", "CreateUserRoles")},
    "CreateApplicationRoles": {"responses": {**_text("201", "Created"), **_NOT_MACHINE_TO_MACHINE}},
    "ReplaceUserRoles": {"responses": _text("200", "OK")},
    "ReplaceApplicationRoles": {"responses": {**_text("200", "OK"), **_NOT_MACHINE_TO_MACHINE}},
    "ListApplicationRoles": {"responses": _NOT_MACHINE_TO_MACHINE},
    "DeleteApplicationRole": {"responses": _NOT_MACHINE_TO_MACHINE},
}


async def fetch_searched(conn: asyncpg.Connection, sql: str, *args: Any) -> list[asyncpg.Record]:
    """Run a list query that embeds a client's search: a malformed regular expression or
    SIMILAR TO pattern is the client's mistake (400), not a server error."""
    try:
        return await conn.fetch(sql, *args)
    except (asyncpg.InvalidRegularExpressionError, asyncpg.InvalidEscapeSequenceError) as exc:
        raise invalid_search(str(exc)) from exc


def not_exists(name: str) -> RequestError:
    """PATCH of a missing row (Logto's `UPDATE ... RETURNING` helper): singular table name."""
    return RequestError("entity.not_exists", 404, name=name)


def not_found() -> RequestError:
    """DELETE that matched nothing, a missing link, or a user by id (Logto §1.3)."""
    return RequestError("entity.not_found", 404)

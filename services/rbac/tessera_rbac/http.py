"""HTTP answers rbac shares across its contexts."""

from __future__ import annotations

from typing import Any

import asyncpg
from litestar import Response

from tessera_kit.errors import RequestError
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


# What the routes answering `created_text()` / `ok_text()` say in the OpenAPI document (the
# kit's `documented_operations`): Litestar would say JSON.
TEXT_ANSWERS: dict[str, dict[str, Any]] = {
    **{name: {"responses": _text("201", "Created")} for name in (
        "CreateRoleUsers", "CreateRoleApplications", "CreateUserRoles", "CreateApplicationRoles")},
    **{name: {"responses": _text("200", "OK")} for name in ("ReplaceUserRoles", "ReplaceApplicationRoles")},
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

"""Logto's error format: `{code, message, data?, details?}` with Logto's codes and texts.

Domain code raises `RequestError("entity.not_exists_with_id", 404, name="roles", id=x)`;
the handlers installed by the app factory turn it, Litestar's validation errors,
unknown routes and unexpected exceptions into Logto-shaped responses.
"""

from __future__ import annotations

import re
from typing import Any

from tessera_kit.error_phrases import ERROR_PHRASES

_PLACEHOLDER = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def render_message(code: str, values: dict[str, Any]) -> str:
    template = ERROR_PHRASES.get(code, code)
    return _PLACEHOLDER.sub(lambda m: str(values.get(m[1], m[0])), template)


class RequestError(Exception):
    """An error the client should see, with Logto's code and an HTTP status."""

    def __init__(
        self,
        code: str,
        status: int = 400,
        *,
        data: Any = None,
        details: str | None = None,
        **interpolation: Any,
    ) -> None:
        self.code = code
        self.status = status
        self.data = data
        self.details = details
        self.message = render_message(code, interpolation)
        super().__init__(f"{code}: {self.message}")

    def to_body(self) -> dict[str, Any]:
        body: dict[str, Any] = {"message": self.message, "code": self.code}
        if self.data is not None:
            body["data"] = self.data
        if self.details is not None:
            body["details"] = self.details
        return body

    @classmethod
    def from_body(cls, status: int, body: dict[str, Any]) -> "RequestError":
        """Rebuild an error received from another service (rpc), keeping its text."""
        error = cls(body.get("code", "request.general"), status, data=body.get("data"),
                    details=body.get("details"))
        error.message = body.get("message", error.message)
        data = error.data
        if status == 429 and isinstance(data, dict) and isinstance(data.get("retryAfter"), int):
            # A rate limit refused by the service asked (tessera_kit.ratelimit): the caller's
            # answer keeps its Retry-After.
            error.headers = {"retry-after": str(data["retryAfter"])}  # type: ignore[attr-defined]
        return error


class ValidationIssue(tuple):
    """(path, issue code, message) — one line of `details`."""

    __slots__ = ()

    def __new__(cls, path: str, code: str, message: str):
        return super().__new__(cls, (path, code, message))

    def line(self) -> str:
        path, code, message = self
        return f'Error in key path "{path}": ({code}) {message}'


def invalid_input(source: str, issues: list[ValidationIssue]) -> RequestError:
    """`guard.invalid_input` for a bad body, query or params (Logto §1.2)."""
    data = {
        "issues": [{"code": code, "message": message, "path": path.split(".") if path else []}
                   for path, code, message in issues],
        "name": "ZodError",
    }
    return RequestError(
        "guard.invalid_input",
        400,
        data=data,
        details="\n".join(issue.line() for issue in issues),
        type=source,
    )


def not_found(name: str, id: str) -> RequestError:
    """GET by id of a missing entity (`entity.not_exists_with_id`, name = table name)."""
    return RequestError("entity.not_exists_with_id", 404, name=name, id=id)


def service_unavailable(service: str) -> RequestError:
    return RequestError("service.unavailable", 503, service=service)

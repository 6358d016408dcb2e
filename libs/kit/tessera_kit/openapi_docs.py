"""What every service's OpenAPI document says about errors, and what a service declares itself.

Litestar documents a 400 as its own `{status_code, detail, extra}`; our services answer Logto's
`{code, message, data?, details?}` (errors.py, http.py). So, for every operation under `/api`:
every 4xx is Logto's error (`LogtoError`), and the statuses the kit itself answers are listed:
400 for any request (the text guard, validation), 404 for an id in the path that names nothing,
413 for a body over the service's cap, 422 for a write Logto refuses (a name in use, a rule).
The gateway adds 401/403 to the Management API (it checks the token; see its openapi.py).
`/oidc` answers OAuth's errors, which identity declares. A service adds or replaces whole
operation fragments (parameters, request body, responses) by operation id
(`ServiceSpec.documented_operations`), for routes that read their input themselves.
"""

from __future__ import annotations

from typing import Any, Mapping

from litestar.openapi.spec import Components, OpenAPI

LOGTO_ERROR = "LogtoError"
LOGTO_ERROR_REF = {"$ref": f"#/components/schemas/{LOGTO_ERROR}"}
LOGTO_ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "Logto's error: a stable code, a human message and, for validation, the issues.",
    "required": ["code", "message"],
    "properties": {
        "code": {"type": "string", "description": "For example `entity.not_exists_with_id`."},
        "message": {"type": "string"},
        "data": {"description": "Details that depend on the code (for validation: `issues`)."},
        "details": {"type": "string"},
    },
}
_WRITES = ("post", "put", "patch")
_METHODS = ("get", "put", "post", "delete", "patch", "options", "head", "trace")
KIT_STATUSES = {
    "400": "Invalid input: a parameter or body that fails validation, or text that is not valid "
           "(NUL, invalid UTF-8) (`guard.invalid_input`).",
    "404": "Nothing has the id in the path (`entity.not_exists_with_id`).",
    "413": "The request body is larger than this surface accepts.",
    "422": "The write breaks a rule or a uniqueness constraint (for example a name in use).",
}


def error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": LOGTO_ERROR_REF}}}


def document_operations(openapi: OpenAPI, declared: Mapping[str, Mapping[str, Any]]) -> None:
    """Logto's error format and the kit's statuses on every `/api` operation, then each
    service's own declarations (which win). Changes the OpenAPI object in place."""
    for path, item in (openapi.paths or {}).items():
        for method in _METHODS:
            operation = getattr(item, method, None)
            if operation is None:
                continue
            if path.startswith("/api/"):
                _document_errors(path, method, operation)
            fragment = declared.get(operation.operation_id or "")
            if fragment:
                _apply(operation, fragment)
    if openapi.components is None:
        openapi.components = Components()
    openapi.components.schemas = {**(openapi.components.schemas or {}), LOGTO_ERROR: LOGTO_ERROR_SCHEMA}


def _document_errors(path: str, method: str, operation: Any) -> None:
    responses = {str(status): response for status, response in (operation.responses or {}).items()}
    for status in list(responses):
        if status.startswith("4"):  # Litestar's own error shape: never what we answer
            responses[status] = error_response(KIT_STATUSES.get(status, "A refused request."))
    wanted = ["400"]
    if "{" in path:
        wanted.append("404")
    if operation.request_body is not None or method in _WRITES:
        wanted.append("413")
    if method in _WRITES:
        wanted.append("422")
    for status in wanted:
        responses.setdefault(status, error_response(KIT_STATUSES[status]))
    operation.responses = dict(sorted(responses.items()))


def _apply(operation: Any, fragment: Mapping[str, Any]) -> None:
    """A raw OpenAPI fragment over Litestar's operation: Litestar serialises plain dicts as they
    are, so services write the document's own words."""
    if "parameters" in fragment:
        operation.parameters = list(fragment["parameters"])
    if "requestBody" in fragment:
        operation.request_body = fragment["requestBody"]
    if "responses" in fragment:
        responses = dict(operation.responses or {})
        if fragment.get("replaceResponses"):
            responses = {}
        responses.update({str(k): v for k, v in fragment["responses"].items()})
        operation.responses = dict(sorted(responses.items()))
    if "description" in fragment:
        operation.description = fragment["description"]
    if "summary" in fragment:
        operation.summary = fragment["summary"]

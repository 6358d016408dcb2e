"""Reading OAuth parameters: the query (GET) or the body (POST), urlencoded — or JSON when
`Content-Type` is exactly `application/json`, as Logto accepts (logto-behaviour.md §5.1). Any
other content type of a POST is oidc-provider's `invalid_request`."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl

import msgspec
from litestar import Request
from litestar.exceptions.http_exceptions import RequestEntityTooLarge

from tessera_identity.oidc.errors import OAuthError, invalid_request

FORM = "application/x-www-form-urlencoded"
# RFC 8707 §2: `resource` may be repeated; every other parameter must not (RFC 6749 §3.1, §3.2).
REPEATABLE = frozenset({"resource"})
# RFC 6749 §3.3 scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")


class Params:
    def __init__(self, items: list[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for name, value in items:
            self._values.setdefault(name, []).append(value)

    def get(self, name: str) -> str | None:
        """One value; an empty value counts as absent (as oidc-provider treats them)."""
        values = self._values.get(name)
        if not values:
            return None
        if len(values) > 1 and name not in REPEATABLE:
            raise invalid_request(f"'{name}' parameter must not be provided multiple times")
        return values[0] or None

    def all(self, name: str) -> list[str]:
        return [v for v in self._values.get(name, []) if v]

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise invalid_request(f"missing required parameter '{name}'")
        return value

    def __contains__(self, name: str) -> bool:
        return bool(self.all(name))

    def as_dict(self) -> dict[str, str]:
        """Single-valued view for storage and logs (a repeated `resource` joined by spaces)."""
        return {k: " ".join(v) for k, v in self._values.items() if any(v)}

    def names(self) -> list[str]:
        return list(self._values)


def _from_json(body: bytes) -> list[tuple[str, str]]:
    try:
        data = msgspec.json.decode(body) if body else {}
    # msgspec raises UnicodeDecodeError for bytes that are not UTF-8, RecursionError for
    # nesting deeper than the interpreter's stack: both are a bad body, not a server error.
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise invalid_request("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise invalid_request("body must be a JSON object")
    items: list[tuple[str, str]] = []
    for name, value in data.items():
        values = value if isinstance(value, list) else [value]
        for v in values:
            if isinstance(v, bool):
                v = "true" if v else "false"
            if isinstance(v, (str, int, float)):
                items.append((name, str(v)))
            elif v is not None:
                raise invalid_request(f"'{name}' must be a string")
    return items


async def read_params(request: Request, *, query_too: bool = False) -> Params:
    items: list[tuple[str, str]] = []
    if request.method in ("GET", "HEAD") or query_too:
        items.extend(request.query_params.multi_items())
    if request.method == "POST":
        try:
            body = await request.body()
        except RequestEntityTooLarge:  # over the route's cap: refused unread
            raise OAuthError("invalid_request", "request body too large", status=413) from None
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "application/json":
            items.extend(_from_json(body))
        elif content_type and content_type != FORM:
            # oidc-provider's selective body parser, worded as it is (with Logto's JSON exception).
            path = request.url.path.removeprefix("/oidc") or "/"
            raise invalid_request(f"only {FORM} content-type bodies are supported on POST {path}")
        elif body:
            try:
                items.extend(parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False))
            except UnicodeDecodeError:
                raise invalid_request("body is not valid UTF-8") from None
    return Params(items)


def check_scope_syntax(scope: str | None) -> None:
    for token in (scope or "").split(" "):
        if token and not _SCOPE_TOKEN.match(token):
            raise OAuthError("invalid_scope", "scope contains characters outside RFC 6749 §3.3")

"""Request validation the way Logto's zod guards answer (§1.2, §1.10).

A `Guard` reads one JSON object (the body), collects every issue with zod's issue codes
and messages, and raises `guard.invalid_input` with all of them at the end. Unknown keys
are dropped silently, as zod objects do. Values come back as plain Python values; a key
that was absent comes back as `ABSENT`, so "not given" and `null` stay different.
"""

from __future__ import annotations

import re
from typing import Any, Iterable
from urllib.parse import parse_qsl

import msgspec
from litestar import Request

from tessera_kit.errors import ValidationIssue, invalid_input
from tessera_kit.regexes import EMAIL, PASSWORD, PHONE, USERNAME, matches  # noqa: F401  (Logto §1.10)


class _Absent:
    __slots__ = ()

    def __repr__(self) -> str:
        return "ABSENT"

    def __bool__(self) -> bool:
        return False


ABSENT: Any = _Absent()

# A native app's redirect URI may use a reverse-domain scheme (`io.logto.app:/callback`).
MOBILE_SCHEME = re.compile(r"[a-z][\d_a-z]*(\.[\d_a-z]+)+:", re.ASCII)

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)", re.DOTALL)
_SPECIAL_SCHEMES = frozenset({"http", "https", "ws", "wss", "ftp", "file"})
_FORBIDDEN_HOST = re.compile(r"[\x00-\x20#%/:<>?@\[\\\]^|]")


def is_url(value: str) -> bool:
    """Close to WHATWG `new URL(value)` succeeding (zod's `.url()`): a scheme, and for
    http(s)-like schemes an authority with a valid host and port."""
    value = value.strip("\x00- ")
    match = _SCHEME.fullmatch(value)
    if not match or any(c in value for c in "\t\n\r"):
        return False
    scheme, rest = match[1].lower(), match[2]
    if scheme not in _SPECIAL_SCHEMES:
        return True
    if scheme == "file":
        return True
    rest = rest.replace("\\", "/").lstrip("/")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host_port = authority.rsplit("@", 1)[-1]
    if host_port.startswith("["):  # IPv6 literal
        end = host_port.find("]")
        if end < 0:
            return False
        host, port = host_port[: end + 1], host_port[end + 1:].removeprefix(":")
        if not re.fullmatch(r"\[[0-9A-Fa-f:.]+\]", host):
            return False
    else:
        host, _, port = host_port.partition(":")
        if not host or _FORBIDDEN_HOST.search(host):
            return False
    return port == "" or (port.isdigit() and int(port) <= 65535)


def is_web_url(value: str) -> bool:
    """An http(s) URL: what may be stored to be shown (an avatar), where `javascript:` or
    `data:` would run or fake content."""
    return is_url(value) and re.match(r"https?://", value.strip("\x00- "), re.IGNORECASE) is not None


def is_web_or_mobile_redirect_uri(value: str, *, allow_custom_scheme: bool) -> bool:
    """Logto's redirect URI rule: an http(s) URL, or (native apps) a reverse-domain scheme."""
    if is_url(value) and re.match(r"https?://", value, re.IGNORECASE):
        return True
    if not allow_custom_scheme:
        return False
    match = _SCHEME.fullmatch(value)
    return bool(match) and is_url(value) and bool(MOBILE_SCHEME.fullmatch(match[1] + ":"))


def type_name(value: Any) -> str:
    """zod's name for what it received."""
    if value is ABSENT:
        return "undefined"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "unknown"


async def read_object(request: Request) -> dict[str, Any]:
    """The request body as an object. Logto (koa-body) reads JSON and urlencoded bodies and
    treats a missing body as `{}`; a body that is not an object fails the guard."""
    raw = await request.body()
    if not raw.strip():
        return {}
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("application/x-www-form-urlencoded"):
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        body = msgspec.json.decode(raw)
    # msgspec raises UnicodeDecodeError for bytes that are not UTF-8, RecursionError for
    # nesting deeper than the interpreter's stack: both are a bad body, not a server error.
    except (msgspec.DecodeError, UnicodeDecodeError, RecursionError):
        raise invalid_input("body", [ValidationIssue("", "custom", "Invalid JSON")]) from None
    if not isinstance(body, dict):
        raise invalid_input(
            "body", [ValidationIssue("", "invalid_type", f"Expected object, received {type_name(body)}")]
        )
    return body


class Guard:
    """Checks the fields of one object; `done()` raises every issue found, as zod does."""

    def __init__(self, data: dict[str, Any], source: str = "body", prefix: str = "") -> None:
        self.data = data
        self.source = source
        self.prefix = prefix
        self.issues: list[ValidationIssue] = []

    def _path(self, key: str) -> str:
        return f"{self.prefix}.{key}" if self.prefix else key

    def issue(self, key: str, code: str, message: str) -> None:
        self.issues.append(ValidationIssue(self._path(key), code, message))

    def _present(self, key: str, required: bool, nullable: bool, expected: str) -> tuple[bool, Any]:
        """(True, value) when there is a value to check; else what the field comes back as."""
        value = self.data.get(key, ABSENT)
        if value is ABSENT:
            if required:
                self.issue(key, "invalid_type", "Required")
            return False, ABSENT
        if value is None:
            if not nullable:
                self.issue(key, "invalid_type", f"Expected {expected}, received null")
            return False, None if nullable else ABSENT
        return True, value

    def string(
        self, key: str, *, required: bool = False, nullable: bool = False, min_length: int | None = None,
        max_length: int | None = None, pattern: re.Pattern[str] | None = None, url: bool = False,
        or_empty: bool = False,
    ) -> Any:
        """zod `string()` with `.min/.max/.regex/.url`; `or_empty` adds `.or(literal(''))`,
        which turns any failure into zod's `invalid_union`."""
        present, value = self._present(key, required, nullable, "string")
        if not present:
            return value
        if or_empty:
            if value == "":
                return ""
            if not isinstance(value, str) or (max_length is not None and len(value) > max_length) \
                    or (pattern and not matches(pattern, value)) or (url and not is_url(value)):
                self.issue(key, "invalid_union", "Invalid input")
                return ABSENT
            return value
        if not isinstance(value, str):
            self.issue(key, "invalid_type", f"Expected string, received {type_name(value)}")
            return ABSENT
        ok = True
        if min_length is not None and len(value) < min_length:
            self.issue(key, "too_small", f"String must contain at least {min_length} character(s)")
            ok = False
        if max_length is not None and len(value) > max_length:
            self.issue(key, "too_big", f"String must contain at most {max_length} character(s)")
            ok = False
        # Over its cap a value is never matched: no regex runs on an unbounded string.
        if ok and pattern is not None and not matches(pattern, value):
            self.issue(key, "invalid_string", "Invalid")
            ok = False
        if url and not is_url(value):
            self.issue(key, "invalid_string", "Invalid url")
            ok = False
        return value if ok else ABSENT

    def boolean(self, key: str, *, required: bool = False) -> Any:
        present, value = self._present(key, required, False, "boolean")
        if not present:
            return value
        if not isinstance(value, bool):
            self.issue(key, "invalid_type", f"Expected boolean, received {type_name(value)}")
            return ABSENT
        return value

    def number(self, key: str, *, integer: bool = False, minimum: float | None = None,
               maximum: float | None = None) -> Any:
        present, value = self._present(key, False, False, "number")
        if not present:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.issue(key, "invalid_type", f"Expected number, received {type_name(value)}")
            return ABSENT
        if integer and not float(value).is_integer():
            self.issue(key, "invalid_type", "Expected integer, received float")
            return ABSENT
        if minimum is not None and value < minimum:
            self.issue(key, "too_small", f"Number must be greater than or equal to {minimum:g}")
            return ABSENT
        if maximum is not None and value > maximum:
            self.issue(key, "too_big", f"Number must be less than or equal to {maximum:g}")
            return ABSENT
        return value

    def object(self, key: str, *, required: bool = False) -> Any:
        present, value = self._present(key, required, False, "object")
        if not present:
            return value
        if not isinstance(value, dict):
            self.issue(key, "invalid_type", f"Expected object, received {type_name(value)}")
            return ABSENT
        return value

    def nested(self, key: str, value: dict[str, Any]) -> "Guard":
        """A guard for an object inside this one; its issues count as this guard's."""
        child = Guard(value, self.source, self._path(key))
        child.issues = self.issues
        return child

    def string_array(self, key: str, check: Any = None, message: str = "Invalid url",
                     code: str = "invalid_string", *, required: bool = False) -> Any:
        """An array of strings; `check(item) -> bool` validates each item."""
        present, value = self._present(key, required, False, "array")
        if not present:
            return value
        if not isinstance(value, list):
            self.issue(key, "invalid_type", f"Expected array, received {type_name(value)}")
            return ABSENT
        ok = True
        for index, item in enumerate(value):
            if not isinstance(item, str):
                self.issue(f"{key}.{index}", "invalid_type", f"Expected string, received {type_name(item)}")
                ok = False
            elif check is not None and not check(item):
                self.issue(f"{key}.{index}", code, message)
                ok = False
        return value if ok else ABSENT

    def enum(self, key: str, options: Iterable[str], *, required: bool = False) -> Any:
        options = tuple(options)
        expected = " | ".join(f"'{o}'" for o in options)
        present, value = self._present(key, required, False, expected)
        if not present:
            return value
        if value not in options:
            self.issue(key, "invalid_enum_value",
                       f"Invalid enum value. Expected {expected}, received '{value}'")
            return ABSENT
        return value

    def done(self) -> None:
        if self.issues:
            raise invalid_input(self.source, self.issues)

"""The interaction API's request bodies (Logto §4.2), checked as Logto's zod guards do:
unknown keys are dropped, a failure is 400 `guard.invalid_input` with the issue's path.

Payloads stay plain dicts with Logto's camelCase keys: they are stored and logged as is.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

from tessera_kit.errors import RequestError, ValidationIssue, invalid_input
from tessera_kit.regexes import (  # noqa: F401
    CODE_MAX_LENGTH,
    EMAIL,
    IDENTIFIER_MAX_LENGTH,
    PASSWORD,
    PASSWORD_MAX_LENGTH,
    PASSWORD_MIN_LENGTH,
    PHONE,
    USERNAME,
    matches,
)

EVENTS = ("SignIn", "Register", "ForgotPassword")
URL_MAX_LENGTH = 2048
# Every string the API reads, capped before anything (a regex above all) looks at it.
MAX_LENGTH = {
    "username": IDENTIFIER_MAX_LENGTH, "email": IDENTIFIER_MAX_LENGTH, "phone": IDENTIFIER_MAX_LENGTH,
    "password": PASSWORD_MAX_LENGTH, "verificationCode": CODE_MAX_LENGTH, "connectorId": IDENTIFIER_MAX_LENGTH,
    "state": URL_MAX_LENGTH, "redirectUri": URL_MAX_LENGTH,
}


Payload = dict[str, Any]


def media_type_of(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def read_body(raw: bytes, content_type: str | None) -> Any:
    """koa-body: JSON or urlencoded; a missing or unreadable body counts as `{}`. JSON must
    say so (`application/json`): JSON sent as `text/plain` is what a cross-site form can post
    without asking, so any other type is 415."""
    if not raw:
        return {}
    media_type = media_type_of(content_type)
    if media_type == "application/x-www-form-urlencoded":
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    is_json = media_type == "application/json" or (media_type.startswith("application/") and media_type.endswith("+json"))
    if not is_json:
        raise RequestError("guard.mime_type_not_allowed", 415)
    try:
        return json.loads(raw)
    except (ValueError, RecursionError):  # RecursionError: nesting deeper than the stack allows
        return {}


def _fail(path: str, code: str, message: str):
    return invalid_input("body", [ValidationIssue(path, code, message)])


def _object(value: Any, path: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise _fail(path, "invalid_type", f"Expected object, received {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "boolean", int: "number", float: "number", str: "string", list: "array",
            dict: "object"}.get(type(value), "unknown")


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def parse_event(body: Any, path: str = "event") -> str:
    value = _object(body, "").get("event")
    if value not in EVENTS:
        raise _fail(path, "invalid_enum_value" if value is not None else "invalid_type",
                    "Invalid enum value. Expected 'SignIn' | 'Register' | 'ForgotPassword'"
                    if value is not None else "Required")
    return value


def check_lengths(value: Mapping[str, Any], path: str = "") -> None:
    """400 `too_big` for any known field longer than its cap, before any shape or regex."""
    issues = [ValidationIssue(_join(path, name), "too_big", f"String must contain at most {limit} character(s)")
              for name, limit in MAX_LENGTH.items()
              if isinstance(value.get(name), str) and len(value[name]) > limit]
    if issues:
        raise invalid_input("body", issues)


def _string(value: Any, min_length: int = 1) -> bool:
    return isinstance(value, str) and len(value) >= min_length


def _matches(value: Any, pattern: re.Pattern[str]) -> bool:
    return matches(pattern, value)


# Logto's identifier payload guards, in the order its union tries them; the first that
# matches wins and its keys alone are kept.
def _identifier_shapes(v: Mapping[str, Any]) -> Payload | None:
    if _string(v.get("username")) and _string(v.get("password")):
        return {"username": v["username"], "password": v["password"]}
    if _string(v.get("email")) and _string(v.get("password")):
        return {"email": v["email"], "password": v["password"]}
    if _string(v.get("phone")) and _string(v.get("password")):
        return {"phone": v["phone"], "password": v["password"]}
    if _matches(v.get("email"), EMAIL) and _string(v.get("verificationCode")):
        return {"email": v["email"], "verificationCode": v["verificationCode"]}
    if _matches(v.get("phone"), PHONE) and _string(v.get("verificationCode")):
        return {"phone": v["phone"], "verificationCode": v["verificationCode"]}
    if isinstance(v.get("connectorId"), str) and isinstance(v.get("connectorData"), Mapping):
        return {"connectorId": v["connectorId"], "connectorData": dict(v["connectorData"])}
    if isinstance(v.get("connectorId"), str) and _matches(v.get("email"), EMAIL):
        return {"connectorId": v["connectorId"], "email": v["email"]}
    if isinstance(v.get("connectorId"), str) and _matches(v.get("phone"), PHONE):
        return {"connectorId": v["connectorId"], "phone": v["phone"]}
    return None


def parse_identifier(value: Any, path: str = "") -> Payload:
    check_lengths(_object(value, path), path)
    shape = _identifier_shapes(value)
    if shape is None:
        raise _fail(path, "invalid_union", "Invalid input")
    return shape


PROFILE_RULES: dict[str, re.Pattern[str] | None] = {
    "username": USERNAME, "email": EMAIL, "phone": PHONE, "connectorId": None, "password": PASSWORD,
}


def parse_profile(value: Any, path: str = "") -> Payload:
    profile = _object(value, path)
    check_lengths(profile, path)
    parsed: Payload = {}
    issues: list[ValidationIssue] = []
    for name, pattern in PROFILE_RULES.items():
        if name not in profile:
            continue
        item = profile[name]
        if not isinstance(item, str):
            issues.append(ValidationIssue(_join(path, name), "invalid_type",
                                          f"Expected string, received {_kind(item)}"))
        elif pattern is not None and not matches(pattern, item):
            issues.append(ValidationIssue(_join(path, name), "invalid_string", "Invalid"))
        else:
            parsed[name] = item
    if issues:
        raise invalid_input("body", issues)
    return parsed


def parse_put_interaction(body: Any) -> tuple[str, Payload | None, Payload | None]:
    event = parse_event(body)
    identifier = body.get("identifier")
    profile = body.get("profile")
    return (
        event,
        parse_identifier(identifier, "identifier") if identifier is not None else None,
        parse_profile(profile, "profile") if profile is not None else None,
    )


def parse_code_request(body: Any) -> Payload:
    """`{email}` or `{phone}` (POST verification/verification-code)."""
    v = _object(body, "")
    check_lengths(v)
    if _matches(v.get("email"), EMAIL):
        return {"email": v["email"]}
    if _matches(v.get("phone"), PHONE):
        return {"phone": v["phone"]}
    raise _fail("", "invalid_union", "Invalid input")


def parse_social_authorization(body: Any) -> Payload:
    """`{connectorId, state, redirectUri}`; emptiness of state or redirectUri is the route's
    `session.insufficient_info`, a non-empty redirectUri must be an http(s) URL."""
    v = _object(body, "")
    issues = [ValidationIssue(name, "invalid_type", "Required" if name not in v else
                              f"Expected string, received {_kind(v.get(name))}")
              for name in ("connectorId", "state", "redirectUri") if not isinstance(v.get(name), str)]
    if issues:
        raise invalid_input("body", issues)
    check_lengths(v)
    redirect_uri = v["redirectUri"]
    if redirect_uri:
        parts = urlsplit(redirect_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise _fail("redirectUri", "invalid_string", "Invalid url")
    return {"connectorId": v["connectorId"], "state": v["state"], "redirectUri": redirect_uri}


def parse_code_verification(body: Any) -> tuple[Payload, str]:
    """`{email, verificationCode}` or `{phone, verificationCode}` (POST /verification-codes/verify)."""
    target = parse_code_request(body)
    code = body.get("verificationCode")
    if not _string(code):
        raise _fail("verificationCode", "invalid_type" if not isinstance(code, str) else "too_small",
                    "Required" if code is None else "String must contain at least 1 character(s)")
    return target, code

"""The interaction API's request bodies (Logto §4.2), checked as Logto's zod guards do:
unknown keys are dropped, a failure is 400 `guard.invalid_input` with the issue's path.

Payloads stay plain dicts with Logto's camelCase keys: they are stored and logged as is.
"""

from __future__ import annotations

import json
import re
from typing import Any, Mapping
from urllib.parse import parse_qsl, urlsplit

from tessera_kit.errors import ValidationIssue, invalid_input
from tessera_kit.regexes import EMAIL, PASSWORD, PASSWORD_MIN_LENGTH, PHONE, USERNAME  # noqa: F401

EVENTS = ("SignIn", "Register", "ForgotPassword")


Payload = dict[str, Any]


def read_body(raw: bytes, content_type: str | None) -> Any:
    """koa-body: JSON or urlencoded; a missing or unreadable body counts as `{}`."""
    if not raw:
        return {}
    if content_type and "application/x-www-form-urlencoded" in content_type:
        return dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    try:
        return json.loads(raw)
    except ValueError:
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


def _string(value: Any, min_length: int = 1) -> bool:
    return isinstance(value, str) and len(value) >= min_length


def _matches(value: Any, pattern: re.Pattern[str]) -> bool:
    return isinstance(value, str) and pattern.fullmatch(value) is not None


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
    shape = _identifier_shapes(_object(value, path))
    if shape is None:
        raise _fail(path, "invalid_union", "Invalid input")
    return shape


PROFILE_RULES: dict[str, re.Pattern[str] | None] = {
    "username": USERNAME, "email": EMAIL, "phone": PHONE, "connectorId": None, "password": PASSWORD,
}


def parse_profile(value: Any, path: str = "") -> Payload:
    profile = _object(value, path)
    parsed: Payload = {}
    issues: list[ValidationIssue] = []
    for name, pattern in PROFILE_RULES.items():
        if name not in profile:
            continue
        item = profile[name]
        if not isinstance(item, str):
            issues.append(ValidationIssue(_join(path, name), "invalid_type",
                                          f"Expected string, received {_kind(item)}"))
        elif pattern is not None and not pattern.fullmatch(item):
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

"""Users: the shapes Logto answers with, the guards of each route, what changed. No I/O."""

from __future__ import annotations

from typing import Any, Mapping

from tessera_events.contracts.identity import Identity, UserInfo
from tessera_events.identity import UserSnapshot
from tessera_identity.validation import ABSENT, EMAIL, PASSWORD, PHONE, USERNAME, Guard, is_web_url
from tessera_kit.regexes import PASSWORD_MAX_LENGTH

# Column widths of the users table: longer values are a 400, not a database error.
IDENTIFIER_MAX = 128
NAME_MAX = 128
AVATAR_MAX = 2048

# API (camelCase) field -> column, for the profile fields PATCH /users/:userId may set.
PROFILE_COLUMNS = {
    "username": "username",
    "primaryEmail": "primary_email",
    "primaryPhone": "primary_phone",
    "name": "name",
    "avatar": "avatar",
    "customData": "custom_data",
}
SNAPSHOT_FIELDS = tuple(f for f in UserSnapshot.__struct_fields__)


def public_user(row: Mapping[str, Any]) -> dict[str, Any]:
    """Logto's user info (userInfoSelectFields), with `hasPassword` actually set."""
    return {
        "id": row["id"],
        "username": row["username"],
        "primaryEmail": row["primary_email"],
        "primaryPhone": row["primary_phone"],
        "name": row["name"],
        "avatar": row["avatar"],
        "customData": row["custom_data"],
        "identities": row["identities"],
        "lastSignInAt": row["last_sign_in_at"],
        "createdAt": row["created_at"],
        "applicationId": row["application_id"],
        "isSuspended": row["is_suspended"],
        "hasPassword": row["has_password"],
    }


def snapshot(row: Mapping[str, Any]) -> UserSnapshot:
    return UserSnapshot(**{f: row[f] for f in SNAPSHOT_FIELDS})


def changed_fields(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[str]:
    """The snapshot fields whose value differs (what `identity.user.updated` names)."""
    return [f for f in SNAPSHOT_FIELDS if before[f] != after[f]]


def user_info(row: Mapping[str, Any]) -> UserInfo:
    identities = {
        target: Identity(user_id=str(value.get("userId", "")), details=value.get("details"))
        for target, value in (row["identities"] or {}).items()
        if isinstance(value, dict)
    }
    return UserInfo(
        id=row["id"], username=row["username"], primary_email=row["primary_email"],
        primary_phone=row["primary_phone"], name=row["name"], avatar=row["avatar"],
        custom_data=row["custom_data"], identities=identities, last_sign_in_at=row["last_sign_in_at"],
        created_at=row["created_at"], application_id=row["application_id"],
        is_suspended=row["is_suspended"], has_password=row["has_password"],
    )


def identities_json(identities: Mapping[str, Identity]) -> dict[str, Any]:
    """Logto's stored form: `{<target>: {userId, details?}}`."""
    return {
        target: {"userId": identity.user_id, **({"details": identity.details} if identity.details is not None else {})}
        for target, identity in identities.items()
    }


# ---------------------------------------------------------------- guards, one per route


def guard_create(body: dict[str, Any]) -> dict[str, Any]:
    """POST /users: every field optional; an empty body makes an empty user."""
    g = Guard(body)
    values = {
        "primary_phone": g.string("primaryPhone", pattern=PHONE, max_length=IDENTIFIER_MAX),
        "primary_email": g.string("primaryEmail", pattern=EMAIL, max_length=IDENTIFIER_MAX),
        "username": g.string("username", pattern=USERNAME, max_length=IDENTIFIER_MAX),
        "password": g.string("password", pattern=PASSWORD, max_length=PASSWORD_MAX_LENGTH),
        "name": g.string("name", max_length=NAME_MAX),
    }
    g.done()
    return {k: v for k, v in values.items() if v is not ABSENT}


def _profile_string(g: Guard, key: str, max_length: int, **rule: Any) -> Any:
    # The length first: an over-long value is `too_big` and never reaches the pattern.
    raw = g.data.get(key)
    if isinstance(raw, str) and len(raw) > max_length:
        g.issue(key, "too_big", f"String must contain at most {max_length} character(s)")
        return ABSENT
    web_url = rule.pop("web_url", False)
    value = g.string(key, nullable=True, or_empty=True, **rule)
    if web_url and isinstance(value, str) and value and not is_web_url(value):
        g.issue(key, "invalid_string", "Invalid url")  # http(s) only: it is shown as a link or image
        return ABSENT
    return value


def guard_update(body: dict[str, Any]) -> dict[str, Any]:
    """PATCH /users/:userId: each field a valid value, `""` (kept as is) or null (cleared);
    `customData` replaces the stored object. Returns column -> value for the given fields."""
    g = Guard(body)
    values = {
        "username": _profile_string(g, "username", IDENTIFIER_MAX, pattern=USERNAME),
        "primary_email": _profile_string(g, "primaryEmail", IDENTIFIER_MAX, pattern=EMAIL),
        "primary_phone": _profile_string(g, "primaryPhone", IDENTIFIER_MAX, pattern=PHONE),
        "name": _profile_string(g, "name", NAME_MAX),
        "avatar": _profile_string(g, "avatar", AVATAR_MAX, url=True, web_url=True),
        "custom_data": g.object("customData"),
    }
    g.done()
    return {k: v for k, v in values.items() if v is not ABSENT}


def guard_custom_data(body: dict[str, Any]) -> dict[str, Any]:
    g = Guard(body)
    custom_data = g.object("customData", required=True)
    g.done()
    return custom_data


def guard_new_password(body: dict[str, Any]) -> str:
    """A new password must match Logto's password rule (not a password being checked)."""
    g = Guard(body)
    password = g.string("password", required=True, pattern=PASSWORD, max_length=PASSWORD_MAX_LENGTH)
    g.done()
    return password


def guard_password_to_verify(body: dict[str, Any]) -> str:
    g = Guard(body)
    password = g.string("password", required=True, min_length=1)
    g.done()
    return password


def guard_suspension(body: dict[str, Any]) -> bool:
    g = Guard(body)
    is_suspended = g.boolean("isSuspended", required=True)
    g.done()
    return is_suspended


def guard_link_identity(body: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    g = Guard(body)
    connector_id = g.string("connectorId", required=True)
    connector_data = g.object("connectorData", required=True)
    g.done()
    return connector_id, connector_data

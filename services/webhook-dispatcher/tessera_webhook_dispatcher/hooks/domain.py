"""Hooks: request bodies, which hooks an event selects, and the payloads. No I/O.

Beyond Logto 1.6, hooks may also subscribe to the data events of later Logto versions
(`User.Created`, `Role.Scopes.Updated`, ...), which we derive from identity's and rbac's events.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

import msgspec
from msgspec import UNSET, Meta, UnsetType

from tessera_events.epoch_ms import LATEST_MS
from tessera_kit.errors import RequestError

INTERACTION_EVENTS = ("PostRegister", "PostSignIn", "PostResetPassword")
DATA_EVENTS = (
    "User.Created", "User.Data.Updated", "User.Deleted", "User.SuspensionStatus.Updated",
    "Role.Created", "Role.Data.Updated", "Role.Deleted", "Role.Scopes.Updated",
    "Scope.Created", "Scope.Data.Updated", "Scope.Deleted",
)
HookEvent = Literal[
    "PostRegister", "PostSignIn", "PostResetPassword",
    "User.Created", "User.Data.Updated", "User.Deleted", "User.SuspensionStatus.Updated",
    "Role.Created", "Role.Data.Updated", "Role.Deleted", "Role.Scopes.Updated",
    "Scope.Created", "Scope.Data.Updated", "Scope.Deleted",
]
INTERACTION_EVENT_OF = {"PostRegister": "Register", "PostSignIn": "SignIn", "PostResetPassword": "ForgotPassword"}
USER_AGENT = "Logto (https://logto.io/)"

Name = Annotated[str, Meta(min_length=1, max_length=256)]
Url = Annotated[str, Meta(max_length=2048)]
Events = Annotated[list[HookEvent], Meta(min_length=1)]
# Epoch milliseconds from 1970 to the end of year 9999 (a datetime's last): beyond, 400 rather
# than a 500. Not from year 1: asyncpg sends datetime.min as -infinity (a 500 again).
EpochMs = Annotated[float, Meta(ge=0, le=LATEST_MS)]


class HookConfig(msgspec.Struct, omit_defaults=True):
    """Logto's `{url, headers?, retries?}`; `url` is not validated as a URL by Logto, but we
    must resolve it (SSRF guard), so a URL that is not http(s) is refused at creation."""

    url: Url
    headers: dict[str, Annotated[str, Meta(max_length=4096)]] | UnsetType = UNSET
    retries: Annotated[int, Meta(ge=0, le=3)] | UnsetType = UNSET


class CreateHook(msgspec.Struct, rename="camel"):
    config: HookConfig
    name: Name | UnsetType = UNSET
    event: HookEvent | None | UnsetType = UNSET
    events: Events | UnsetType = UNSET
    enabled: bool = True
    created_at: EpochMs | UnsetType = UNSET
    tenant_id: Annotated[str, Meta(max_length=21)] | None = None  # accepted and ignored (§1.2)


class UpdateHook(msgspec.Struct, rename="camel"):
    config: HookConfig | UnsetType = UNSET
    name: Name | UnsetType = UNSET
    event: HookEvent | None | UnsetType = UNSET
    events: Events | UnsetType = UNSET
    enabled: bool | UnsetType = UNSET
    created_at: EpochMs | UnsetType = UNSET
    tenant_id: Annotated[str, Meta(max_length=21)] | None = None


class TestHook(msgspec.Struct):
    events: Events
    config: HookConfig


def missing_events() -> RequestError:
    return RequestError("hook.missing_events", 400)


def unique_events(events: list[str]) -> list[str]:
    return list(dict.fromkeys(events))


def config_json(config: HookConfig) -> dict[str, Any]:
    return msgspec.to_builtins(config)


def max_attempts(config: dict[str, Any], schedule_length: int) -> int:
    """`config.retries` caps the retries, as Logto documents; without it, the whole schedule."""
    retries = config.get("retries")
    return 1 + (retries if isinstance(retries, int) else schedule_length)


def selects(hook: dict[str, Any], event: str) -> bool:
    """Logto §6.1: enabled, and `events` holds the event, or `events` is empty and the legacy
    `event` equals it."""
    if not hook["enabled"]:
        return False
    events = hook["events"] or []
    return event in events if events else hook["event"] == event


def iso(at: dt.datetime) -> str:
    """JavaScript's `toISOString()`: milliseconds and `Z`."""
    return at.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


def public_user(user: dict[str, Any]) -> dict[str, Any]:
    """Logto's public user shape (§2) from a `UserSnapshot` (snake_case builtins)."""
    return {
        "id": user["id"],
        "username": user.get("username"),
        "primaryEmail": user.get("primary_email"),
        "primaryPhone": user.get("primary_phone"),
        "name": user.get("name"),
        "avatar": user.get("avatar"),
        "customData": user.get("custom_data") or {},
        "identities": {},
        "lastSignInAt": user.get("last_sign_in_at"),
        "createdAt": user.get("created_at"),
        "applicationId": user.get("application_id"),
        "isSuspended": bool(user.get("is_suspended")),
    }


def interaction_payload(hook_event: str, data: dict[str, Any], created_at: dt.datetime) -> dict[str, Any]:
    """The body of a PostRegister/PostSignIn/PostResetPassword call without `hookId` (§6.3),
    from an `experience.interaction.*` event's data (snake_case builtins)."""
    context = data.get("context") or {}
    payload: dict[str, Any] = {
        "event": hook_event,
        "interactionEvent": INTERACTION_EVENT_OF[hook_event],
        "createdAt": iso(created_at),
        "sessionId": context.get("interaction_id"),
        "userAgent": context.get("user_agent"),
        "userId": data["user_id"],
    }
    if data.get("user"):
        payload["user"] = public_user(data["user"])
    application = data.get("application")
    if application:
        payload["application"] = {k: application.get(k) for k in ("id", "type", "name", "description")}
    return payload


def with_hook_id(hook_id: str, payload: dict[str, Any]) -> bytes:
    """The exact body bytes sent and signed: `hookId` first, as Logto."""
    return msgspec.json.encode({"hookId": hook_id, **payload})


def test_payload(hook_id: str, event: str, now: dt.datetime) -> bytes:
    """The test body of `POST /hooks/:id/test` (§6.3): fake user and application."""
    now_ms = int(now.timestamp() * 1000)
    return msgspec.json.encode({
        "hookId": hook_id,
        "event": event,
        "createdAt": iso(now),
        "sessionId": "fake-session-id",
        "userAgent": "fake-user-agent",
        "userId": "fake-user-id",
        "user": {
            "id": "fake-user-id",
            "username": "fake-user",
            "primaryEmail": "fake-user@fake-service.com",
            "primaryPhone": "1234567890",
            "name": "Fake User",
            "avatar": "https://fake-service.com/avatars/fake-user.png",
            "customData": {"theme": "light"},
            "identities": {"google": {"userId": "fake-google-user-id"}},
            "applicationId": "fake-application-id",
            "isSuspended": False,
            "lastSignInAt": now_ms,
            "createdAt": now_ms,
        },
        "application": {
            "id": "fake-spa-application-id",
            "type": "SPA",
            "name": "Fake Application",
            "description": "Fake application data for testing",
        },
    })


def truthy(value: str | None) -> bool:
    """`yes()` of @silverhand/essentials: 1, true, yes, y (any case)."""
    return (value or "").strip().lower() in ("1", "true", "yes", "y")


# experience.interaction.* -> the Logto 1.6 hook event it fires.
INTERACTION_HOOKS = {
    "experience.interaction.registered": "PostRegister",
    "experience.interaction.signed_in": "PostSignIn",
    "experience.interaction.password_reset": "PostResetPassword",
}


def _scope(scope: dict[str, Any]) -> dict[str, Any]:
    return {"id": scope["id"], "resourceId": scope["resource_id"], "name": scope["name"],
            "description": scope.get("description")}


def _role(role: dict[str, Any]) -> dict[str, Any]:
    return {"id": role["id"], "name": role["name"], "description": role["description"], "type": role.get("type", "User")}


def data_hook(event_type: str, data: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """(hook event, `data`) of the later-Logto data hook an identity or rbac event amounts to."""
    match event_type:
        case "identity.user.created":
            return "User.Created", public_user(data["user"])
        case "identity.user.updated":
            return "User.Data.Updated", public_user(data["user"])
        case "identity.user.deleted":
            return "User.Deleted", {"id": data["user_id"]}
        case "identity.user.suspended" | "identity.user.unsuspended":
            return "User.SuspensionStatus.Updated", {
                "id": data["user_id"], "isSuspended": event_type == "identity.user.suspended"}
        case "rbac.role.created":
            return "Role.Created", {**_role(data["role"]), "scopeIds": data.get("scope_ids", [])}
        case "rbac.role.updated":
            return "Role.Data.Updated", _role(data["role"])
        case "rbac.role.deleted":
            return "Role.Deleted", {"id": data["role_id"], "name": data["name"]}
        case "rbac.role.scopes_assigned":
            return "Role.Scopes.Updated", {"id": data["role_id"], "addedScopeIds": data["scope_ids"], "removedScopeIds": []}
        case "rbac.role.scopes_unassigned":
            return "Role.Scopes.Updated", {"id": data["role_id"], "addedScopeIds": [], "removedScopeIds": data["scope_ids"]}
        case "rbac.scope.created":
            return "Scope.Created", _scope(data["scope"])
        case "rbac.scope.updated":
            return "Scope.Data.Updated", _scope(data["scope"])
        case "rbac.scope.deleted":
            return "Scope.Deleted", {"id": data["scope_id"], "resourceId": data["resource_id"]}
    return None


DATA_EVENT_SOURCES = (
    "identity.user.created", "identity.user.updated", "identity.user.deleted", "identity.user.suspended",
    "identity.user.unsuspended",
)
RBAC_EVENT_SOURCES = (
    "rbac.role.created", "rbac.role.updated", "rbac.role.deleted", "rbac.role.scopes_assigned",
    "rbac.role.scopes_unassigned", "rbac.scope.created", "rbac.scope.updated", "rbac.scope.deleted",
)


def data_payload(hook_event: str, data: dict[str, Any], created_at: dt.datetime) -> dict[str, Any]:
    """A data hook's body without `hookId` (later Logto: `{event, createdAt, data}`)."""
    return {"event": hook_event, "createdAt": iso(created_at), "data": data}

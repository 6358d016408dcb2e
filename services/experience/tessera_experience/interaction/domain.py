"""Interaction rules that need no I/O (Logto §4.3–§4.5): sign-in-experience checks,
identifiers, and which profile fields are still missing.

The stored interaction is Logto's `interaction.result`:
`{event, identifiers: [...], profile: {...}, accountId?}` with identifiers
`{key: "accountId", value}`, `{key: "emailVerified" | "phoneVerified", value}` and
`{key: "social", connectorId, userInfo}`, at most one per key.
"""

from __future__ import annotations

from typing import Any, Iterable, Sequence

from tessera_events.contracts.identity import UserInfo
from tessera_experience.config.domain import is_url
from tessera_kit.errors import RequestError

Payload = dict[str, Any]
Identifier = dict[str, Any]

MASK = "******"


def mask_passwords(value: Any) -> Any:
    """Any object property named `password`, at any depth but not inside arrays (§9.1)."""
    if isinstance(value, dict):
        return {k: MASK if k == "password" else mask_passwords(v) for k, v in value.items()}
    return value


# ------------------------------------------------------------------ new passwords


def stored_password(hashed: Any, compared_with: str | None) -> dict[str, Any]:
    """What an interaction keeps of a new password: identity's hash (PasswordHash), and whether
    it was the current password of the account it was compared with. Never the clear text."""
    return {"digest": hashed.digest, "algorithm": hashed.algorithm, "comparedWith": compared_with,
            "sameAsCurrent": hashed.same_as_current}


def password_fields(stored: dict[str, Any]) -> dict[str, str]:
    """The CreateUserRequest / UpdateUserRequest fields that set a stored new password."""
    return {"password_digest": stored["digest"], "password_algorithm": stored["algorithm"]}


def is_same_password(stored: dict[str, Any], account_id: str) -> bool:
    """Whether the new password is `account_id`'s current one, as far as it was checked (a
    password given before the account was known could not be compared)."""
    return stored.get("comparedWith") == account_id and bool(stored.get("sameAsCurrent"))


def drop_unsafe_avatar(fields: dict[str, Any]) -> None:
    """A social account's avatar is kept only as an http(s) URL (identity refuses others: an
    avatar is shown as an image or link); any other is left out rather than failing the sign-in."""
    avatar = fields.get("avatar")
    if isinstance(avatar, str) and not is_url(avatar):
        del fields["avatar"]


# ------------------------------------------------------------------ §4.3 sign-in experience


def verify_sign_in_mode(event: str, sie: dict[str, Any]) -> None:
    mode = sie["signInMode"]
    if (event == "SignIn" and mode == "Register") or (event == "Register" and mode == "SignIn"):
        raise RequestError("auth.forbidden", 403)


def _not_enabled() -> RequestError:
    return RequestError("user.sign_in_method_not_enabled", 422)


def verify_identifier_settings(identifier: Payload, sie: dict[str, Any]) -> None:
    if "connectorId" in identifier:
        return
    methods = sie["signIn"]["methods"]
    sign_up = sie["signUp"]

    def method(name: str) -> dict[str, Any] | None:
        return next((m for m in methods if m["identifier"] == name), None)

    if "username" in identifier:
        found = method("username")
        if not (found and found["password"]):
            raise _not_enabled()
        return
    for name in ("email", "phone"):
        if name not in identifier:
            continue
        found = method(name)
        if found is None:
            raise _not_enabled()
        if "password" in identifier:
            if not found["password"]:
                raise _not_enabled()
        elif not found["verificationCode"] and name not in sign_up["identifiers"] and not sign_up["verify"]:
            raise _not_enabled()


def verify_profile_settings(profile: Payload, sie: dict[str, Any]) -> None:
    sign_up = sie["signUp"]
    for name in ("phone", "email", "username"):
        if name in profile and name not in sign_up["identifiers"]:
            raise _not_enabled()
    if "password" in profile and not sign_up["password"]:
        raise _not_enabled()


# ------------------------------------------------------------------ identifiers


def upsert_identifier(identifiers: Sequence[Identifier], new: Identifier) -> list[Identifier]:
    """At most one identifier per key: a new one replaces the old one of its key."""
    return [*[i for i in identifiers if i["key"] != new["key"]], new]


def is_profile_identifier(identifier: Identifier, profile: Payload) -> bool:
    """Identifiers that back a profile field rather than prove who the user is (§4.5.2)."""
    key = identifier["key"]
    if key == "emailVerified":
        return profile.get("email") == identifier["value"]
    if key == "phoneVerified":
        return profile.get("phone") == identifier["value"]
    if key == "social":
        return profile.get("connectorId") == identifier["connectorId"]
    return False


def auth_identifiers(identifiers: Iterable[Identifier], profile: Payload) -> list[Identifier]:
    return [i for i in identifiers if i["key"] == "accountId" or not is_profile_identifier(i, profile)]


def find_identifier(identifiers: Iterable[Identifier], key: str, **match: Any) -> Identifier | None:
    for identifier in identifiers:
        if identifier["key"] == key and all(identifier.get(k) == v for k, v in match.items()):
            return identifier
    return None


def verify_profile_backing(identifiers: Sequence[Identifier], profile: Payload) -> None:
    """Each profile email, phone or connectorId needs its verified identifier (§4.5.3)."""
    if "email" in profile and not find_identifier(identifiers, "emailVerified", value=profile["email"]):
        raise RequestError("session.verification_session_not_found", 404)
    if "phone" in profile and not find_identifier(identifiers, "phoneVerified", value=profile["phone"]):
        raise RequestError("session.verification_session_not_found", 404)
    if "connectorId" in profile and not find_identifier(identifiers, "social", connectorId=profile["connectorId"]):
        raise RequestError("session.connector_session_not_found", 404)


def verify_profile_not_in_user(user: UserInfo, profile: Payload) -> None:
    """SignIn may only add what the user does not have yet (400 each)."""
    if "username" in profile and user.username:
        raise RequestError("user.username_exists_in_profile", 400)
    if "email" in profile and user.primary_email:
        raise RequestError("user.email_exists_in_profile", 400)
    if "phone" in profile and user.primary_phone:
        raise RequestError("user.phone_exists_in_profile", 400)
    if "password" in profile and (user.has_password or user.identities):
        raise RequestError("user.password_exists_in_profile", 400)


# ------------------------------------------------------------------ §4.5.4 mandatory profile


def missing_profile(sign_up: dict[str, Any], user: UserInfo | None, profile: Payload) -> list[str]:
    """What the sign-up settings still require, in Logto's order."""
    missing: list[str] = []
    has_password = bool(user and (user.has_password or user.identities))
    if sign_up["password"] and not has_password and "password" not in profile and "connectorId" not in profile:
        missing.append("password")
    identifiers = set(sign_up["identifiers"])
    has_email = bool((user and user.primary_email) or profile.get("email"))
    has_phone = bool((user and user.primary_phone) or profile.get("phone"))
    if "username" in identifiers and not ((user and user.username) or profile.get("username")):
        missing.append("username")
        return missing
    if {"email", "phone"} <= identifiers:
        if not has_email and not has_phone:
            missing.append("emailOrPhone")
    elif "email" in identifiers and not has_email:
        missing.append("email")
    elif "phone" in identifiers and not has_phone:
        missing.append("phone")
    return missing


def authentication_methods(identifiers: Iterable[Identifier], profile: Payload, event: str) -> list[str]:
    """How the user proved who they are, for the events (`password`, `verification_code`,
    `social`), in the order first used."""
    methods: list[str] = []

    def add(method: str) -> None:
        if method not in methods:
            methods.append(method)

    identifiers = list(identifiers)
    social = any(i["key"] == "social" for i in identifiers)
    for identifier in identifiers:
        key = identifier["key"]
        if key == "accountId":
            add("password")
        elif key == "social":
            add("social")
        elif key in ("emailVerified", "phoneVerified") and not (social and identifier.get("fromSocial")):
            add("verification_code")
    if event == "Register" and "password" in profile:
        add("password")
    return methods


AMR = {"password": "pwd", "verification_code": "otp", "social": "social"}

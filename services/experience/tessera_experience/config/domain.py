"""The sign-in experience, the admin-console flags and their rules (Logto §3.2, §3.5, §5.8,
§8): plain values and functions, no I/O."""

from __future__ import annotations

from typing import Annotated, Any, Iterable, Literal
from urllib.parse import urlsplit

import msgspec
from msgspec import UNSET, Meta, UnsetType

from tessera_experience.language import is_language_tag
from tessera_kit.errors import RequestError, ValidationIssue, invalid_input

from tessera_kit.config import ADMIN_TENANT

SIE_ID = "default"
# Valid in Python and in ECMAScript (the OpenAPI document's regex dialect): no `(?i)`, and
# `(?![\s\S])` for the end of the string, where Python's `$` would allow a trailing newline.
HEX_COLOUR = r"^#[0-9A-Fa-f]{3}([0-9A-Fa-f]{3})?(?![\s\S])"
URL_MAX_LENGTH = 2048

Identifier = Literal["username", "email", "phone"]
SignInMode = Literal["SignIn", "Register", "SignInAndRegister"]
Colour = Annotated[str, Meta(pattern=HEX_COLOUR)]


def default_sign_in_experience(tenant_id: str) -> dict[str, Any]:
    """The seeded sign-in experience (Logto §5.8, OSS)."""
    return {
        "tenantId": tenant_id,
        "id": SIE_ID,
        "color": {"primaryColor": "#6139F6", "isDarkModeEnabled": False, "darkPrimaryColor": "#8768F8"},
        "branding": {"logoUrl": "https://logto.io/logo.svg", "darkLogoUrl": "https://logto.io/logo-dark.svg"},
        "languageInfo": {"autoDetect": True, "fallbackLanguage": "en"},
        "termsOfUseUrl": None,
        "privacyPolicyUrl": None,
        "signUp": {"identifiers": ["username"], "password": True, "verify": False},
        "signIn": {"methods": [{"identifier": "username", "password": True, "verificationCode": False,
                                "isPasswordPrimary": True}]},
        "socialSignInConnectorTargets": [],
        "signInMode": "SignInAndRegister",
        "customCss": None,
        "customContent": {},
    }


def admin_tenant_sign_in_experience() -> dict[str, Any]:
    """The admin tenant's (the console's) sign-in experience: the default with dark mode on
    (Logto §5.8); username and password, sign-in and registration (as Logto 1.6's suite reads it)."""
    sie = default_sign_in_experience(ADMIN_TENANT)
    sie["color"] = {**sie["color"], "isDarkModeEnabled": True}
    return sie


ADMIN_CONSOLE_FLAGS = (
    "livePreviewChecked", "applicationCreated", "signInExperienceCustomized", "passwordlessConfigured",
    "communityChecked", "furtherReadingsChecked", "roleCreated", "m2mApplicationCreated",
)
ADMIN_CONSOLE_KEY = "adminConsole"


def default_admin_console() -> dict[str, bool]:
    return {flag: False for flag in ADMIN_CONSOLE_FLAGS}


class AdminConsolePatch(msgspec.Struct, rename="camel", omit_defaults=True):
    """Any subset of the eight flags; other keys are dropped (zod strips them)."""

    live_preview_checked: bool | UnsetType = UNSET
    application_created: bool | UnsetType = UNSET
    sign_in_experience_customized: bool | UnsetType = UNSET
    passwordless_configured: bool | UnsetType = UNSET
    community_checked: bool | UnsetType = UNSET
    further_readings_checked: bool | UnsetType = UNSET
    role_created: bool | UnsetType = UNSET
    m2m_application_created: bool | UnsetType = UNSET


# ------------------------------------------------------------------ PATCH /sign-in-exp body


class ColorBody(msgspec.Struct, rename="camel"):
    primary_color: Colour
    is_dark_mode_enabled: bool
    dark_primary_color: Colour


Url = Annotated[str, Meta(max_length=URL_MAX_LENGTH)]


class BrandingBody(msgspec.Struct, rename="camel", omit_defaults=True):
    logo_url: Url | UnsetType = UNSET
    dark_logo_url: Url | UnsetType = UNSET
    favicon: Url | UnsetType = UNSET


class LanguageInfoBody(msgspec.Struct, rename="camel"):
    auto_detect: bool
    fallback_language: str


class SignInMethod(msgspec.Struct, rename="camel"):
    identifier: Identifier
    password: bool
    verification_code: bool
    is_password_primary: bool


class SignInBody(msgspec.Struct):
    methods: list[SignInMethod]


class SignUpBody(msgspec.Struct):
    identifiers: list[Identifier]
    password: bool
    verify: bool


class SignInExperiencePatch(msgspec.Struct, rename="camel", omit_defaults=True):
    """Every column but `id` is optional; unknown keys are dropped. A given jsonb column
    replaces the stored one (no merge)."""

    tenant_id: str | UnsetType = UNSET  # accepted and ignored (Logto §1.2)
    color: ColorBody | UnsetType = UNSET
    branding: BrandingBody | UnsetType = UNSET
    language_info: LanguageInfoBody | UnsetType = UNSET
    terms_of_use_url: Url | None | UnsetType = UNSET
    privacy_policy_url: Url | None | UnsetType = UNSET
    sign_in: SignInBody | UnsetType = UNSET
    sign_up: SignUpBody | UnsetType = UNSET
    social_sign_in_connector_targets: list[str] | UnsetType = UNSET
    sign_in_mode: SignInMode | UnsetType = UNSET
    custom_css: str | None | UnsetType = UNSET
    custom_content: dict[str, str] | UnsetType = UNSET


def is_url(value: str) -> bool:
    """An absolute http(s) URL with a host. These URLs end up in `href` and `src` on the
    sign-in pages, where any other scheme (`javascript:`, `data:`) could run or fake content."""
    if len(value) > URL_MAX_LENGTH or any(c.isspace() or ord(c) < 0x20 for c in value):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme.lower() in ("http", "https") and bool(parts.hostname)


def check_patch_shape(patch: SignInExperiencePatch) -> None:
    """What the body's types cannot say: URLs and the language tag enum (400 guard)."""
    issues: list[ValidationIssue] = []
    if not isinstance(patch.branding, UnsetType):
        for name in ("logo_url", "dark_logo_url", "favicon"):
            value = getattr(patch.branding, name)
            if isinstance(value, str) and not is_url(value):
                issues.append(ValidationIssue(f"branding.{_camel(name)}", "invalid_string", "Invalid url"))
    for name in ("terms_of_use_url", "privacy_policy_url"):
        value = getattr(patch, name)
        if isinstance(value, str) and value != "" and not is_url(value):
            issues.append(ValidationIssue(_camel(name), "invalid_string", "Invalid url"))
    if not isinstance(patch.language_info, UnsetType) and not is_language_tag(patch.language_info.fallback_language):
        issues.append(ValidationIssue("languageInfo.fallbackLanguage", "invalid_enum_value", "Invalid enum value"))
    if issues:
        raise invalid_input("body", issues)


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(p.capitalize() for p in rest)


def patch_values(patch: SignInExperiencePatch) -> dict[str, Any]:
    """The given fields as API (camelCase) values, `tenantId` left out."""
    values = msgspec.to_builtins(patch)
    values.pop("tenantId", None)
    return values


# ------------------------------------------------------------------ §8 rules


def _error(code: str, **values: Any) -> RequestError:
    return RequestError(f"sign_in_experiences.{code}", 400, **values)


def validate_language(fallback_language: str, custom_tags: Iterable[str], built_in: Iterable[str]) -> None:
    if fallback_language not in set(built_in) | set(custom_tags):
        raise _error("unsupported_default_language", language=fallback_language)


def validate_sign_up(sign_up: dict[str, Any], connector_types: set[str]) -> None:
    for identifier in sign_up["identifiers"]:
        if identifier == "email" and "Email" not in connector_types:
            raise _error("enabled_connector_not_found", type="Email")
        if identifier == "phone" and "Sms" not in connector_types:
            raise _error("enabled_connector_not_found", type="Sms")
        if identifier == "username" and not sign_up["password"]:
            raise _error("username_requires_password")
        if identifier in ("email", "phone") and not sign_up["verify"]:
            raise _error("passwordless_requires_verify")


def validate_sign_in(sign_in: dict[str, Any], sign_up: dict[str, Any], connector_types: set[str]) -> None:
    methods = sign_in["methods"]
    if any(m["identifier"] == "email" and m["verificationCode"] for m in methods) and "Email" not in connector_types:
        raise _error("enabled_connector_not_found", type="Email")
    if any(m["identifier"] == "phone" and m["verificationCode"] for m in methods) and "Sms" not in connector_types:
        raise _error("enabled_connector_not_found", type="Sms")
    if not all(m["password"] or m["verificationCode"] for m in methods):
        raise _error("at_least_one_authentication_factor")
    for identifier in sign_up["identifiers"]:
        if not any(m["identifier"] == identifier for m in methods):
            raise _error("miss_sign_up_identifier_in_sign_in")
    if sign_up["password"] and not all(m["password"] for m in methods):
        raise _error("password_sign_in_must_be_enabled")
    if sign_up["verify"] and not sign_up["password"]:
        if not all(m["verificationCode"] for m in methods if m["identifier"] != "username"):
            raise _error("code_sign_in_must_be_enabled")


def filter_social_targets(targets: list[str], social_targets: set[str]) -> list[str]:
    """Unknown targets are dropped silently (Logto §3.5 step 2); order and duplicates kept."""
    return [t for t in targets if t in social_targets]

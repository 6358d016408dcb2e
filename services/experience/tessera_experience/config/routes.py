"""`/api/sign-in-exp`, `/api/custom-phrases*`, `/api/configs/admin-console` (Management API)
and the anonymous `/api/.well-known/sign-in-exp` and `/api/.well-known/phrases`
(Logto §3.2, §3.5, §3.10)."""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get, patch, put
from litestar.exceptions import NotFoundException
from litestar.params import FromPath, FromQuery, JSONBody

from tessera_events.contracts.connectors import DELETE_CONNECTORS, DeleteConnectorsRequest
from tessera_events.experience import (
    AdminConsoleConfigUpdated,
    CustomPhraseDeleted,
    CustomPhraseUpserted,
    SignInExperienceUpdated,
)
from tessera_experience import connectors, phrases
from tessera_experience.config import domain, store
from tessera_experience.config.domain import (
    ADMIN_CONSOLE_KEY,
    AdminConsolePatch,
    SignInExperiencePatch,
)
from tessera_experience.language import LANGUAGE_TAGS, is_language_tag
from tessera_kit.app import Ctx, ServiceContext
from tessera_kit.errors import RequestError, ValidationIssue, invalid_input, not_found
from tessera_kit.ids import new_id
from tessera_kit.config import ADMIN_TENANT
from tessera_kit.context import current_tenant


async def load_sign_in_experience(ctx: ServiceContext) -> dict[str, Any]:
    sie = await store.find_sign_in_experience(ctx.pool, current_tenant())
    if sie is None:
        raise not_found("sign_in_experiences", domain.SIE_ID)
    return sie


# ------------------------------------------------------------------ sign-in experience


@get("/api/sign-in-exp", operation_id="GetSignInExp", tags=["Sign In Exp"])
async def get_sign_in_experience(ctx: Ctx) -> dict[str, Any]:
    return await load_sign_in_experience(ctx)


@patch("/api/sign-in-exp", operation_id="UpdateSignInExp", tags=["Sign In Exp"])
async def update_sign_in_experience(
    ctx: Ctx, data: JSONBody[SignInExperiencePatch],
    removeUnusedDemoSocialConnector: FromQuery[str | None] = None,  # noqa: N803 (Logto's name)
) -> dict[str, Any]:
    domain.check_patch_shape(data)
    values = domain.patch_values(data)
    tenant = current_tenant()
    # Only the connector rules need the connectors (asked of their owner).
    needs_connectors = not values.keys().isdisjoint({"signUp", "signIn", "socialSignInConnectorTargets"})
    known = await connectors.connectors_now(ctx, tenant) if needs_connectors else []
    types = {c.type for c in known}
    if "languageInfo" in values:
        custom = await store.custom_language_tags(ctx.pool, tenant)
        domain.validate_language(values["languageInfo"]["fallbackLanguage"], custom, phrases.BUILT_IN_LANGUAGES)
    if "socialSignInConnectorTargets" in values:
        social_targets = {c.target for c in known if c.type == "Social"}
        values["socialSignInConnectorTargets"] = domain.filter_social_targets(
            values["socialSignInConnectorTargets"], social_targets
        )
    current = await load_sign_in_experience(ctx)
    if "signUp" in values:
        domain.validate_sign_up(values["signUp"], types)
    if "signIn" in values:
        domain.validate_sign_in(values["signIn"], values.get("signUp", current["signUp"]), types)
    if removeUnusedDemoSocialConnector and "socialSignInConnectorTargets" in values:
        kept = set(values["socialSignInConnectorTargets"])
        unused = [c.id for c in known if c.connector_factory_id == connectors.DEMO_SOCIAL_FACTORY
                  and c.target not in kept]
        if unused:
            # The connectors service owns them; experience's read model follows its events.
            await ctx.call(DELETE_CONNECTORS, DeleteConnectorsRequest(ids=unused, tenant_id=tenant))
    async with ctx.pool.acquire() as conn, conn.transaction():
        updated = await store.update_sign_in_experience(conn, tenant, values)
        if updated is None:
            raise not_found("sign_in_experiences", domain.SIE_ID)
        if values:
            await ctx.outbox.emit(conn, SignInExperienceUpdated(changed=sorted(values)),
                                  aggregate_id=domain.SIE_ID, tenant_id=tenant)
    return updated


# ------------------------------------------------------------------ admin console


@get("/api/configs/admin-console", operation_id="GetAdminConsoleConfig", tags=["Configs"])
async def get_admin_console(ctx: Ctx) -> dict[str, Any]:
    value = await store.find_config(ctx.pool, current_tenant(), ADMIN_CONSOLE_KEY)
    if value is None:
        raise RequestError("entity.not_found", 404)
    return value


@patch("/api/configs/admin-console", operation_id="UpdateAdminConsoleConfig", tags=["Configs"])
async def update_admin_console(ctx: Ctx, data: JSONBody[AdminConsolePatch]) -> dict[str, Any]:
    changes = msgspec.to_builtins(data)
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        value = await store.find_config(conn, tenant, ADMIN_CONSOLE_KEY, lock=True)
        if value is None:
            raise RequestError("entity.not_found", 404)
        merged = {**value, **changes}
        changed = sorted(k for k in changes if value.get(k) != changes[k])
        if changed:
            await store.update_config(conn, tenant, ADMIN_CONSOLE_KEY, merged)
            await ctx.outbox.emit(conn, AdminConsoleConfigUpdated(changed=changed),
                                  aggregate_id=ADMIN_CONSOLE_KEY, tenant_id=tenant)
    return merged


# ------------------------------------------------------------------ custom phrases


def _checked_tag(language_tag: str) -> str:
    if not is_language_tag(language_tag):
        raise invalid_input("params", [ValidationIssue(
            "languageTag", "invalid_enum_value",
            f"Invalid enum value. Expected {' | '.join(repr(t) for t in LANGUAGE_TAGS)}, received '{language_tag}'",
        )])
    return language_tag


@get("/api/custom-phrases", operation_id="ListCustomPhrases", tags=["Custom Phrases"])
async def list_custom_phrases(ctx: Ctx) -> list[dict[str, Any]]:
    return await store.list_custom_phrases(ctx.pool, current_tenant())


@get("/api/custom-phrases/{language_tag:str}", operation_id="GetCustomPhrase", tags=["Custom Phrases"])
async def get_custom_phrase(ctx: Ctx, language_tag: FromPath[str]) -> dict[str, Any]:
    row = await store.find_custom_phrase(ctx.pool, current_tenant(), _checked_tag(language_tag))
    if row is None:
        raise RequestError("entity.not_found", 404)
    return row


@put("/api/custom-phrases/{language_tag:str}", operation_id="ReplaceCustomPhrase", tags=["Custom Phrases"],
     status_code=201)
async def put_custom_phrase(ctx: Ctx, language_tag: FromPath[str], data: JSONBody[dict[str, Any]]) -> dict[str, Any]:
    tag = _checked_tag(language_tag)
    if not phrases.is_translation(data):
        raise invalid_input("body", [ValidationIssue("", "invalid_type", "Expected a nested object of strings")])
    translation = phrases.clean_deep(data)
    if not phrases.fits_structure(translation):
        raise RequestError("localization.invalid_translation_structure", 422)
    tenant = current_tenant()
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await store.upsert_custom_phrase(conn, tenant, new_id(), tag, translation)
        await ctx.outbox.emit(conn, CustomPhraseUpserted(language_tag=tag), aggregate_id=tag, tenant_id=tenant)
    return row


@delete("/api/custom-phrases/{language_tag:str}", operation_id="DeleteCustomPhrase", tags=["Custom Phrases"],
        status_code=204)
async def delete_custom_phrase(ctx: Ctx, language_tag: FromPath[str]) -> None:
    tag = _checked_tag(language_tag)
    tenant = current_tenant()
    sie = await load_sign_in_experience(ctx)
    # Checked before existence, as Logto does.
    if sie["languageInfo"]["fallbackLanguage"] == tag:
        raise RequestError("localization.cannot_delete_default_language", 409, languageTag=tag)
    async with ctx.pool.acquire() as conn, conn.transaction():
        if not await store.delete_custom_phrase(conn, tenant, tag):
            raise RequestError("entity.not_found", 404)
        await ctx.outbox.emit(conn, CustomPhraseDeleted(language_tag=tag), aggregate_id=tag, tenant_id=tenant)


# ------------------------------------------------------------------ .well-known (anonymous)


async def public_sign_in_experience(ctx: ServiceContext, sie: dict[str, Any] | None = None) -> dict[str, Any]:
    """The SIE (`sie` when the caller has it already) plus `socialConnectors` and
    `forgotPassword` (Logto §3.5 "Related")."""
    sie = sie if sie is not None else await load_sign_in_experience(ctx)
    known = await connectors.all_connectors(ctx.pool, current_tenant())
    social = [
        connectors.social_connector_response(c)
        for target in sie["socialSignInConnectorTargets"]
        for c in known if c.type == "Social" and c.target == target
    ]
    types = {c.type for c in known}
    return {**sie, "socialConnectors": social,
            "forgotPassword": {"phone": "Sms" in types, "email": "Email" in types}}


@get("/api/.well-known/sign-in-exp", operation_id="GetWellKnownSignInExp", tags=[".well-known"])
async def well_known_sign_in_experience(ctx: Ctx) -> dict[str, Any]:
    return await public_sign_in_experience(ctx)


async def resolve_custom_phrases(ctx: ServiceContext, candidates: list[str | None], *,
                                 sie: dict[str, Any] | None = None) -> tuple[str, dict[str, Any] | None]:
    """(language, its custom phrase row or None) for the first acceptable candidate."""
    sie = sie or await load_sign_in_experience(ctx)
    tenant = current_tenant()
    custom_tags = await store.custom_language_tags(ctx.pool, tenant)
    language = phrases.choose_language(
        candidates, custom_tags=custom_tags, fallback=sie["languageInfo"]["fallbackLanguage"]
    )
    custom = await store.find_custom_phrase(ctx.pool, tenant, language) if language in custom_tags else None
    return language, custom


async def resolve_phrases(ctx: ServiceContext, candidates: list[str | None], *,
                          sie: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
    """(language, phrases) for the first acceptable candidate, custom phrases applied."""
    language, custom = await resolve_custom_phrases(ctx, candidates, sie=sie)
    return language, phrases.phrases_for(language, custom["translation"] if custom else None)


def candidate_languages(request: Request, sie: dict[str, Any], first: str | None = None) -> list[str | None]:
    """`lng` (or the authorization request's ui_locales), then the browser's languages when
    the sign-in experience auto-detects."""
    browser = phrases.accepted_languages(request.headers.get("accept-language")) \
        if sie["languageInfo"]["autoDetect"] else []
    return [first, *browser]


@get("/api/.well-known/phrases", operation_id="GetWellKnownPhrases", tags=[".well-known"])
async def well_known_phrases(request: Request, ctx: Ctx, lng: FromQuery[str | None] = None) -> Response:
    """Logto's answer: the built-in resource (`{translation}`) deep-merged with the custom
    phrase row, so a customised language also carries the row's other fields."""
    sie = await load_sign_in_experience(ctx)
    language, custom = await resolve_custom_phrases(ctx, candidate_languages(request, sie, lng), sie=sie)
    tree = phrases.phrases_for(language, custom["translation"] if custom else None)
    return Response({**(custom or {}), "translation": tree}, headers={"Content-Language": language})


# Not in the document: the admin tenant only (the served document is the user tenant's API).
@get("/api/.well-known/endpoints/{tenant_id:str}", operation_id="GetTenantEndpoint", tags=[".well-known"],
     include_in_schema=False)
async def well_known_tenant_endpoint(ctx: Ctx, tenant_id: FromPath[str]) -> dict[str, str]:
    """The admin tenant only (the console asks where a tenant's users sign in): the tenant's
    endpoint, or the default endpoint for a tenant this deployment does not name (as Logto's
    open-source build answers for any tenant id). Elsewhere the route does not exist."""
    if current_tenant() != ADMIN_TENANT:
        raise NotFoundException()
    tenants = ctx.settings.tenants
    endpoint = tenants.get(tenant_id[:64]) or tenants[ctx.settings.tenant_id]
    return {"user": endpoint + "/"}  # a URL's string form, as Logto writes it


route_handlers = [
    well_known_tenant_endpoint,
    get_sign_in_experience, update_sign_in_experience,
    get_admin_console, update_admin_console,
    list_custom_phrases, get_custom_phrase, put_custom_phrase, delete_custom_phrase,
    well_known_sign_in_experience, well_known_phrases,
]

"""The hosted sign-in pages a browser sees (Logto's sign-in UI, server-rendered): `/sign-in`,
`/register`, `/forgot-password`, `/sign-in/consent`, `/unknown-session`.

Each form posts back to its page, whose handler calls the same interaction logic as
`/api/interaction*` (in-process, with the browser's `_interaction` cookie), then answers a
303 to where the flow goes next or the page again with the errors. No JavaScript needed;
the consent page submits itself when it can, as Logto's does.
"""

from __future__ import annotations

import inspect
import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable
from urllib.parse import quote

from litestar import Request, Response, Router, get, post
from litestar.datastructures import Cookie
from litestar.params import FromPath
from litestar.static_files import create_static_files_router

from tessera_events.contracts.oidc import InteractionDetails
from tessera_experience.config.routes import load_sign_in_experience, public_sign_in_experience
from tessera_experience.interaction.guards import EMAIL, PASSWORD, PHONE, matches, read_body
from tessera_experience.interaction.routes import caller_of
from tessera_experience.interaction.service import FORGOT_PASSWORD, InteractionService
from tessera_experience.pages.render import STYLESHEET_PATH, FormErrors, Page, page_for, stylesheet_of
from tessera_kit.app import Ctx, ServiceContext
from tessera_kit.csrf import same_origin
from tessera_kit.errors import RequestError
from tessera_kit.http import public_origin

UNKNOWN_SESSION = "/unknown-session"
# A page's form is a few short fields; anything larger is refused (413) unread.
FORM_MAX_BYTES = 16 * 1024
SOCIAL_STATE_COOKIE = "_tessera_social_state"
INPUT_LABELS = {"username": "input.username", "email": "input.email", "phone": "input.phone_number"}


def see_other(location: str, cookies: list[Cookie] | None = None) -> Response:
    return Response(None, status_code=303, headers={"location": location, "cache-control": "no-store"},
                    cookies=cookies or [])


async def form_of(request: Request) -> dict[str, str]:
    body = read_body(await request.body(), request.headers.get("content-type") or
                     "application/x-www-form-urlencoded")
    return {k: v.strip() if k not in ("password", "confirm_password") else v
            for k, v in body.items() if isinstance(v, str)} if isinstance(body, dict) else {}


async def live_interaction(ctx: ServiceContext, request: Request) -> InteractionDetails | None:
    """The interaction behind the cookie, or None when there is none (Logto's UI guard)."""
    try:
        return await InteractionService(ctx).details(caller_of(request))
    except RequestError as error:
        if error.code == "session.not_found":
            return None
        raise


class NoLiveInteraction(Exception):
    """The browser has no live interaction: every page sends it to the unknown-session page."""


async def live_page(ctx: ServiceContext, request: Request) -> tuple[InteractionDetails, Page]:
    """The live interaction and the page's look and language; raises NoLiveInteraction."""
    details = await live_interaction(ctx, request)
    if details is None:
        raise NoLiveInteraction
    return details, await page_for(ctx, request, details.params)


def _to_unknown_session(request: Request, exc: NoLiveInteraction) -> Response:
    return see_other(UNKNOWN_SESSION)


def kind_of(value: str, allowed: list[str]) -> str:
    """Which identifier a typed value is: an email has an @, a phone is digits."""
    if "@" in value and "email" in allowed:
        return "email"
    if value.isdigit() and "phone" in allowed:
        return "phone"
    if "username" in allowed:
        return "username"
    return "email" if "email" in allowed else allowed[0]


def label_for(page: Page, kinds: list[str]) -> str:
    return " / ".join(page.t(INPUT_LABELS[k]) for k in kinds)


def focus_of(errors: FormErrors, default: str) -> str:
    for name, _ in errors.items():
        if name:
            return name
    return default


def check_new_password(page: Page, form: dict[str, str], errors: FormErrors) -> None:
    """What the page can tell before asking the server: empty, too weak, not repeated."""
    password = form.get("password", "")
    if not password:
        errors.add("password", page.t("error.password_required"))
    elif not matches(PASSWORD, password):
        errors.add("password", page.t("error.invalid_password", min=8))
    elif password != form.get("confirm_password", ""):
        errors.add("confirm_password", page.t("error.passwords_do_not_match"))


def check_terms(page: Page, form: dict[str, str], errors: FormErrors) -> None:
    page.agreed = form.get("agree") == "yes"
    if page.terms and not page.agreed:
        errors.add("agree", page.t("error.agree_terms_required"))


# ------------------------------------------------------------------ sign in


def _sign_in_options(page: Page) -> tuple[list[str], list[str]]:
    methods = page.sie["signIn"]["methods"]
    with_password = [m["identifier"] for m in methods if m["password"]]
    with_code = [m["identifier"] for m in methods if m["verificationCode"] and m["identifier"] != "username"]
    return with_password, with_code


async def render_sign_in(ctx: ServiceContext, page: Page, *, errors: FormErrors | None = None, status: int = 200,
                         identifier: str = "", code_identifier: str = "") -> Response:
    errors = errors or FormErrors()
    with_password, with_code = _sign_in_options(page)
    public = await public_sign_in_experience(ctx, page.sie)
    social = [{**c, "display_name": c["name"].get(page.language) or c["name"].get("en") or c["target"]}
              for c in public["socialConnectors"]]
    return page.render(
        "sign_in.html", status, title=page.t("description.sign_in"), errors=errors,
        password_label=label_for(page, with_password) if with_password else None,
        code_label=label_for(page, with_code) if with_code else None,
        identifier=identifier, code_identifier=code_identifier,
        focus=focus_of(errors, "identifier" if with_password else "code_identifier"),
        forgot_password=public["forgotPassword"]["email"] or public["forgotPassword"]["phone"],
        can_register=page.sie["signInMode"] != "SignIn", social=social,
        notification=page.t("demo_app.notification") if page.request.query_params.get("notification") else None,
    )


@get("/sign-in", include_in_schema=False)
async def sign_in_page(request: Request, ctx: Ctx) -> Response:
    _, page = await live_page(ctx, request)
    if page.sie["signInMode"] == "Register":
        return see_other("/register")
    return await render_sign_in(ctx, page)


@post("/sign-in", include_in_schema=False, status_code=200)
async def sign_in(request: Request, ctx: Ctx) -> Response:
    details, page = await live_page(ctx, request)
    form = await form_of(request)
    with_password, _ = _sign_in_options(page)
    identifier, password = form.get("identifier", ""), form.get("password", "")
    errors = FormErrors()
    if not identifier:
        errors.add("identifier", page.t("error.general_required", types=label_for(page, with_password or ["username"])))
    if not password:
        errors.add("password", page.t("error.password_required"))
    check_terms(page, form, errors)
    if errors or not with_password:
        return await render_sign_in(ctx, page, errors=errors, status=400, identifier=identifier)
    kind = kind_of(identifier, with_password)
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        await service.start(caller, {"event": "SignIn", "identifier": {kind: identifier, "password": password}})
        return see_other(await service.submit(caller) or "/sign-in")
    except RequestError as error:
        return await _after_failure(ctx, page, error, "SignIn", lambda errs: render_sign_in(
            ctx, page, errors=errs, status=error.status, identifier=identifier))


Again = Callable[[FormErrors], Response | Awaitable[Response]]


async def _after_failure(ctx: ServiceContext, page: Page, error: RequestError, event: str,
                         again: Again) -> Response:
    """Where a failed step leads: the missing-profile form, the unknown-session page, or the
    same page again (`again`) with the error next to its field."""
    if error.code == "session.not_found":
        return see_other(UNKNOWN_SESSION)
    if error.code == "user.missing_profile":
        missing = list((error.data or {}).get("missingProfile") or [])
        return render_missing_profile(page, event, missing, status=error.status)
    response = again(page.errors_from(error))
    response = await response if inspect.isawaitable(response) else response
    # A rate limit's (429) or an outage's (503) Retry-After reaches the browser with the page
    # that explains it.
    response.headers.update(getattr(error, "headers", None) or {})
    return response


# ------------------------------------------------------------------ missing profile

PROFILE_FIELDS = ("username", "password")
CONTACT_KINDS = {"email": ["email"], "phone": ["phone"], "emailOrPhone": ["email", "phone"]}


def profile_path(event: str) -> str:
    return "/register/profile" if event == "Register" else "/sign-in/profile"


def profile_event(request: Request) -> str:
    """Which flow a profile step is in: its form posts to `/register/profile*` or `/sign-in/profile*`."""
    return "Register" if request.url.path.startswith("/register/") else "SignIn"


def render_missing_profile(page: Page, event: str, missing: list[str], *, errors: FormErrors | None = None,
                           values: dict[str, str] | None = None, status: int = 200) -> Response:
    errors = errors or FormErrors()
    fields = [f for f in PROFILE_FIELDS if f in missing]
    # An email or phone is linked with a code sent to it (when nothing else is missing first).
    contact = next((CONTACT_KINDS[m] for m in missing if m in CONTACT_KINDS), []) if not fields else []
    if not fields and not contact:
        errors.add("", page.error_sentence(RequestError("user.missing_profile", 422)))
    action = profile_path(event)
    return page.render("missing_profile.html", status, title=page.t("description.continue_with_more_information"),
                       errors=errors, fields=fields, values=values or {}, action=f"{action}?fields={','.join(fields)}",
                       contact=contact, contact_label=label_for(page, contact) if contact else "",
                       contact_action=f"{action}/verification-code?kinds={','.join(contact)}",
                       focus=focus_of(errors, fields[0] if fields else "contact"))


@post(["/sign-in/profile", "/register/profile"], include_in_schema=False, status_code=200)
async def complete_profile(request: Request, ctx: Ctx) -> Response:
    event = profile_event(request)
    details, page = await live_page(ctx, request)
    fields = [f for f in request.query_params.get("fields", "").split(",") if f in PROFILE_FIELDS]
    form = await form_of(request)
    errors = FormErrors()
    if "username" in fields and not form.get("username"):
        errors.add("username", page.t("error.username_required"))
    if "password" in fields:
        check_new_password(page, form, errors)
    values = {"username": form.get("username", "")}
    if errors:
        return render_missing_profile(page, event, fields, errors=errors, values=values, status=400)
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        await service.set_profile(caller, {f: form[f] for f in fields}, merge=True)
        return see_other(await service.submit(caller) or "/sign-in")
    except RequestError as error:
        return await _after_failure(ctx, page, error, event, lambda errs: render_missing_profile(
            page, event, fields, errors=errs, values=values, status=error.status))


@post(["/sign-in/profile/verification-code", "/register/profile/verification-code"], include_in_schema=False,
      status_code=200)
async def send_profile_code(request: Request, ctx: Ctx) -> Response:
    """A missing email or phone: send it a code, then ask for the code."""
    event = profile_event(request)
    details, page = await live_page(ctx, request)
    # From the query string: any order or repetition names one of CONTACT_KINDS (email first).
    wanted = set(request.query_params.get("kinds", "")[:64].split(","))
    missing = ["emailOrPhone" if {"email", "phone"} <= wanted else "phone" if "phone" in wanted else "email"]
    kinds = CONTACT_KINDS[missing[0]]
    target = (await form_of(request)).get("contact", "")[:256]
    kind = kind_of(target, kinds)
    errors = FormErrors()
    if kind not in kinds or not matches(EMAIL if kind == "email" else PHONE, target):
        errors.add("contact", page.t("error.general_invalid", types=label_for(page, kinds)))
        return render_missing_profile(page, event, missing, errors=errors, status=400)
    try:
        await InteractionService(ctx, details=details, sie=page.sie).send_code(caller_of(request), {kind: target})
    except RequestError as error:
        errors.add("contact", page.error_sentence(error))
        return await _after_failure(ctx, page, error, event, lambda _: render_missing_profile(
            page, event, missing, errors=errors, status=error.status))
    return render_code(page, action=f"{profile_path(event)}/verify", target=target, back="/sign-in",
                       submit_label=page.t("action.continue"))


@post(["/sign-in/profile/verify", "/register/profile/verify"], include_in_schema=False, status_code=200)
async def link_profile_contact(request: Request, ctx: Ctx) -> Response:
    """The code of a missing email or phone: verified, it joins the profile, and the
    interaction is submitted again."""
    event = profile_event(request)
    details, page = await live_page(ctx, request)
    form = await form_of(request)
    target, code = code_form(form)
    action = f"{profile_path(event)}/verify"

    def again(errors: FormErrors, status: int) -> Response:
        return render_code(page, action=action, target=target, back="/sign-in",
                           submit_label=page.t("action.continue"), errors=errors, status=status)

    if not code:
        errors = FormErrors()
        errors.add("code", page.t("error.verification_code_required"))
        return again(errors, 400)
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    payload = code_payload(target, code)
    try:
        await service.add_identifier(caller, payload)
        await service.set_profile(caller, {k: v for k, v in payload.items() if k != "verificationCode"}, merge=True)
        return see_other(await service.submit(caller) or "/sign-in")
    except RequestError as error:
        return await _after_failure(ctx, page, error, event, lambda errs: again(errs, error.status))


# ------------------------------------------------------------------ verification codes


def render_code(page: Page, *, action: str, target: str, back: str, submit_label: str,
                errors: FormErrors | None = None, status: int = 200, new_password: bool = False,
                title: str | None = None) -> Response:
    kind = "email" if "@" in target else "phone"
    return page.render(
        "verification_code.html", status, title=title or page.t("action.enter_passcode"),
        errors=errors or FormErrors(), action=action, target=target, back=back, submit_label=submit_label,
        target_kind_label=page.t("description.email" if kind == "email" else "description.phone_number"),
        new_password=new_password, focus=focus_of(errors or FormErrors(), "code"),
    )


def code_payload(target: str, code: str) -> dict[str, str]:
    return {"email" if "@" in target else "phone": target, "verificationCode": code}


def code_form(form: dict[str, str]) -> tuple[str, str]:
    """The code step's recipient and code, at the lengths any real one has (one rule for every
    code form, before anything matches or sends them on)."""
    return form.get("target", "")[:256], form.get("code", "")[:64]


@post("/sign-in/verification-code", include_in_schema=False, status_code=200)
async def sign_in_send_code(request: Request, ctx: Ctx) -> Response:
    details, page = await live_page(ctx, request)
    form = await form_of(request)
    _, with_code = _sign_in_options(page)
    target = form.get("code_identifier", "")
    errors = FormErrors()
    if not with_code:
        errors.add("", page.error_sentence(RequestError("user.sign_in_method_not_enabled", 422)))
    elif not matches(EMAIL if kind_of(target, with_code) == "email" else PHONE, target):
        errors.add("code_identifier", page.t("error.general_invalid", types=label_for(page, with_code)))
    check_terms(page, form, errors)
    if errors:
        return await render_sign_in(ctx, page, errors=errors, status=400, code_identifier=target)
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        await service.start(caller, {"event": "SignIn"})
        await service.send_code(caller, {kind_of(target, with_code): target})
    except RequestError as error:
        return await _after_failure(ctx, page, error, "SignIn", lambda errs: render_sign_in(
            ctx, page, errors=_renamed(errs, "identifier", "code_identifier"), status=error.status,
            code_identifier=target))
    return render_code(page, action="/sign-in/verification-code/verify", target=target, back="/sign-in",
                       submit_label=page.t("action.sign_in"))


def _renamed(errors: FormErrors, old: str, new: str) -> FormErrors:
    renamed = FormErrors()
    for name, sentence in errors.items():
        renamed.add(new if name == old else name, sentence)
    return renamed


@post("/sign-in/verification-code/verify", include_in_schema=False, status_code=200)
async def sign_in_with_code(request: Request, ctx: Ctx) -> Response:
    return await _verify_code_and_submit(request, ctx, action="/sign-in/verification-code/verify", back="/sign-in",
                                         event="SignIn")


@post("/register/verification-code", include_in_schema=False, status_code=200)
async def register_with_code(request: Request, ctx: Ctx) -> Response:
    return await _verify_code_and_submit(request, ctx, action="/register/verification-code", back="/register",
                                         event="Register")


async def _verify_code_and_submit(request: Request, ctx: ServiceContext, *, action: str, back: str,
                                  event: str) -> Response:
    details, page = await live_page(ctx, request)
    target, code = code_form(await form_of(request))
    label = page.t("action.sign_in" if event == "SignIn" else "action.create_account")

    def again(errors: FormErrors, status: int):
        return render_code(page, action=action, target=target, back=back, submit_label=label,
                           errors=errors, status=status)

    if not code:
        errors = FormErrors()
        errors.add("code", page.t("error.verification_code_required"))
        return again(errors, 400)
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        await service.add_identifier(caller, code_payload(target, code))
        return see_other(await service.submit(caller) or "/sign-in")
    except RequestError as error:
        return await _after_failure(ctx, page, error, event, lambda errs: again(errs, error.status))


# ------------------------------------------------------------------ register


def _sign_up_fields(page: Page) -> dict[str, bool]:
    sign_up = page.sie["signUp"]
    identifiers = sign_up["identifiers"]
    return {"username": "username" in identifiers, "email": "email" in identifiers,
            "phone": "phone" in identifiers and "email" not in identifiers, "password": sign_up["password"]}


def render_register(page: Page, *, errors: FormErrors | None = None, values: dict[str, str] | None = None,
                    status: int = 200) -> Response:
    errors = errors or FormErrors()
    fields = _sign_up_fields(page)
    first = next((name for name in ("username", "email", "phone", "password") if fields[name]), "")
    return page.render("register.html", status, title=page.t("description.create_account"), errors=errors,
                       fields=fields, values=values or {}, focus=focus_of(errors, first),
                       can_sign_in=page.sie["signInMode"] != "Register")


@get("/register", include_in_schema=False)
async def register_page(request: Request, ctx: Ctx) -> Response:
    _, page = await live_page(ctx, request)
    if page.sie["signInMode"] == "SignIn":
        return see_other("/sign-in")
    return render_register(page)


@post("/register", include_in_schema=False, status_code=200)
async def register(request: Request, ctx: Ctx) -> Response:
    details, page = await live_page(ctx, request)
    form = await form_of(request)
    fields = _sign_up_fields(page)
    values = {name: form.get(name, "") for name in ("username", "email", "phone")}
    errors = FormErrors()
    if fields["username"] and not values["username"]:
        errors.add("username", page.t("error.username_required"))
    if fields["email"] and not values["email"]:
        errors.add("email", page.t("error.general_required", types=page.t("input.email")))
    if fields["phone"] and not values["phone"]:
        errors.add("phone", page.t("error.general_required", types=page.t("input.phone_number")))
    if fields["password"]:
        check_new_password(page, form, errors)
    check_terms(page, form, errors)
    if errors:
        return render_register(page, errors=errors, values=values, status=400)
    profile: dict[str, str] = {name: value for name, value in values.items() if fields[name] and value}
    if fields["password"]:
        profile["password"] = form["password"]
    target = profile.get("email") or profile.get("phone")
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        await service.start(caller, {"event": "Register", "profile": profile})
        if target:
            await service.send_code(caller, {"email" if "email" in profile else "phone": target})
            return render_code(page, action="/register/verification-code", target=target, back="/register",
                               submit_label=page.t("action.create_account"))
        return see_other(await service.submit(caller) or "/sign-in")
    except RequestError as error:
        return await _after_failure(ctx, page, error, "Register", lambda errs: render_register(
            page, errors=_renamed(errs, "identifier", "email" if fields["email"] else "phone"), values=values,
            status=error.status))


# ------------------------------------------------------------------ forgot password


async def render_forgot_password(ctx: ServiceContext, page: Page, *, errors: FormErrors | None = None,
                                 identifier: str = "", status: int = 200) -> Response:
    available = await public_sign_in_experience(ctx, page.sie)
    kinds = [k for k in ("email", "phone") if available["forgotPassword"][k]]
    types = " / ".join(page.t("description.email" if k == "email" else "description.phone_number") for k in kinds)
    errors = errors or FormErrors()
    return page.render(
        "forgot_password.html", status, title=page.t("description.reset_password"), errors=errors,
        label=label_for(page, kinds) if kinds else None, types=types, identifier=identifier,
        unavailable=page.error_sentence(RequestError("connector.not_found", 400)),
        focus=focus_of(errors, "identifier"),
    )


@get("/forgot-password", include_in_schema=False)
async def forgot_password_page(request: Request, ctx: Ctx) -> Response:
    _, page = await live_page(ctx, request)
    return await render_forgot_password(ctx, page)


@post("/forgot-password", include_in_schema=False, status_code=200)
async def forgot_password(request: Request, ctx: Ctx) -> Response:
    details, page = await live_page(ctx, request)
    form = await form_of(request)
    target = form.get("identifier", "")
    kind = "email" if "@" in target else "phone"
    errors = FormErrors()
    if not (matches(EMAIL, target) or matches(PHONE, target)):
        errors.add("identifier", page.t("error.invalid_email" if kind == "email" else "error.invalid_phone"))
    if errors:
        return await render_forgot_password(ctx, page, errors=errors, identifier=target, status=400)
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        await service.start(caller, {"event": "ForgotPassword"})
        await service.send_code(caller, {kind: target})
    except RequestError as error:
        return await _after_failure(ctx, page, error, FORGOT_PASSWORD, lambda errs: render_forgot_password(
            ctx, page, errors=errs, identifier=target, status=error.status))
    return render_code(page, action="/forgot-password/reset", target=target, back="/forgot-password",
                       submit_label=page.t("action.save_password"), new_password=True,
                       title=page.t("description.reset_password"))


@post("/forgot-password/reset", include_in_schema=False, status_code=200)
async def reset_password(request: Request, ctx: Ctx) -> Response:
    details, page = await live_page(ctx, request)
    form = await form_of(request)
    target, code = form.get("target", ""), form.get("code", "")
    errors = FormErrors()
    if not code:
        errors.add("code", page.t("error.verification_code_required"))
    check_new_password(page, form, errors)

    def again(errs: FormErrors, status: int) -> Response:
        return render_code(page, action="/forgot-password/reset", target=target, back="/forgot-password",
                           submit_label=page.t("action.save_password"), new_password=True, errors=errs,
                           status=status, title=page.t("description.reset_password"))

    if errors:
        return again(errors, 400)
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        # The password first: a refused password must not use the code up.
        await service.set_profile(caller, {"password": form["password"]}, merge=False)
        await service.add_identifier(caller, code_payload(target, code))
        await service.submit(caller)
    except RequestError as error:
        return await _after_failure(ctx, page, error, FORGOT_PASSWORD, lambda errs: again(errs, error.status))
    return page.render("message.html", title=page.t("description.password_changed"),
                       message=page.t("description.password_changed_description"),
                       link="/sign-in", link_label=page.t("action.sign_in"))


# ------------------------------------------------------------------ social


@post("/sign-in/social/{connector_id:str}", include_in_schema=False, status_code=200)
async def social_sign_in(request: Request, ctx: Ctx, connector_id: FromPath[str]) -> Response:
    details, page = await live_page(ctx, request)
    scheme, host = public_origin(request)
    state = secrets.token_urlsafe(16)
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        await service.start(caller, {"event": "SignIn"})
        redirect = await service.social_authorization_uri(caller, {
            "connectorId": connector_id, "state": state,
            "redirectUri": f"{scheme}://{host}/sign-in/social/{quote(connector_id, safe='')}/callback",
        })
    except RequestError as error:
        return await _after_failure(ctx, page, error, "SignIn",
                                    lambda errs: render_sign_in(ctx, page, errors=errs, status=error.status))
    # The provider sends the state back; only this browser's own state is accepted.
    state_cookie = Cookie(key=SOCIAL_STATE_COOKIE, value=state, path="/sign-in/social", httponly=True,
                          samesite="lax", max_age=600, secure=scheme == "https")
    return see_other(redirect, cookies=[state_cookie])


@get("/sign-in/social/{connector_id:str}/callback", include_in_schema=False)
async def social_callback(request: Request, ctx: Ctx, connector_id: FromPath[str]) -> Response:
    details, page = await live_page(ctx, request)
    connector_data: dict[str, Any] = dict(request.query_params)
    expected = request.cookies.get(SOCIAL_STATE_COOKIE)
    if not expected or not secrets.compare_digest(expected, connector_data.get("state", "")):
        errors = FormErrors()
        errors.add("", page.t("error.invalid_connector_auth"))
        return await render_sign_in(ctx, page, errors=errors, status=400)
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        await service.add_identifier(caller, {"connectorId": connector_id, "connectorData": connector_data})
        try:
            redirect = await service.submit(caller)
        except RequestError as error:
            if error.code != "user.identity_not_exist":
                raise
            related = (error.data or {}).get("relatedUser")
            if related:
                # An account has this social account's email or phone (which a new account
                # could not take): the user may link the social account to it.
                return render_social_link(page, connector_id, related)
            if page.sie["signInMode"] == "SignIn":
                raise
            redirect = await _register_socially(service, caller, connector_id)
    except RequestError as error:
        return await _after_failure(ctx, page, error, "SignIn",
                                    lambda errs: render_sign_in(ctx, page, errors=errs, status=error.status))
    return see_other(redirect or "/sign-in")


async def _register_socially(service: InteractionService, caller, connector_id: str) -> str | None:
    """A new social account: create the user from it (Logto's UI "create account")."""
    await service.change_event(caller, {"event": "Register"})
    await service.set_profile(caller, {"connectorId": connector_id}, merge=True)
    return await service.submit(caller)


def render_social_link(page: Page, connector_id: str, related: dict[str, str], *,
                       errors: FormErrors | None = None, status: int = 200) -> Response:
    kind = "email" if related.get("type") == "email" else "phone"
    value = str(related.get("value", ""))
    return page.render(
        "social_link.html", status, title=page.t("description.bind_account_title"), errors=errors or FormErrors(),
        message=page.t("description.link_account_id_exists",
                       type=page.t("description.email" if kind == "email" else "description.phone_number"),
                       value=value),
        kind=kind, value=value, connector_id=connector_id,
    )


@post("/sign-in/social/{connector_id:str}/link", include_in_schema=False, status_code=200)
async def social_link(request: Request, ctx: Ctx, connector_id: FromPath[str]) -> Response:
    """Link the social identity to the account with its verified email or phone (Logto §4.4:
    the value must be the one the provider vouched for, so a forged form gets nowhere)."""
    details, page = await live_page(ctx, request)
    form = await form_of(request)
    kind = "phone" if form.get("kind") == "phone" else "email"
    value = form.get("value", "")[:256]
    service = InteractionService(ctx, details=details, sie=page.sie)
    caller = caller_of(request)
    try:
        await service.add_identifier(caller, {"connectorId": connector_id, kind: value})
        await service.set_profile(caller, {"connectorId": connector_id}, merge=True)
        redirect = await service.submit(caller)
    except RequestError as error:
        return await _after_failure(ctx, page, error, "SignIn",
                                    lambda errs: render_sign_in(ctx, page, errors=errs, status=error.status))
    return see_other(redirect or "/sign-in")


# ------------------------------------------------------------------ consent and unknown session


@get("/sign-in/consent", include_in_schema=False)
async def consent_page(request: Request, ctx: Ctx) -> Response:
    details, page = await live_page(ctx, request)
    application = await InteractionService(ctx, details=details, sie=page.sie).application(details.client_id)
    name = application.name if application else details.client_id
    return page.render("consent.html", title=page.t("description.consent", name=name))


@post("/sign-in/consent", include_in_schema=False, status_code=200)
async def consent(request: Request, ctx: Ctx) -> Response:
    try:
        return see_other(await InteractionService(ctx).consent(caller_of(request)))
    except RequestError as error:
        if error.code == "session.not_found":
            return see_other(UNKNOWN_SESSION)
        page = await page_for(ctx, request)
        return page.render("message.html", error.status, title=page.t("description.consent", name=""),
                           message=page.error_sentence(error))


@get(STYLESHEET_PATH, include_in_schema=False)
async def stylesheet(ctx: Ctx) -> Response:
    """The sign-in experience's colours and custom CSS as a stylesheet of its own: CSS, however
    written, cannot close an element or run a script from here."""
    css = stylesheet_of(await load_sign_in_experience(ctx))
    return Response(css, media_type="text/css",
                    headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"})


@get(UNKNOWN_SESSION, include_in_schema=False)
async def unknown_session(request: Request, ctx: Ctx) -> Response:
    page = await page_for(ctx, request)
    return page.render("message.html", title=page.t("description.unknown_session"),
                       message=page.t("description.unknown_session_description"))


@get(["/me", "/me/{rest:path}"], include_in_schema=False)
async def me_elsewhere(request: Request, ctx: Ctx) -> Response:
    """`/me*` is the admin tenant's Me API (its gateway sends it to identity). On a user tenant's
    endpoint the path is the sign-in app's, as every unknown page of Logto's UI is: a page, 200."""
    page = await page_for(ctx, request)
    return page.render("message.html", title=page.t("description.not_found"),
                       message=page.t("description.not_found"))


static_files = create_static_files_router(
    path="/static/experience", directories=[Path(__file__).parent / "static"], include_in_schema=False,
)

route_handlers = [
    Router("/", route_handlers=[
        sign_in_page, sign_in, complete_profile, send_profile_code, link_profile_contact, sign_in_send_code,
        sign_in_with_code,
        register_page, register, register_with_code, forgot_password_page, forgot_password, reset_password,
        social_sign_in, social_callback, social_link, consent_page, consent, unknown_session, stylesheet, me_elsewhere,
    ], exception_handlers={NoLiveInteraction: _to_unknown_session}, request_max_body_size=FORM_MAX_BYTES,
       guards=[same_origin]),
    static_files,
]

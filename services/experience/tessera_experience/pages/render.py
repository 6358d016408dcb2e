"""Rendering the hosted sign-in pages: the sign-in experience's look (colours, dark mode, logo,
custom CSS, terms links) and language (custom phrases applied) around a Jinja template.

Pages work without JavaScript: plain forms, errors rendered by the server as sentences next
to their field, announced through a `role="alert"` summary that links to each field.
"""

from __future__ import annotations

import functools
import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

from litestar import Request, Response

from tessera_experience import phrases
from tessera_experience.config.domain import is_url
from tessera_experience.config.routes import candidate_languages, load_sign_in_experience, resolve_phrases
from tessera_experience.interaction.guards import PASSWORD_MIN_LENGTH
from tessera_kit.app import ServiceContext
from tessera_kit.errors import RequestError

TEMPLATES = Path(__file__).parent / "templates"
STYLESHEET_PATH = "/sign-in/experience.css"
if TYPE_CHECKING:
    from jinja2 import Environment


@functools.cache
def _environment() -> Environment:
    """Jinja, imported and set up for the first page served: ~5 MB the service does not hold
    while nobody signs in through the hosted pages (the API's sign-in does not use them)."""
    from jinja2 import Environment, FileSystemLoader, select_autoescape

    return Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        trim_blocks=True,
        lstrip_blocks=True,
    )
# Every page: scripts, styles and frames only from here (no inline script or style at all:
# the sign-in experience's CSS is a stylesheet of its own), never inside another site's frame.
# No `form-action`: a sign-in ends in redirects to the application, which browsers check too.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src * data:; connect-src 'self'; "
    "object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
PAGE_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}

# Which form field an API error belongs next to; the others go to the top of the form.
FIELD_OF_ERROR = {
    "session.invalid_credentials": "password",
    "user.suspended": "identifier",
    "user.user_not_exist": "identifier",
    "user.sign_in_method_not_enabled": "identifier",
    "user.username_already_in_use": "username",
    "user.email_already_in_use": "email",
    "user.phone_already_in_use": "phone",
    "user.same_password": "password",
    "user.new_password_required_in_profile": "password",
    "verification_code.not_found": "code",
    "verification_code.code_mismatch": "code",
    "verification_code.expired": "code",
    "verification_code.exceed_max_try": "code",
    "verification_code.email_mismatch": "code",
    "verification_code.phone_mismatch": "code",
    "connector.not_found": "identifier",
}
# guard.invalid_input issue paths (last segment) -> field and phrase.
FIELD_OF_ISSUE = {
    "username": ("username", "error.username_invalid_charset"),
    "email": ("email", "error.invalid_email"),
    "phone": ("phone", "error.invalid_phone"),
    "password": ("password", "error.invalid_password"),
    "verificationCode": ("code", "error.invalid_passcode"),
}


def stylesheet_of(sie: Mapping[str, Any]) -> str:
    """The colours (validated hex values), dark mode and the custom CSS: a stylesheet served
    on its own (`text/css`), so no text in it can end an element or start a script."""
    color = sie["color"]
    css = [f":root {{ --primary: {color['primaryColor']}; }}"]
    if color["isDarkModeEnabled"]:
        css.append(
            "@media (prefers-color-scheme: dark) { :root { color-scheme: dark; "
            f"--primary: {color['darkPrimaryColor']}; --background: #1a1a1e; --surface: #25252b; "
            "--text: #f2f2f5; --muted: #b4b4bd; --border: #4a4a55; } }"
        )
    if sie.get("customCss"):
        css.append(sie["customCss"])
    return "\n".join(css)


@dataclass
class FormErrors:
    """Sentences per field (`""` is the form as a whole), in the order they were found."""

    by_field: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, sentence: str) -> None:
        self.by_field.setdefault(name, sentence)

    def __bool__(self) -> bool:
        return bool(self.by_field)

    def get(self, name: str) -> str | None:
        return self.by_field.get(name)

    def items(self):
        return self.by_field.items()


@dataclass
class Page:
    """What every template gets: the look, the language, and a translator."""

    ctx: ServiceContext
    request: Request
    sie: dict[str, Any]
    language: str
    tree: dict[str, Any]
    ui_locales: str | None = None
    agreed: bool = False  # the terms box, kept ticked when a posted form comes back with errors

    def t(self, key: str, **values: Any) -> str:
        return phrases.lookup(self.tree, key, **values)

    def error_sentence(self, error: RequestError) -> str:
        return phrases.error_sentence(self.language, error.code) or error.message

    def errors_from(self, error: RequestError, *, identifier_field: str = "identifier") -> FormErrors:
        errors = FormErrors()
        if error.code == "guard.invalid_input":
            for issue in (error.data or {}).get("issues", []):
                name = (issue.get("path") or [""])[-1]
                field_name, key = FIELD_OF_ISSUE.get(name, ("", "error.unknown"))
                errors.add(field_name, self.t(key, min=PASSWORD_MIN_LENGTH))
            if not errors:
                errors.add("", self.t("error.unknown"))
            return errors
        name = FIELD_OF_ERROR.get(error.code, "")
        errors.add(identifier_field if name == "identifier" else name, self.error_sentence(error))
        return errors

    @property
    def style(self) -> str:
        return stylesheet_of(self.sie)

    @property
    def stylesheet_url(self) -> str:
        """The sign-in experience's stylesheet, versioned by its content so a change shows at once."""
        version = hashlib.sha256(self.style.encode()).hexdigest()[:16]
        return f"{STYLESHEET_PATH}?v={version}"

    @property
    def terms(self) -> list[tuple[str, str]]:
        """(label, URL) of the terms of use and the privacy policy, where set."""
        links = []
        # Only http(s): a link stored before that rule held must not become a `javascript:` href.
        if self.sie.get("termsOfUseUrl") and is_url(self.sie["termsOfUseUrl"]):
            links.append((self.t("description.terms_of_use"), self.sie["termsOfUseUrl"]))
        if self.sie.get("privacyPolicyUrl") and is_url(self.sie["privacyPolicyUrl"]):
            links.append((self.t("description.privacy_policy"), self.sie["privacyPolicyUrl"]))
        return links

    def render(self, template: str, status: int = 200, **values: Any) -> Response:
        html = _environment().get_template(template).render(page=self, t=self.t, sie=self.sie, **values)
        return Response(html, status_code=status, media_type="text/html; charset=utf-8",
                        headers={**PAGE_HEADERS, "cache-control": "no-store", "content-language": self.language})


async def page_for(ctx: ServiceContext, request: Request, params: Mapping[str, str] | None = None) -> Page:
    """The page's look and language; `params` are the authorization request's (ui_locales)."""
    sie = await load_sign_in_experience(ctx)
    ui_locales = (params or {}).get("ui_locales") or request.query_params.get("lng") or ""
    first = ui_locales.split()[0] if ui_locales.split() else None
    language, tree = await resolve_phrases(ctx, candidate_languages(request, sie, first), sie=sie)
    return Page(ctx, request, sie, language, tree, ui_locales or None)

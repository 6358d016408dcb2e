"""The hosted sign-in pages without JavaScript: plain form posts, server-rendered answers.
Against the same stand-ins of identity and connectors as the API tests."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

PASSWORD = "s3cret-Pass"
NEW_PASSWORD = "n3w-Password"


async def set_sie(d, body):
    response = await d.client.patch("/api/sign-in-exp", json=body)
    assert response.status_code == 200, response.text


def method(identifier, password=True, code=False):
    return {"identifier": identifier, "password": password, "verificationCode": code, "isPasswordPrimary": True}


def field_error(html: str, name: str) -> str | None:
    match = re.search(rf'<p class="error" id="{name}-error">(.*?)</p>', html, re.S)
    return match[1].strip() if match else None


def stylesheet_of(html: str) -> str:
    """The sign-in experience's own stylesheet that the page links to."""
    return re.search(r'<link rel="stylesheet" href="(/sign-in/experience\.css\?v=\w+)">', html)[1]


async def form(d, path, data):
    return await d.client.post(path, data=data)


async def submitted(d):
    return [t for t in await d.event_types() if t.rsplit(".", 1)[-1] in ("signed_in", "registered", "password_reset")]


async def test_pages_without_an_interaction_go_to_unknown_session(deployment):
    d = deployment
    for path in ("/sign-in", "/register", "/forgot-password", "/sign-in/consent"):
        response = await d.client.get(path)
        assert response.status_code == 303 and response.headers["location"] == "/unknown-session", path
    response = await form(d, "/sign-in", {"identifier": "a", "password": "b"})
    assert response.headers["location"] == "/unknown-session"
    page = await d.client.get("/unknown-session")
    assert page.status_code == 200 and "This sign-in session has ended" in page.text


async def test_sign_in_page_is_styled_by_the_sign_in_experience(deployment):
    d = deployment
    d.use_interaction()
    response = await d.client.get("/sign-in")
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/html")
    html = response.text
    assert '<html lang="en">' in html
    theme = (await d.client.get(stylesheet_of(html))).text
    assert "--primary: #6139F6" in theme and "prefers-color-scheme: dark" not in theme
    assert '<img src="https://logo.test' not in html and 'src="https://logo.io' not in html
    assert '<img src="https://logto.io/logo.svg" alt="">' in html
    assert '<label for="identifier">Username</label>' in html
    assert '<label for="password">Password</label>' in html
    assert 'autocomplete="current-password"' in html and " autofocus" in html
    assert 'href="/register"' in html and 'href="/forgot-password"' not in html
    assert 'name="agree"' not in html
    css = await d.client.get("/static/experience/style.css")
    assert css.status_code == 200 and "--primary" in css.text


async def test_dark_mode_custom_css_and_terms(deployment):
    d = deployment
    await set_sie(d, {
        "color": {"primaryColor": "#112233", "isDarkModeEnabled": True, "darkPrimaryColor": "#445566"},
        "branding": {"logoUrl": "https://brand.test/light.svg", "darkLogoUrl": "https://brand.test/dark.svg"},
        "customCss": ".card { border: 1px solid red } </style><script>alert(1)</script>",
        "termsOfUseUrl": "https://brand.test/terms", "privacyPolicyUrl": "https://brand.test/privacy",
    })
    d.identity.add_user(username="alice", password=PASSWORD)
    d.use_interaction()
    html = (await d.client.get("/sign-in")).text
    theme = await d.client.get(stylesheet_of(html))
    assert theme.headers["content-type"] == "text/css; charset=utf-8"
    assert "--primary: #112233" in theme.text and "--primary: #445566" in theme.text
    assert '<source srcset="https://brand.test/dark.svg" media="(prefers-color-scheme: dark)">' in html
    assert ".card { border: 1px solid red }" in theme.text and "<script>" not in html
    assert 'href="https://brand.test/terms"' in html and 'href="https://brand.test/privacy"' in html
    refused = await form(d, "/sign-in", {"identifier": "alice", "password": PASSWORD})
    assert refused.status_code == 400
    assert field_error(refused.text, "agree") == "You need to agree to the terms to continue"
    assert await submitted(d) == []
    accepted = await form(d, "/sign-in", {"identifier": "alice", "password": PASSWORD, "agree": "yes"})
    assert accepted.status_code == 303


async def test_sign_in_with_password(deployment):
    d = deployment
    alice = d.identity.add_user(username="alice", password=PASSWORD)
    cookie = d.use_interaction()
    response = await form(d, "/sign-in", {"identifier": "alice", "password": PASSWORD})
    assert response.status_code == 303
    assert response.headers["location"] == f"http://tessera.test/oidc/auth/{cookie.split('.')[0]}"
    assert d.identity.interactions[cookie.split(".")[0]].login_account_id == alice.id
    assert await submitted(d) == ["experience.interaction.signed_in"]
    # The page, the step and the submit share one read of the OIDC interaction (it was three).
    assert d.identity.calls.count("interaction_details") == 1


async def test_wrong_password_is_a_sentence_next_to_the_field(deployment):
    d = deployment
    d.identity.add_user(username="alice", password=PASSWORD)
    d.use_interaction()
    response = await form(d, "/sign-in", {"identifier": "alice", "password": "wrong-one1"})
    assert response.status_code == 422
    html = response.text
    assert field_error(html, "password") == "The account or the password is wrong."
    assert 'aria-invalid="true" aria-describedby="password-error"' in html
    assert 'role="alert"' in html and '<a href="#password">' in html
    assert 'value="alice"' in html and "wrong-one1" not in html  # the password is never echoed
    assert re.search(r'id="password"[^>]*autofocus', html)
    assert await submitted(d) == []


async def test_empty_fields(deployment):
    d = deployment
    d.use_interaction()
    response = await form(d, "/sign-in", {"identifier": "", "password": ""})
    assert response.status_code == 400
    assert field_error(response.text, "identifier") == "Username is required"
    assert field_error(response.text, "password") == "Enter a password"


async def test_pages_speak_the_users_language_with_custom_phrases(deployment):
    d = deployment
    d.use_interaction()
    french = await d.client.get("/sign-in", headers={"accept-language": "fr-FR, fr;q=0.9"})
    assert '<html lang="fr">' in french.text and "Nom d&#39;utilisateur" in french.text
    assert french.headers["content-language"] == "fr"
    await d.client.put("/api/custom-phrases/en", json={"input": {"username": "Login name"},
                                                       "action": {"sign_in": "Let me in"}})
    english = await d.client.get("/sign-in")
    assert '<label for="identifier">Login name</label>' in english.text and "Let me in" in english.text
    await d.client.put("/api/custom-phrases/de", json={"input": {"password": "Passwort"}})
    german = await d.client.get("/sign-in", headers={"accept-language": "de"})
    assert '<html lang="de">' in german.text and '<label for="password">Passwort</label>' in german.text
    wrong = await d.client.post("/sign-in", data={"identifier": "x", "password": "y"},
                                headers={"accept-language": "fr"})
    assert field_error(wrong.text, "password") == "Le compte ou le mot de passe est incorrect."


async def test_sign_in_fills_in_a_missing_username(deployment):
    d = deployment
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    await set_sie(d, {"signIn": {"methods": [method("username"), method("email")]}})
    carol = d.identity.add_user(primary_email="carol@example.com", password=PASSWORD)
    d.use_interaction()
    response = await form(d, "/sign-in", {"identifier": "carol@example.com", "password": PASSWORD})
    assert response.status_code == 422
    assert '<label for="username">Username</label>' in response.text
    action = re.search(r'<form method="post" action="([^"]+)"', response.text)[1]
    assert action == "/sign-in/profile?fields=username"
    bad = await form(d, action, {"username": "1carol"})
    assert bad.status_code == 400 and field_error(bad.text, "username")
    done = await form(d, action, {"username": "carol"})
    assert done.status_code == 303 and carol.username == "carol"
    assert await submitted(d) == ["experience.interaction.signed_in"]


async def test_a_registration_fills_in_its_missing_password_on_the_register_path(deployment):
    d = deployment
    d.use_interaction()
    # A custom UI started the registration without the password the sign-up asks for.
    assert (await d.client.put("/api/interaction", json={"event": "Register", "profile": {"username": "dana"}})
            ).status_code == 204
    bad = await form(d, "/register/profile?fields=password", {"password": PASSWORD, "confirm_password": "other"})
    assert bad.status_code == 400 and field_error(bad.text, "confirm_password")
    action = re.search(r'<form method="post" action="([^"]+)"', bad.text)[1]
    assert action == "/register/profile?fields=password"
    done = await form(d, action, {"password": PASSWORD, "confirm_password": PASSWORD})
    assert done.status_code == 303, done.text
    assert await submitted(d) == ["experience.interaction.registered"]
    (dana,) = d.identity.users.values()
    assert dana.username == "dana" and dana.password == PASSWORD


async def test_register(deployment):
    d = deployment
    d.use_interaction()
    page = await d.client.get("/register")
    assert page.status_code == 200
    assert '<label for="username">Username</label>' in page.text
    assert 'autocomplete="new-password"' in page.text and 'href="/sign-in"' in page.text
    mismatch = await form(d, "/register", {"username": "gina", "password": PASSWORD, "confirm_password": "x"})
    assert mismatch.status_code == 400
    assert field_error(mismatch.text, "confirm_password") == "The passwords do not match. Please try again."
    weak = await form(d, "/register", {"username": "gina", "password": "short", "confirm_password": "short"})
    assert field_error(weak.text, "password").startswith("A password needs at least 8 characters")
    done = await form(d, "/register", {"username": "gina", "password": PASSWORD, "confirm_password": PASSWORD})
    assert done.status_code == 303, done.text
    (gina,) = d.identity.users.values()
    assert gina.username == "gina" and gina.password == PASSWORD
    assert await submitted(d) == ["experience.interaction.registered"]


async def test_register_with_a_taken_username(deployment):
    d = deployment
    d.identity.add_user(username="ivy")
    d.use_interaction()
    response = await form(d, "/register", {"username": "ivy", "password": PASSWORD, "confirm_password": PASSWORD})
    assert response.status_code == 422
    assert field_error(response.text, "username") == "This username is already taken."
    assert await submitted(d) == []


async def test_register_mode_rules(deployment):
    d = deployment
    d.use_interaction()
    await set_sie(d, {"signInMode": "SignIn"})
    assert (await d.client.get("/register")).headers["location"] == "/sign-in"
    assert 'href="/register"' not in (await d.client.get("/sign-in")).text
    await set_sie(d, {"signInMode": "Register"})
    assert (await d.client.get("/sign-in")).headers["location"] == "/register"


async def test_register_with_an_email_code(deployment):
    d = deployment
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    await set_sie(d, {"signUp": {"identifiers": ["email"], "password": False, "verify": True},
                      "signIn": {"methods": [method("email", password=False, code=True)]}})
    d.use_interaction()
    page = await d.client.get("/register")
    assert '<label for="email">Email</label>' in page.text and 'name="password"' not in page.text
    code_page = await form(d, "/register", {"email": "jo@example.com"})
    assert code_page.status_code == 200 and '<label for="code">Verification code</label>' in code_page.text
    wrong = await form(d, "/register/verification-code", {"target": "jo@example.com", "code": "999999"
                                                          if d.connectors.last_code() != "999999" else "000000"})
    assert wrong.status_code == 400 and field_error(wrong.text, "code") == "The verification code is wrong."
    done = await form(d, "/register/verification-code", {"target": "jo@example.com",
                                                         "code": d.connectors.last_code()})
    assert done.status_code == 303
    (jo,) = d.identity.users.values()
    assert jo.primary_email == "jo@example.com"


async def test_sign_in_with_a_code(deployment):
    d = deployment
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    await set_sie(d, {"signIn": {"methods": [method("username"), method("email", code=True)]}})
    kim = d.identity.add_user(username="kim", primary_email="kim@example.com", password=PASSWORD)
    d.use_interaction()
    page = await d.client.get("/sign-in")
    assert 'action="/sign-in/verification-code"' in page.text
    code_page = await form(d, "/sign-in/verification-code", {"code_identifier": "kim@example.com"})
    assert code_page.status_code == 200 and "kim@example.com" in code_page.text
    done = await form(d, "/sign-in/verification-code/verify", {"target": "kim@example.com",
                                                               "code": d.connectors.last_code()})
    assert done.status_code == 303
    (_, event), = await d.events("experience.interaction.signed_in")
    assert event["user_id"] == kim.id


async def test_code_without_a_connector_is_explained(deployment):
    d = deployment
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    await set_sie(d, {"signIn": {"methods": [method("username"), method("email", code=True)]}})
    await d.stop_serving("connectors")
    d.use_interaction()
    response = await form(d, "/sign-in/verification-code", {"code_identifier": "kim@example.com"})
    # The read model knows an Email connector, so this is the connectors service being away.
    assert response.status_code == 503 and 'role="alert"' in response.text
    assert "The service is busy. Please try again in a moment." in response.text


async def test_forgot_password(deployment):
    d = deployment
    d.use_interaction()
    unavailable = await d.client.get("/forgot-password")
    assert "No email or SMS service is set up" in unavailable.text
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    nina = d.identity.add_user(username="nina", primary_email="nina@example.com", password=PASSWORD)
    assert 'href="/forgot-password"' in (await d.client.get("/sign-in")).text
    page = await d.client.get("/forgot-password")
    assert '<label for="identifier">Email</label>' in page.text
    code_page = await form(d, "/forgot-password", {"identifier": "nina@example.com"})
    assert code_page.status_code == 200 and 'name="confirm_password"' in code_page.text
    same = await form(d, "/forgot-password/reset", {"target": "nina@example.com", "code": d.connectors.last_code(),
                                                    "password": PASSWORD, "confirm_password": PASSWORD})
    assert same.status_code == 422
    assert field_error(same.text, "password") == "The new password must be different from the current one."
    await form(d, "/forgot-password", {"identifier": "nina@example.com"})
    done = await form(d, "/forgot-password/reset", {"target": "nina@example.com", "code": d.connectors.last_code(),
                                                    "password": NEW_PASSWORD, "confirm_password": NEW_PASSWORD})
    assert done.status_code == 200 and "Your password has been changed" in done.text
    assert nina.password == NEW_PASSWORD
    assert await submitted(d) == ["experience.interaction.password_reset"]


async def test_consent_page_submits_itself(deployment):
    d = deployment
    rose = d.identity.add_user(username="rose")
    cookie = d.use_interaction(prompt="consent", session_account_id=rose.id)
    page = await d.client.get("/sign-in/consent")
    assert page.status_code == 200
    assert 'action="/sign-in/consent"' in page.text and '<script src="/static/experience/consent.js">' in page.text
    assert "Test App" in page.text
    response = await d.client.post("/sign-in/consent")
    assert response.status_code == 303
    assert response.headers["location"] == f"http://tessera.test/oidc/auth/{cookie.split('.')[0]}"


async def test_social_sign_in_creates_the_account(deployment):
    d = deployment
    social = await d.connectors.add("Social", target="mock-social")
    await d.wait_for_connectors(1)
    await set_sie(d, {"socialSignInConnectorTargets": ["mock-social"],
                      "signUp": {"identifiers": [], "password": False, "verify": False}})
    d.use_interaction()
    page = await d.client.get("/sign-in")
    assert f'action="/sign-in/social/{social.id}"' in page.text and "Continue with Mock Social" in page.text
    started = await d.client.post(f"/sign-in/social/{social.id}")
    assert started.status_code == 303
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    forged = await d.client.get(f"/sign-in/social/{social.id}/callback", params={"state": "forged", "code": "c"})
    assert forged.status_code == 400
    back = await d.client.get(f"/sign-in/social/{social.id}/callback",
                              params={"state": state, "code": "c", "userId": "s-9", "name": "Uma"})
    assert back.status_code == 303, back.text
    (uma,) = d.identity.users.values()
    assert uma.identities["mock-social"]["user_id"] == "s-9"
    assert await submitted(d) == ["experience.interaction.registered"]


@pytest.mark.parametrize("path", ["/sign-in", "/register"])
async def test_every_input_has_a_label(deployment, path):
    deployment.use_interaction()
    html = (await deployment.client.get(path)).text
    inputs = re.findall(r'<input id="([^"]+)"', html)
    assert inputs
    for name in inputs:
        assert f'<label for="{name}">' in html, name


def test_jinja_is_imported_for_the_first_page_not_at_start():
    """~5 MB of an idle service that serves no page (tessera_experience.pages.render)."""
    import subprocess
    import sys

    script = "\n".join([
        "import importlib, pkgutil, sys, tessera_experience",
        "for m in pkgutil.walk_packages(tessera_experience.__path__, 'tessera_experience.'):",
        "    if not m.name.endswith('.main'):",
        "        importlib.import_module(m.name)",
        "print('at start:', 'jinja2' in sys.modules)",
        "from tessera_experience.pages import render",
        "render._environment().get_template('sign_in.html')",
        "print('after a page:', 'jinja2' in sys.modules)",
    ])
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.split("\n")[:2] == ["at start: False", "after a page: True"], done.stdout + done.stderr

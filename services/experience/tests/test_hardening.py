"""The sign-in surface under hostile input (issue 11): inputs capped before any regex and
bodies capped per route, CSS that cannot leave its stylesheet, a Content-Security-Policy on
every page, http(s)-only links, no plaintext password at rest, and cross-site requests refused."""

from __future__ import annotations

import itertools
import re

import pytest

from tessera_experience.interaction import guards
from tessera_experience.pages import routes as pages
from tessera_kit import regexes

PASSWORD = "s3cret-Pass"


def error(response, status, code):
    assert response.status_code == status, response.text
    body = response.json()
    assert body["code"] == code, response.text
    return body


class SpyPattern:
    """Stands in for a regex and remembers every string it was asked about."""

    def __init__(self, pattern: re.Pattern[str]) -> None:
        self.pattern = pattern
        self.seen: list[str] = []

    def fullmatch(self, value: str):
        self.seen.append(value)
        return self.pattern.fullmatch(value)


# ------------------------------------------------------------------ ReDoS (item 1)


def test_email_rule_accepts_exactly_what_logtos_accepts():
    logto = re.compile(r"\S+@\S+\.\S+")
    for length in range(8):
        for letters in itertools.product("a@. ", repeat=length):
            value = "".join(letters)
            assert bool(regexes.EMAIL.fullmatch(value)) == bool(logto.fullmatch(value)), value


def test_over_long_values_never_reach_a_regex():
    spy = SpyPattern(regexes.EMAIL)
    assert regexes.matches(spy, "a@b.co")  # type: ignore[arg-type]
    assert not regexes.matches(spy, "@" * 30_000)  # type: ignore[arg-type]
    assert spy.seen == ["a@b.co"]


@pytest.mark.parametrize("size", [30_000, 1_000_000])
async def test_big_bodies_of_at_signs_are_refused_unread(deployment, size):
    d = deployment
    d.use_interaction()
    spy = SpyPattern(regexes.EMAIL)
    guards_email, guards.EMAIL = guards.EMAIL, spy
    try:
        for method, path in (("put", "/api/interaction"), ("patch", "/api/interaction/identifiers"),
                             ("post", "/api/interaction/verification/verification-code"),
                             ("post", "/api/verification-codes"), ("post", "/api/verification-codes/verify")):
            raw = await d.client.request(method, path, content=b"@" * size,
                                         headers={"content-type": "application/json"})
            assert raw.status_code == 413, (path, raw.text)
            as_json = await d.client.request(method, path, json={
                "event": "SignIn", "email": "@" * size, "verificationCode": "1",
                "identifier": {"email": "@" * size, "verificationCode": "1"}})
            assert as_json.status_code == 413, (path, as_json.text)
        page = await d.client.post("/forgot-password", data={"identifier": "@" * size})
        assert page.status_code == 413
    finally:
        guards.EMAIL = guards_email
    assert spy.seen == []


async def test_over_long_fields_are_too_big_before_any_regex(deployment, monkeypatch):
    d = deployment
    d.use_interaction()
    spy = SpyPattern(regexes.EMAIL)
    monkeypatch.setattr(pages, "EMAIL", spy)
    guards_email, guards.EMAIL = guards.EMAIL, spy
    try:
        at_signs = "@" * 10_000
        body = error(await d.client.put("/api/interaction", json={
            "event": "SignIn", "identifier": {"email": at_signs, "verificationCode": "1"}}), 400, "guard.invalid_input")
        assert body["data"]["issues"][0]["path"] == ["identifier", "email"]
        assert body["data"]["issues"][0]["code"] == "too_big"
        error(await d.client.post("/api/interaction/verification/verification-code", json={"email": at_signs}),
              400, "guard.invalid_input")
        error(await d.client.put("/api/interaction", json={
            "event": "Register", "profile": {"email": at_signs}}), 400, "guard.invalid_input")
        error(await d.client.patch("/api/interaction/identifiers", json={
            "username": "alice", "password": "x" * (regexes.PASSWORD_MAX_LENGTH + 1)}), 400, "guard.invalid_input")
        page = await d.client.post("/forgot-password", data={"identifier": "@" * 3_000})
        assert page.status_code == 400
    finally:
        guards.EMAIL = guards_email
    assert spy.seen == []


# ------------------------------------------------------------------ custom CSS and CSP (item 2)

PAGE_PATHS = ("/sign-in", "/register", "/forgot-password", "/sign-in/consent", "/unknown-session")
SCRIPT_PAYLOADS = [
    "</sty</stylele><script>alert(1)</script>",
    "</STYLE ><script>alert(2)</script><style>",
    "a{}</style\n><img src=x onerror=alert(3)>",
]


@pytest.mark.parametrize("payload", SCRIPT_PAYLOADS)
async def test_custom_css_cannot_put_markup_on_a_page(deployment, payload):
    d = deployment
    response = await d.client.patch("/api/sign-in-exp", json={"customCss": f".card {{ color: red }} {payload}"})
    assert response.status_code == 200
    d.use_interaction(login_account_id=None, session_account_id=None)
    html = (await d.client.get("/sign-in")).text
    assert "alert(" not in html and "<style" not in html.lower() and "<script" not in html.lower()
    link = re.search(r'<link rel="stylesheet" href="(/sign-in/experience\.css\?v=\w+)">', html)[1]
    css = await d.client.get(link)
    assert css.status_code == 200 and css.headers["content-type"] == "text/css; charset=utf-8"
    assert css.headers["x-content-type-options"] == "nosniff"
    assert css.text.endswith(payload)  # the admin's CSS, as written, where it can only be CSS


async def test_every_page_has_a_content_security_policy_without_inline_script(deployment):
    d = deployment
    alice = d.identity.add_user(username="alice", password=PASSWORD)
    d.use_interaction(prompt="consent", session_account_id=alice.id)
    for path in PAGE_PATHS:
        response = await d.client.get(path)
        assert response.status_code == 200, path
        policy = response.headers["content-security-policy"]
        directives = dict(part.strip().split(" ", 1) for part in policy.split(";"))
        assert directives["frame-ancestors"] == "'none'" and directives["script-src"] == "'self'", path
        assert directives["style-src"] == "'self'" and directives["object-src"] == "'none'", path
        assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
        html = response.text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path  # no inline script
        assert not re.search(r"\son[a-z]+\s*=", html) and "<style" not in html, path
    consent = (await d.client.get("/sign-in/consent")).text
    assert '<script src="/static/experience/consent.js"></script>' in consent
    script = await d.client.get("/static/experience/consent.js")
    assert script.status_code == 200 and 'getElementById("consent").submit()' in script.text


# ------------------------------------------------------------------ http(s)-only links (item 8)

NOT_WEB_URLS = ["javascript:alert(document.domain)", "JavaScript:alert(1)", " javascript:alert(1)",
                "java\tscript:alert(1)", "data:text/html,<script>alert(1)</script>", "vbscript:msgbox(1)",
                "file:///etc/passwd", "https://", "//evil.test/x"]


@pytest.mark.parametrize("url", NOT_WEB_URLS)
async def test_links_and_images_of_the_sign_in_experience_are_http_or_https(deployment, url):
    d = deployment
    for body, path in (({"termsOfUseUrl": url}, "termsOfUseUrl"), ({"privacyPolicyUrl": url}, "privacyPolicyUrl"),
                       ({"branding": {"logoUrl": url}}, "branding.logoUrl"),
                       ({"branding": {"logoUrl": "https://ok.test/l.svg", "darkLogoUrl": url}}, "branding.darkLogoUrl"),
                       ({"branding": {"favicon": url}}, "branding.favicon")):
        answer = error(await d.client.patch("/api/sign-in-exp", json=body), 400, "guard.invalid_input")
        assert answer["data"]["issues"][0]["path"] == path.split("."), answer
    stored = (await d.client.get("/api/sign-in-exp")).json()
    assert url not in (stored["termsOfUseUrl"], stored["privacyPolicyUrl"], *stored["branding"].values())


async def test_web_links_are_accepted_and_a_stored_script_link_is_never_rendered(deployment):
    d = deployment
    response = await d.client.patch("/api/sign-in-exp", json={
        "termsOfUseUrl": "https://brand.test/terms", "privacyPolicyUrl": "http://brand.test/privacy",
        "branding": {"logoUrl": "https://brand.test/logo.svg", "favicon": "https://brand.test/favicon.ico"}})
    assert response.status_code == 200, response.text
    # A row written before the rule (or by hand) still cannot put a script link on a page.
    await d.ctx.pool.execute("UPDATE sign_in_experiences SET terms_of_use_url = 'javascript:alert(1)'")
    d.use_interaction()
    html = (await d.client.get("/sign-in")).text
    assert "javascript:" not in html and 'href="http://brand.test/privacy"' in html


# ------------------------------------------------------------------ cross-site requests (item 7)

EVIL = "https://evil.test"


async def send(d, method, path, headers, **kwargs):
    """A request with `headers` (None: the header is left out, even the client's default Origin)."""
    request = d.client.build_request(method, path, **kwargs)
    for name, value in headers.items():
        if value is None:
            request.headers.pop(name, None)
        else:
            request.headers[name] = value
    return await d.client.send(request)


async def test_cross_origin_requests_with_the_interaction_cookie_are_refused(deployment):
    d = deployment
    alice = d.identity.add_user(username="alice", password=PASSWORD)
    cookie = d.use_interaction()
    sign_in = {"event": "SignIn", "identifier": {"username": "alice", "password": PASSWORD}}
    for headers in ({"origin": EVIL}, {"origin": "null"}, {"origin": "http://tessera.test.evil.test"},
                    {"origin": None, "referer": f"{EVIL}/page"},
                    {"origin": None, "sec-fetch-site": "cross-site"}, {"origin": None, "sec-fetch-site": "same-site"}):
        refused = await send(d, "PUT", "/api/interaction", headers, json=sign_in)
        body = error(refused, 403, "auth.forbidden")
        assert set(body) >= {"code", "message"}
        error(await send(d, "POST", "/api/interaction/submit", headers), 403, "auth.forbidden")
        page = await send(d, "POST", "/sign-in", headers, data={"identifier": "alice", "password": PASSWORD})
        error(page, 403, "auth.forbidden")
    assert await d.ctx.pool.fetchval("SELECT count(*) FROM interactions") == 0
    assert d.identity.interactions[cookie.split(".")[0]].login_account_id is None
    # From the pages themselves: the endpoint's origin, the origin the request came to, or a
    # same-site Referer when a browser left Origin out; and a server-side client (Logto's
    # SDKs, its suite) that sends neither and no Fetch Metadata either.
    for headers in ({"origin": "http://tessera.test"}, {"origin": "http://experience"},
                    {"origin": None, "referer": "http://tessera.test/sign-in"},
                    {"origin": None, "sec-fetch-site": "same-origin"}, {"origin": None}):
        assert (await send(d, "PUT", "/api/interaction", headers, json=sign_in)).status_code == 204
    page = await d.client.post("/sign-in", data={"identifier": "alice", "password": PASSWORD})
    assert page.status_code == 303
    assert d.identity.interactions[cookie.split(".")[0]].login_account_id == alice.id
    # Reading is not changing: GETs need no Origin.
    d.use_interaction()
    assert (await d.client.get("/sign-in", headers={"origin": EVIL})).status_code == 200


async def test_without_cookies_there_is_nothing_to_forge(deployment):
    d = deployment
    response = await send(d, "PUT", "/api/interaction", {"origin": None}, json={"event": "SignIn"})
    error(response, 400, "session.not_found")


@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "multipart/form-data; boundary=x",
                                          None])
async def test_json_must_be_sent_as_json(deployment, content_type):
    d = deployment
    d.identity.add_user(username="alice", password=PASSWORD)
    d.use_interaction()
    body = b'{"event": "SignIn", "identifier": {"username": "alice", "password": "%s"}}' % PASSWORD.encode()
    headers = {"content-type": content_type} if content_type else {}
    error(await d.client.put("/api/interaction", content=body, headers=headers), 415, "guard.mime_type_not_allowed")
    assert await d.ctx.pool.fetchval("SELECT count(*) FROM interactions") == 0
    ok = await d.client.put("/api/interaction", content=body, headers={"content-type": "application/json"})
    assert ok.status_code == 204


# ------------------------------------------------------------------ no password at rest (item 5)


async def test_a_new_password_is_never_stored_in_clear_and_still_signs_in(deployment):
    d = deployment
    d.use_interaction()
    assert (await d.client.put("/api/interaction", json={"event": "Register"})).status_code == 204
    assert (await d.client.patch("/api/interaction/profile", json={"username": "gina"})).status_code == 204
    assert (await d.client.patch("/api/interaction/profile", json={"password": PASSWORD})).status_code == 204
    row = await d.ctx.pool.fetchrow(
        "SELECT profile::text AS profile, identifiers::text AS identifiers FROM interactions")
    assert PASSWORD not in row["profile"] and PASSWORD not in row["identifiers"]
    assert (await d.client.put("/api/interaction", json={
        "event": "Register", "profile": {"username": "gina", "password": PASSWORD}})).status_code == 204
    assert PASSWORD not in await d.ctx.pool.fetchval("SELECT profile::text FROM interactions")
    assert (await d.client.post("/api/interaction/submit")).status_code == 200
    (gina,) = d.identity.users.values()
    assert gina.username == "gina" and gina.password == PASSWORD  # set from identity's hash
    # ... and that password signs in.
    d.use_interaction()
    sign_in = {"event": "SignIn", "identifier": {"username": "gina", "password": PASSWORD}}
    assert (await d.client.put("/api/interaction", json=sign_in)).status_code == 204
    assert (await d.client.post("/api/interaction/submit")).status_code == 200
    assert all(PASSWORD not in (r or "") for r in await d.ctx.pool.fetchval(
        "SELECT array_agg(profile::text) FROM interactions"))


async def test_a_reset_password_is_never_stored_in_clear_and_the_same_password_is_refused(deployment):
    d = deployment
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    nina = d.identity.add_user(username="nina", primary_email="nina@example.com", password=PASSWORD)
    d.use_interaction()
    assert (await d.client.put("/api/interaction", json={"event": "ForgotPassword"})).status_code == 204
    await d.client.post("/api/interaction/verification/verification-code", json={"email": "nina@example.com"})
    # The password before the code (the pages' order): compared with the account the code went to.
    assert (await d.client.put("/api/interaction/profile", json={"password": PASSWORD})).status_code == 204
    assert PASSWORD not in await d.ctx.pool.fetchval("SELECT profile::text FROM interactions")
    assert (await d.client.patch("/api/interaction/identifiers", json={
        "email": "nina@example.com", "verificationCode": d.connectors.last_code()})).status_code == 204
    error(await d.client.post("/api/interaction/submit"), 422, "user.same_password")
    new_password = "n3w-Passw0rd"
    assert (await d.client.put("/api/interaction/profile", json={"password": new_password})).status_code == 204
    assert new_password not in await d.ctx.pool.fetchval("SELECT profile::text FROM interactions")
    assert (await d.client.post("/api/interaction/submit")).status_code == 204
    assert nina.password == new_password


@pytest.fixture
def fast_purge(monkeypatch):
    from tessera_experience.interaction import purge
    monkeypatch.setattr(purge, "PURGE_EVERY_SECONDS", 0.05)


async def test_expired_interactions_are_purged_on_a_timer(fast_purge, deployment):
    import asyncio
    import datetime as dt

    from tessera_experience.interaction import store

    d = deployment
    past = dt.datetime.now(dt.timezone.utc) - dt.timedelta(minutes=1)
    future = dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)
    await store.save(d.ctx.pool, "default", "gone", {"event": "Register", "profile": {"username": "x"}}, past)
    await store.save(d.ctx.pool, "default", "live", {"event": "Register"}, future)
    # A code long past its ten minutes goes too; a fresh one stays.
    await d.ctx.pool.execute(
        "INSERT INTO verification_codes (id, interaction_uid, type, email, code_digest, created_at)"
        " VALUES ('old', 'live', 'Register', 'a@b.co', 'x', now() - interval '1 hour'),"
        " ('new', 'live', 'Register', 'a@b.co', 'y', now())")
    for _ in range(400):  # no request comes: only the timer can delete them
        if await d.ctx.pool.fetchval("SELECT count(*) FROM interactions WHERE uid = 'gone'") == 0 and \
                await d.ctx.pool.fetchval("SELECT count(*) FROM verification_codes WHERE id = 'old'") == 0:
            break
        await asyncio.sleep(0.05)
    assert await d.ctx.pool.fetchval("SELECT array_agg(uid) FROM interactions") == ["live"]
    assert await d.ctx.pool.fetchval("SELECT array_agg(id) FROM verification_codes") == ["new"]


async def test_a_social_accounts_script_avatar_is_left_out(deployment):
    d = deployment
    social = await d.connectors.add("Social", target="mock-social")
    await d.wait_for_connectors(1)
    response = await d.client.patch("/api/sign-in-exp", json={
        "signUp": {"identifiers": [], "password": False, "verify": False}})
    assert response.status_code == 200, response.text
    d.use_interaction()
    assert (await d.client.put("/api/interaction", json={"event": "Register"})).status_code == 204
    await d.client.post("/api/interaction/verification/social-authorization-uri",
                        json={"connectorId": social.id, "state": "s", "redirectUri": "https://app.test/cb"})
    identifier = {"connectorId": social.id, "connectorData": {
        "code": "c", "userId": "s-1", "name": "Olga", "avatar": "javascript:alert(1)"}}
    assert (await d.client.patch("/api/interaction/identifiers", json=identifier)).status_code == 204
    await d.client.put("/api/interaction/profile", json={"connectorId": social.id})
    assert (await d.client.post("/api/interaction/submit")).status_code == 200
    (olga,) = d.identity.users.values()
    assert olga.name == "Olga" and olga.avatar is None

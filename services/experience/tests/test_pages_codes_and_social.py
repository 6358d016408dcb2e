"""The hosted pages' code and social steps: a missing email or phone linked with a code,
a social account whose email belongs to an account (linked on request), and
connector and rate-limit errors shown as sentences."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest

from tessera_experience.verification_codes.settings import CodeSettings

PASSWORD = "s3cret-Pass"


async def set_sie(d, body):
    response = await d.client.patch("/api/sign-in-exp", json=body)
    assert response.status_code == 200, response.text


def method(identifier, password=True, code=False):
    return {"identifier": identifier, "password": password, "verificationCode": code, "isPasswordPrimary": True}


def field_error(html: str, name: str) -> str | None:
    match = re.search(rf'<p class="error" id="{name}-error">(.*?)</p>', html, re.S)
    return match[1].strip() if match else None


async def with_email_sign_up(d):
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    await set_sie(d, {"signUp": {"identifiers": ["username", "email"], "password": True, "verify": True},
                      "signIn": {"methods": [method("username"), method("email", code=True)]}})


async def test_a_missing_email_is_linked_with_a_code(deployment):
    d = deployment
    await with_email_sign_up(d)
    kim = d.identity.add_user(username="kim", password=PASSWORD)
    d.use_interaction()
    missing = await d.client.post("/sign-in", data={"identifier": "kim", "password": PASSWORD})
    assert missing.status_code == 422, missing.text
    assert 'action="/sign-in/profile/verification-code?kinds=email"' in missing.text
    assert '<label for="contact">Email</label>' in missing.text
    bad = await d.client.post("/sign-in/profile/verification-code?kinds=email", data={"contact": "nope"})
    assert bad.status_code == 400 and field_error(bad.text, "contact") == "The Email is invalid"
    code_page = await d.client.post("/sign-in/profile/verification-code?kinds=email",
                                    data={"contact": "kim@example.com"})
    assert code_page.status_code == 200 and 'action="/sign-in/profile/verify"' in code_page.text
    assert d.connectors.sent[-1].to == "kim@example.com" and d.connectors.sent[-1].template == "SignIn"
    code = d.connectors.last_code()
    wrong = await d.client.post("/sign-in/profile/verify", data={
        "target": "kim@example.com", "code": "111111" if code != "111111" else "222222"})
    assert wrong.status_code == 400 and field_error(wrong.text, "code") == "The verification code is wrong."
    done = await d.client.post("/sign-in/profile/verify", data={"target": "kim@example.com", "code": code})
    assert done.status_code == 303, done.text
    assert kim.primary_email == "kim@example.com"


async def test_a_connector_failure_is_a_sentence_and_the_step_can_be_retried(deployment):
    d = deployment
    await with_email_sign_up(d)
    d.identity.add_user(username="kim", password=PASSWORD)
    d.use_interaction()
    await d.client.post("/sign-in", data={"identifier": "kim", "password": PASSWORD})
    d.connectors.failing_sends = 1
    failed = await d.client.post("/sign-in/profile/verification-code?kinds=email", data={"contact": "kim@example.com"})
    assert failed.status_code == 400
    assert field_error(failed.text, "contact") == "The email or SMS service could not send the message. Please try again."
    again = await d.client.post("/sign-in/profile/verification-code?kinds=email", data={"contact": "kim@example.com"})
    assert again.status_code == 200 and 'name="code"' in again.text


@pytest.mark.parametrize("deployment", [CodeSettings()], indirect=True)
async def test_the_resend_cooldown_is_a_sentence(deployment):
    d = deployment
    await d.connectors.add("Email")
    await d.wait_for_connectors(1)
    await set_sie(d, {"signIn": {"methods": [method("username"), method("email", code=True)]}})
    d.use_interaction()
    assert (await d.client.post("/sign-in/verification-code", data={"code_identifier": "kim@example.com"})
            ).status_code == 200
    refused = await d.client.post("/sign-in/verification-code", data={"code_identifier": "kim@example.com"})
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
    assert "Too many attempts. Please wait a while and try again." in refused.text


@pytest.mark.parametrize("deployment", [CodeSettings()], indirect=True)
async def test_every_page_that_sends_a_code_tells_the_browser_when_to_retry(deployment):
    d = deployment
    await with_email_sign_up(d)
    d.identity.add_user(username="kim", password=PASSWORD)
    d.use_interaction()
    assert (await d.client.post("/forgot-password", data={"identifier": "kim@example.com"})).status_code == 200
    refused = await d.client.post("/forgot-password", data={"identifier": "kim@example.com"})
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
    assert "Too many attempts. Please wait a while and try again." in refused.text
    d.use_interaction()
    await d.client.post("/sign-in", data={"identifier": "kim", "password": PASSWORD})  # email missing
    refused = await d.client.post("/sign-in/profile/verification-code?kinds=email", data={"contact": "kim@example.com"})
    assert refused.status_code == 429 and 0 < int(refused.headers["retry-after"]) <= 60
    assert "Too many attempts. Please wait a while and try again." in refused.text


async def start_social(d, social_id: str, **data) -> object:
    started = await d.client.post(f"/sign-in/social/{social_id}")
    assert started.status_code == 303
    state = parse_qs(urlsplit(started.headers["location"]).query)["state"][0]
    return await d.client.get(f"/sign-in/social/{social_id}/callback", params={"state": state, "code": "c", **data})


async def test_a_social_account_with_a_known_email_is_linked_on_request(deployment):
    d = deployment
    social = await d.connectors.add("Social", target="mock-social")
    await d.wait_for_connectors(1)
    await set_sie(d, {"socialSignInConnectorTargets": ["mock-social"],
                      "signUp": {"identifiers": [], "password": False, "verify": False}})
    pat = d.identity.add_user(primary_email="pat@example.com", password=PASSWORD)
    d.use_interaction()
    choice = await start_social(d, social.id, userId="s-1", email="pat@example.com")
    assert choice.status_code == 200, choice.text
    assert "An account with email pat@example.com already exists. Do you want to link it?" in choice.text
    # A forged value is not what the provider vouched for.
    forged = await d.client.post(f"/sign-in/social/{social.id}/link", data={"kind": "email", "value": "x@example.com"})
    assert forged.status_code == 400 and "The social sign-in was not finished" in forged.text
    linked = await d.client.post(f"/sign-in/social/{social.id}/link", data={"kind": "email", "value": "pat@example.com"})
    assert linked.status_code == 303, linked.text
    assert pat.identities["mock-social"]["user_id"] == "s-1"
    assert len(d.identity.users) == 1


async def test_every_code_form_keeps_only_a_recipient_and_code_of_real_length(deployment):
    """The sign-in and register code steps read the form like the profile step (one rule,
    code_form): a pasted 5 KB "recipient" is not echoed back into the page in full."""
    d = deployment
    await with_email_sign_up(d)
    d.use_interaction()
    long_target = "x" * 300 + "@example.com" + "y" * 5000
    for path in ("/sign-in/verification-code/verify", "/register/verification-code", "/sign-in/profile/verify"):
        page = await d.client.post(path, data={"target": long_target, "code": ""})
        assert page.status_code == 400, (path, page.text[:300])
        assert "x" * 256 in page.text and "x" * 257 not in page.text, path
        assert "y" * 10 not in page.text, path


@pytest.mark.parametrize("kinds", ["phone,email", "email,email", "email,phone,email"])
async def test_a_reordered_or_repeated_kinds_query_is_not_a_server_error(deployment, kinds):
    """`kinds` comes from the query string: an order or repetition the page never writes
    is still one of the contact kinds (it used to raise StopIteration: a 500)."""
    d = deployment
    await with_email_sign_up(d)
    d.identity.add_user(username="kim", password=PASSWORD)
    d.use_interaction()
    await d.client.post("/sign-in", data={"identifier": "kim", "password": PASSWORD})
    bad = await d.client.post(f"/sign-in/profile/verification-code?kinds={kinds}", data={"contact": "nope"})
    assert bad.status_code == 400, bad.text
    assert field_error(bad.text, "contact") is not None

"""The configuration APIs on real PostgreSQL and NATS: sign-in experience, custom phrases,
admin-console flags and the two `.well-known` routes (Logto §3.2, §3.5, §3.10, §8)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest

from tessera_experience import phrases
from tessera_experience.config.domain import default_sign_in_experience

DEFAULT = default_sign_in_experience("default")
USERNAME_ONLY_SIGN_IN = DEFAULT["signIn"]


async def sie(deployment):
    response = await deployment.client.get("/api/sign-in-exp")
    assert response.status_code == 200, response.text
    return response.json()


async def patch(deployment, body, **params):
    return await deployment.client.patch("/api/sign-in-exp", json=body, params=params)


def error(response, status, code):
    assert response.status_code == status, response.text
    assert response.json()["code"] == code, response.text
    return response.json()


# ------------------------------------------------------------------ sign-in experience


async def test_the_seeded_sign_in_experience_is_logtos_default(deployment):
    assert await sie(deployment) == DEFAULT


async def test_patch_replaces_given_columns_and_announces_them(deployment):
    colour = {"primaryColor": "#123456", "isDarkModeEnabled": True, "darkPrimaryColor": "#ABC"}
    response = await patch(deployment, {
        "color": colour, "branding": {"logoUrl": "https://example.com/logo.png"},
        "termsOfUseUrl": "https://example.com/terms", "privacyPolicyUrl": "",
        "customCss": "body { color: red }", "customContent": {"/sign-in": "<p>hi</p>"},
        "signInMode": "SignIn", "unknownKey": 1, "id": "other", "tenantId": "default",
    })
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["color"] == colour
    assert body["branding"] == {"logoUrl": "https://example.com/logo.png"}  # replaced, not merged
    assert body["termsOfUseUrl"] == "https://example.com/terms" and body["privacyPolicyUrl"] == ""
    assert body["signInMode"] == "SignIn" and body["id"] == "default"
    assert await sie(deployment) == body
    (event,) = await deployment.events("experience.sign_in_experience.updated")
    assert event[1]["changed"] == sorted(["branding", "color", "customContent", "customCss",
                                          "privacyPolicyUrl", "signInMode", "termsOfUseUrl"])


@pytest.mark.parametrize("body, path", [
    ({"color": {"primaryColor": "red", "isDarkModeEnabled": False, "darkPrimaryColor": "#000"}}, "color"),
    ({"color": {"primaryColor": "#12345", "isDarkModeEnabled": False, "darkPrimaryColor": "#000"}}, "color"),
    ({"branding": {"logoUrl": "not a url"}}, "branding"),
    ({"termsOfUseUrl": "nope"}, "termsOfUseUrl"),
    ({"signInMode": "Both"}, "signInMode"),
    ({"languageInfo": {"autoDetect": True, "fallbackLanguage": "zh-ZH"}}, "languageInfo"),
    ({"signUp": {"identifiers": ["nickname"], "password": True, "verify": False}}, "signUp"),
])
async def test_patch_rejects_malformed_fields(deployment, body, path):
    response = await patch(deployment, body)
    data = error(response, 400, "guard.invalid_input")
    assert path in response.text
    assert data["message"] == "The request body is invalid."
    assert await sie(deployment) == DEFAULT
    assert await deployment.events("experience.") == []


async def test_fallback_language_must_be_built_in_or_custom(deployment):
    body = {"languageInfo": {"autoDetect": False, "fallbackLanguage": "de"}}
    data = error(await patch(deployment, body), 400, "sign_in_experiences.unsupported_default_language")
    assert "de" in data["message"]
    french = await patch(deployment, {"languageInfo": {"autoDetect": False, "fallbackLanguage": "fr"}})
    assert french.status_code == 200
    put = await deployment.client.put("/api/custom-phrases/de", json={"input": {"username": "Benutzername"}})
    assert put.status_code == 201
    assert (await patch(deployment, body)).status_code == 200


@pytest.mark.parametrize("sign_up, code", [
    ({"identifiers": ["email"], "password": False, "verify": True}, "enabled_connector_not_found"),
    ({"identifiers": ["phone"], "password": False, "verify": True}, "enabled_connector_not_found"),
    ({"identifiers": ["username"], "password": False, "verify": False}, "username_requires_password"),
])
async def test_sign_up_rules(deployment, sign_up, code):
    data = error(await patch(deployment, {"signUp": sign_up}), 400, f"sign_in_experiences.{code}")
    if code == "enabled_connector_not_found":
        expected = "Email" if "email" in sign_up["identifiers"] else "Sms"
        assert data["message"] == f"Enabled {expected} connector not found."


async def test_sign_up_with_connectors_needs_verify(deployment):
    await deployment.connectors.add("Email")
    await deployment.wait_for_connectors(1)
    sign_up = {"identifiers": ["email"], "password": False, "verify": False}
    error(await patch(deployment, {"signUp": sign_up}), 400, "sign_in_experiences.passwordless_requires_verify")
    sign_in = {"methods": [{"identifier": "email", "password": False, "verificationCode": True,
                            "isPasswordPrimary": False}]}
    ok = await patch(deployment, {"signUp": {**sign_up, "verify": True}, "signIn": sign_in})
    assert ok.status_code == 200, ok.text


async def test_a_connector_just_created_counts_before_its_event_arrives(deployment):
    """Logto's verification-code suite creates an Email and an SMS connector and at once
    requires them: the read model, some milliseconds behind, refused it (400) in one run of three."""
    await deployment.connectors.add("Email", announce=False)
    await deployment.connectors.add("Sms", announce=False)
    sign_up = {"identifiers": ["email", "phone"], "password": False, "verify": True}
    sign_in = {"methods": [method("email", password=False, code=True), method("phone", password=False, code=True)]}
    ok = await patch(deployment, {"signUp": sign_up, "signIn": sign_in})
    assert ok.status_code == 200, ok.text
    assert ok.json()["signUp"] == sign_up
    assert await deployment.ctx.pool.fetchval("SELECT count(*) FROM connectors") == 0  # the model had not heard


async def test_with_the_connectors_service_away_the_read_model_decides(deployment):
    await deployment.connectors.add("Email", announce=False)
    await deployment.connectors.add("Sms")
    await deployment.wait_for_connectors(1)
    await deployment.stop_serving("connectors")
    phone = {"identifiers": ["phone"], "password": False, "verify": True}
    assert (await patch(deployment, {"signUp": phone})).status_code == 200
    email = {"identifiers": ["email"], "password": False, "verify": True}
    error(await patch(deployment, {"signUp": email}), 400, "sign_in_experiences.enabled_connector_not_found")


def method(identifier, password=True, code=False):
    return {"identifier": identifier, "password": password, "verificationCode": code, "isPasswordPrimary": True}


@pytest.mark.parametrize("sign_up, methods, code", [
    (None, [method("email", password=False, code=True)], "enabled_connector_not_found"),
    (None, [method("username", password=False, code=False)], "at_least_one_authentication_factor"),
    (None, [method("email")], "miss_sign_up_identifier_in_sign_in"),
    ({"identifiers": [], "password": True, "verify": False}, [method("username"), method("phone", False, False)],
     "at_least_one_authentication_factor"),
    ({"identifiers": [], "password": True, "verify": False}, [method("username"), method("email", password=False, code=True)],
     "enabled_connector_not_found"),
])
async def test_sign_in_rules(deployment, sign_up, methods, code):
    body = {"signIn": {"methods": methods}}
    if sign_up is not None:
        body["signUp"] = sign_up
    error(await patch(deployment, body), 400, f"sign_in_experiences.{code}")


async def test_sign_in_rules_needing_connectors(deployment):
    await deployment.connectors.add("Email")
    await deployment.connectors.add("Sms")
    await deployment.wait_for_connectors(2)
    password_up = {"identifiers": ["username"], "password": True, "verify": False}
    body = {"signUp": password_up, "signIn": {"methods": [method("username"), method("email", False, True)]}}
    error(await patch(deployment, body), 400, "sign_in_experiences.password_sign_in_must_be_enabled")
    code_up = {"identifiers": ["email"], "password": False, "verify": True}
    body = {"signUp": code_up, "signIn": {"methods": [method("email", True, True), method("phone", True, False)]}}
    error(await patch(deployment, body), 400, "sign_in_experiences.code_sign_in_must_be_enabled")
    body = {"signUp": code_up, "signIn": {"methods": [method("email", True, True), method("username", True, False)]}}
    assert (await patch(deployment, body)).status_code == 200


async def test_sign_in_is_checked_against_the_stored_sign_up(deployment):
    body = {"signIn": {"methods": [method("email", password=True)]}}  # stored sign-up needs username
    error(await patch(deployment, body), 400, "sign_in_experiences.miss_sign_up_identifier_in_sign_in")
    both = {"signUp": {"identifiers": [], "password": True, "verify": False}, **body}
    assert (await patch(deployment, both)).status_code == 200


async def test_social_targets_are_filtered_to_existing_social_connectors(deployment):
    await deployment.connectors.add("Social", target="github")
    await deployment.wait_for_connectors(1)
    response = await patch(deployment, {"socialSignInConnectorTargets": ["github", "google", "github"]})
    assert response.json()["socialSignInConnectorTargets"] == ["github", "github"]


async def test_without_connectors_every_social_target_is_dropped(deployment):
    response = await patch(deployment, {"socialSignInConnectorTargets": ["google"]})
    assert response.status_code == 200 and response.json()["socialSignInConnectorTargets"] == []


async def test_remove_unused_demo_social_connector(deployment):
    demo_github = await deployment.connectors.add("Social", target="github", factory="logto-social-demo")
    demo_google = await deployment.connectors.add("Social", target="google", factory="logto-social-demo")
    await deployment.connectors.add("Social", target="wechat", factory="wechat-web")
    await deployment.wait_for_connectors(3)
    body = {"socialSignInConnectorTargets": ["github"]}
    assert (await patch(deployment, body)).status_code == 200
    assert deployment.connectors.deleted == []  # off unless asked for
    response = await patch(deployment, body, removeUnusedDemoSocialConnector="1")
    assert response.status_code == 200
    assert deployment.connectors.deleted == [demo_google.id]
    await deployment.wait_for_connectors(2)
    assert demo_github.id in deployment.connectors.instances


# ------------------------------------------------------------------ admin console


async def test_admin_console_flags(deployment):
    flags = (await deployment.client.get("/api/configs/admin-console")).json()
    assert flags == dict.fromkeys(flags, False) and len(flags) == 8
    response = await deployment.client.patch("/api/configs/admin-console",
                                              json={"roleCreated": True, "other": True, "livePreviewChecked": False})
    assert response.status_code == 200
    assert response.json() == {**flags, "roleCreated": True}
    assert (await deployment.client.get("/api/configs/admin-console")).json() == response.json()
    bad = await deployment.client.patch("/api/configs/admin-console", json={"roleCreated": "yes"})
    error(bad, 400, "guard.invalid_input")
    events = await deployment.events("experience.admin_console")
    assert [e[1]["changed"] for e in events] == [["roleCreated"]]


async def test_admin_console_config_missing_is_404(deployment):
    await deployment.ctx.pool.execute("DELETE FROM configs")
    error(await deployment.client.get("/api/configs/admin-console"), 404, "entity.not_found")
    error(await deployment.client.patch("/api/configs/admin-console", json={}), 404, "entity.not_found")


# ------------------------------------------------------------------ custom phrases


async def test_custom_phrases_lifecycle(deployment):
    client = deployment.client
    assert (await client.get("/api/custom-phrases")).json() == []
    created = await client.put("/api/custom-phrases/fr", json={"input": {"username": "Identifiant", "email": ""}})
    assert created.status_code == 201, created.text
    row = created.json()
    assert row["languageTag"] == "fr" and row["translation"] == {"input": {"username": "Identifiant"}}
    assert row["tenantId"] == "default" and len(row["id"]) == 21
    replaced = await client.put("/api/custom-phrases/fr", json={"action": {"sign_in": "Entrer"}})
    assert replaced.json()["id"] == row["id"]
    assert replaced.json()["translation"] == {"action": {"sign_in": "Entrer"}}
    await client.put("/api/custom-phrases/de", json={})
    listed = (await client.get("/api/custom-phrases")).json()
    assert [r["languageTag"] for r in listed] == ["de", "fr"]
    assert (await client.get("/api/custom-phrases/fr")).json() == replaced.json()
    assert (await client.delete("/api/custom-phrases/fr")).status_code == 204
    error(await client.get("/api/custom-phrases/fr"), 404, "entity.not_found")
    error(await client.delete("/api/custom-phrases/fr"), 404, "entity.not_found")
    types = [t for t, _ in await deployment.events("experience.custom_phrase")]
    assert types == ["experience.custom_phrase.upserted"] * 3 + ["experience.custom_phrase.deleted"]


@pytest.mark.parametrize("translation", [
    {"input": {"nickname": "x"}},
    {"input": "flat"},
    {"input": {"username": {"nested": "x"}}},
    {"not_a_group": {"a": "b"}},
])
async def test_unknown_phrase_keys_are_rejected(deployment, translation):
    response = await deployment.client.put("/api/custom-phrases/fr", json=translation)
    error(response, 422, "localization.invalid_translation_structure")
    assert (await deployment.client.get("/api/custom-phrases")).json() == []


async def test_phrase_leaves_must_be_strings(deployment):
    response = await deployment.client.put("/api/custom-phrases/fr", json={"input": {"username": 1}})
    error(response, 400, "guard.invalid_input")


@pytest.mark.parametrize("method", ["get", "put", "delete"])
async def test_language_tag_must_be_known(deployment, method):
    kwargs = {"json": {}} if method == "put" else {}
    response = await getattr(deployment.client, method)("/api/custom-phrases/zh-ZH", **kwargs)
    data = error(response, 400, "guard.invalid_input")
    assert data["message"] == "The request params is invalid."


async def test_the_fallback_language_cannot_be_deleted(deployment):
    client = deployment.client
    await client.put("/api/custom-phrases/de", json={"input": {"username": "Benutzername"}})
    await patch(deployment, {"languageInfo": {"autoDetect": True, "fallbackLanguage": "de"}})
    data = error(await client.delete("/api/custom-phrases/de"), 409, "localization.cannot_delete_default_language")
    assert "de" in data["message"]
    # Checked before existence: a fallback without a row still says 409.
    await patch(deployment, {"languageInfo": {"autoDetect": True, "fallbackLanguage": "en"}})
    error(await client.delete("/api/custom-phrases/en"), 409, "localization.cannot_delete_default_language")


# ------------------------------------------------------------------ .well-known


async def test_well_known_sign_in_experience(deployment):
    response = await deployment.client.get("/api/.well-known/sign-in-exp")
    assert response.status_code == 200
    assert response.json() == {**DEFAULT, "socialConnectors": [], "forgotPassword": {"phone": False, "email": False}}
    github = await deployment.connectors.add("Social", target="github", platform="Web")
    await deployment.connectors.add("Email")
    await deployment.wait_for_connectors(2)
    await patch(deployment, {"socialSignInConnectorTargets": ["github"]})
    body = (await deployment.client.get("/api/.well-known/sign-in-exp")).json()
    assert body["forgotPassword"] == {"phone": False, "email": True}
    (social,) = body["socialConnectors"]
    assert social["id"] == github.id and social["target"] == "github" and social["platform"] == "Web"
    assert social["name"] == {"en": "Mock Social"}


async def test_well_known_phrases_resolution(deployment):
    client = deployment.client
    english = await client.get("/api/.well-known/phrases")
    assert english.headers["content-language"] == "en"
    assert list(english.json()) == ["translation"]  # Logto's resource shape
    assert english.json()["translation"]["input"]["username"] == "Username"
    french = await client.get("/api/.well-known/phrases", params={"lng": "fr"})
    assert french.headers["content-language"] == "fr"
    assert french.json()["translation"]["input"]["username"] == "Nom d'utilisateur"
    assert french.json()["translation"]["action"]["bind"] == "Link with {{address}}"  # English where French has none
    by_browser = await client.get("/api/.well-known/phrases", headers={"accept-language": "de;q=0.9, fr;q=0.8"})
    assert by_browser.headers["content-language"] == "fr"
    await client.put("/api/custom-phrases/de", json={"input": {"username": "Benutzername"}})
    german = await client.get("/api/.well-known/phrases", headers={"accept-language": "de;q=0.9, fr;q=0.8"})
    assert german.headers["content-language"] == "de"
    assert german.json()["languageTag"] == "de"  # Logto merges the custom phrase row itself
    assert german.json()["translation"]["input"]["username"] == "Benutzername"
    assert german.json()["translation"]["input"]["password"] == "Password"  # English underneath a custom-only language
    await client.put("/api/custom-phrases/fr", json={"input": {"password": "Secret"}})
    mixed = (await client.get("/api/.well-known/phrases", params={"lng": "fr"})).json()["translation"]
    assert mixed["input"]["password"] == "Secret" and mixed["input"]["username"] == "Nom d'utilisateur"
    unknown = await client.get("/api/.well-known/phrases", params={"lng": "xx"})
    assert unknown.headers["content-language"] == "en"


async def test_browser_languages_are_ignored_without_auto_detect(deployment):
    await patch(deployment, {"languageInfo": {"autoDetect": False, "fallbackLanguage": "en"}})
    response = await deployment.client.get("/api/.well-known/phrases", headers={"accept-language": "fr"})
    assert response.headers["content-language"] == "en"


LOGTO_1_6_PHRASE_KEYS = Path(__file__).with_name("logto_1_6_phrase_keys.txt")


def test_the_english_tree_holds_every_logto_1_6_key():
    keys = [line for line in LOGTO_1_6_PHRASE_KEYS.read_text().splitlines() if line and not line.startswith("#")]
    assert len(keys) > 100
    missing = [key for key in keys if not isinstance(_at(phrases.english_tree(), key), str)]
    assert missing == []


def _at(tree, key):
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


async def test_custom_phrases_accept_logto_1_6_keys(deployment):
    """Logto's own suite customises `zh` (not built in) with 1.6's `input.*` keys."""
    translation = {"input": {"email": "邮箱", "password": "密码", "username": "用户名", "phone_number": "手机号码",
                             "confirm_password": "确认密码", "search_region_code": "搜索区号"}}
    response = await deployment.client.put("/api/custom-phrases/zh", json=translation)
    assert response.status_code == 201, response.text
    assert (await deployment.client.get("/api/custom-phrases/zh")).json()["translation"] == translation
    served = (await deployment.client.get("/api/.well-known/phrases", params={"lng": "zh"})).json()
    assert served["translation"]["input"]["search_region_code"] == "搜索区号"
    assert served["translation"]["description"]["no_region_code_found"] == "No region code found"


def test_default_is_not_shared():
    first = default_sign_in_experience("default")
    first["signUp"]["identifiers"].append("email")
    assert default_sign_in_experience("default")["signUp"]["identifiers"] == ["username"]
    assert copy.deepcopy(DEFAULT) == DEFAULT

"""The rules that need no I/O: guards, sign-in-experience checks, missing profile, phrases."""

from __future__ import annotations

import pytest

from tessera_events.contracts.identity import Identity, UserInfo
from tessera_experience import phrases
from tessera_experience.config import domain as config
from tessera_experience.interaction import domain, guards
from tessera_kit.errors import RequestError

SIE = config.default_sign_in_experience("default")


@pytest.mark.parametrize("password, ok", [
    ("abcd1234", True), ("abcdefgh", False), ("12345678", False), ("abcd!efg", True), ("1234_567", True),
    ("abc 1234", False), ("abc123", False), ("pässword1", False), ("abcd1234\n", False),
])
def test_password_rule(password, ok):
    assert (guards.PASSWORD.fullmatch(password) is not None) == ok


@pytest.mark.parametrize("body, expected", [
    ({"username": "a", "password": "b", "email": "x@y.z"}, {"username": "a", "password": "b"}),
    ({"email": "a@b.co", "password": "p", "verificationCode": "1"}, {"email": "a@b.co", "password": "p"}),
    ({"email": "a@b.co", "verificationCode": "123456"}, {"email": "a@b.co", "verificationCode": "123456"}),
    ({"phone": "123", "verificationCode": "1"}, {"phone": "123", "verificationCode": "1"}),
    ({"connectorId": "c", "connectorData": {"code": "x"}}, {"connectorId": "c", "connectorData": {"code": "x"}}),
    ({"connectorId": "c", "email": "a@b.co"}, {"connectorId": "c", "email": "a@b.co"}),
])
def test_identifier_shapes_first_match_wins(body, expected):
    assert guards.parse_identifier(body) == expected


@pytest.mark.parametrize("body", [{}, {"username": ""}, {"phone": "+1", "verificationCode": "1"}, "text",
                                  {"connectorId": "c", "email": "bad"}])
def test_identifier_shapes_rejected(body):
    with pytest.raises(RequestError) as raised:
        guards.parse_identifier(body)
    assert raised.value.code == "guard.invalid_input"


def test_profile_guard_strips_unknown_keys_and_checks_each_field():
    assert guards.parse_profile({"username": "ok_1", "other": 1}) == {"username": "ok_1"}
    with pytest.raises(RequestError) as raised:
        guards.parse_profile({"username": "1x", "email": "nope", "phone": None})
    paths = [issue["path"] for issue in raised.value.data["issues"]]
    assert paths == [["username"], ["email"], ["phone"]]


def test_read_body_accepts_json_and_forms_and_treats_garbage_as_empty():
    assert guards.read_body(b'{"event":"SignIn"}', "application/json") == {"event": "SignIn"}
    assert guards.read_body(b"event=SignIn&x=", "application/x-www-form-urlencoded") == {"event": "SignIn", "x": ""}
    assert guards.read_body(b"{not json", "application/json") == {}
    assert guards.read_body(b"", None) == {}
    # nested deeper than the stack (json raises RecursionError, once a 500) or not UTF-8
    assert guards.read_body(b"[" * 100_000 + b"]" * 100_000, "application/json") == {}
    assert guards.read_body(b'{"event": "\xff"}', "application/json") == {}


def sie_with(sign_up=None, methods=None, mode="SignInAndRegister"):
    sie = config.default_sign_in_experience("default")
    if sign_up:
        sie["signUp"] = sign_up
    if methods:
        sie["signIn"] = {"methods": methods}
    sie["signInMode"] = mode
    return sie


def m(identifier, password=True, code=False):
    return {"identifier": identifier, "password": password, "verificationCode": code, "isPasswordPrimary": True}


def test_identifier_settings():
    domain.verify_identifier_settings({"username": "a", "password": "b"}, SIE)
    domain.verify_identifier_settings({"connectorId": "x", "email": "a@b.co"}, SIE)
    for identifier in ({"email": "a@b.co", "password": "p"}, {"phone": "1", "verificationCode": "1"}):
        with pytest.raises(RequestError, match="sign_in_method_not_enabled"):
            domain.verify_identifier_settings(identifier, SIE)
    no_code = sie_with(methods=[m("username"), m("email", password=True, code=False)])
    with pytest.raises(RequestError):
        domain.verify_identifier_settings({"email": "a@b.co", "verificationCode": "1"}, no_code)
    # A code is still fine when email is a sign-up identifier (registration verifies it) ...
    sign_up_email = sie_with(sign_up={"identifiers": ["email"], "password": False, "verify": False},
                             methods=[m("email", password=True, code=False)])
    domain.verify_identifier_settings({"email": "a@b.co", "verificationCode": "1"}, sign_up_email)
    # ... or when sign-up verifies.
    verify = sie_with(sign_up={"identifiers": [], "password": True, "verify": True},
                      methods=[m("email", password=True, code=False)])
    domain.verify_identifier_settings({"email": "a@b.co", "verificationCode": "1"}, verify)


def test_profile_settings():
    domain.verify_profile_settings({"username": "a", "password": "p"}, SIE)
    for profile in ({"email": "a@b.co"}, {"phone": "1"}):
        with pytest.raises(RequestError):
            domain.verify_profile_settings(profile, SIE)
    with pytest.raises(RequestError):
        domain.verify_profile_settings({"password": "p"}, sie_with(
            sign_up={"identifiers": ["username"], "password": False, "verify": False}))


def test_sign_in_mode():
    domain.verify_sign_in_mode("ForgotPassword", sie_with(mode="Register"))
    with pytest.raises(RequestError) as raised:
        domain.verify_sign_in_mode("SignIn", sie_with(mode="Register"))
    assert raised.value.status == 403


def user(**fields):
    return UserInfo(id="u1", **fields)


@pytest.mark.parametrize("sign_up, who, profile, missing", [
    ({"identifiers": ["username"], "password": True, "verify": False}, None, {}, ["password", "username"]),
    ({"identifiers": ["username"], "password": True, "verify": False}, None, {"connectorId": "c"}, ["username"]),
    ({"identifiers": ["username"], "password": True, "verify": False}, user(username="a", has_password=True), {}, []),
    ({"identifiers": ["username"], "password": True, "verify": False},
     user(username="a", identities={"g": Identity(user_id="1")}), {}, []),
    ({"identifiers": ["email", "phone"], "password": False, "verify": True}, user(), {}, ["emailOrPhone"]),
    ({"identifiers": ["email", "phone"], "password": False, "verify": True}, user(primary_phone="1"), {}, []),
    ({"identifiers": ["email"], "password": False, "verify": True}, user(primary_phone="1"), {}, ["email"]),
    ({"identifiers": ["phone"], "password": False, "verify": True}, None, {"phone": "1"}, []),
    ({"identifiers": ["username", "email"], "password": False, "verify": True}, None, {}, ["username"]),
])
def test_missing_profile(sign_up, who, profile, missing):
    assert domain.missing_profile(sign_up, who, profile) == missing


def test_profile_identifiers_are_not_auth_identifiers():
    identifiers = [{"key": "accountId", "value": "u1"}, {"key": "emailVerified", "value": "a@b.co"},
                   {"key": "social", "connectorId": "c", "userInfo": {"id": "1"}}]
    auth = domain.auth_identifiers(identifiers, {"email": "a@b.co"})
    assert [i["key"] for i in auth] == ["accountId", "social"]
    assert domain.upsert_identifier(identifiers, {"key": "accountId", "value": "u2"})[-1] == {
        "key": "accountId", "value": "u2"}


def test_mask_passwords():
    assert domain.mask_passwords({"password": "x", "profile": {"password": "y"}, "list": [{"password": "z"}]}) == {
        "password": "******", "profile": {"password": "******"}, "list": [{"password": "z"}]}


def test_phrase_structure_follows_the_english_tree():
    assert phrases.fits_structure({"input": {"username": "x"}})
    assert not phrases.fits_structure({"input": {"username": {"x": "y"}}})
    assert not phrases.fits_structure({"nope": "x"})
    assert phrases.clean_deep({"a": {"b": "", "c": None}, "d": "e"}) == {"d": "e"}


def test_every_built_in_language_fits_the_english_tree():
    assert set(phrases.BUILT_IN_LANGUAGES) >= {"en", "fr"}
    for tag in phrases.BUILT_IN_LANGUAGES:
        assert phrases.fits_structure(phrases.built_in_phrases(tag)), tag


def test_language_choice():
    assert phrases.accepted_languages("fr-CA,fr;q=0.8, en;q=0.5, de;q=0") == ["fr-CA", "fr", "en"]
    assert phrases.choose_language(["fr-CA", "fr"], custom_tags=[], fallback="en") == "fr"
    assert phrases.choose_language(["xx"], custom_tags=["de"], fallback="de") == "de"
    assert phrases.choose_language([None], custom_tags=[], fallback="ja") == "en"
    assert phrases.lookup(phrases.built_in_phrases("en"), "action.sign_in_with", name="X") == "Continue with X"
    assert phrases.lookup({}, "missing.key") == "missing.key"


def test_sign_up_and_sign_in_rules_directly():
    with pytest.raises(RequestError, match="username_requires_password"):
        config.validate_sign_up({"identifiers": ["username"], "password": False, "verify": False}, set())
    config.validate_sign_up({"identifiers": [], "password": False, "verify": False}, set())
    config.validate_sign_in({"methods": [m("username")]}, SIE["signUp"], set())
    assert config.filter_social_targets(["a", "b", "a"], {"a"}) == ["a", "a"]

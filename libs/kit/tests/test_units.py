"""Pure pieces of the kit: config, ids, errors, pagination."""

import pytest

from tessera_kit.config import ConfigError, ServiceSettings, load_settings
from tessera_kit.errors import RequestError, ValidationIssue, invalid_input, render_message
from tessera_kit.ids import ALPHABET, new_id, new_user_id
from tessera_kit.pagination import Page, pagination_headers, parse_page


def test_settings_use_logto_names_and_tessera_prefix():
    settings = load_settings(
        ServiceSettings,
        {"PORT": "4000", "ENDPOINT": "https://id.example.com", "TESSERA_NAMESPACE": "x", "NAMESPACE": "no"},
    )
    assert (settings.port, settings.endpoint, settings.namespace) == (4000, "https://id.example.com", "x")
    assert load_settings(ServiceSettings, {"PORT": ""}).port == 3000  # empty = unset


def test_settings_reject_bad_values():
    with pytest.raises(ConfigError, match="PORT"):
        load_settings(ServiceSettings, {"PORT": "abc"})


def test_ids_are_lowercase_alphanumeric_of_the_contract_lengths():
    ids = {new_id() for _ in range(1000)}
    assert len(ids) == 1000
    assert all(len(i) == 21 and set(i) <= set(ALPHABET) for i in ids)
    assert len(new_user_id()) == 12


def test_request_error_renders_logto_text_and_body():
    error = RequestError("entity.not_exists_with_id", 404, name="applications", id="abc")
    assert error.to_body() == {
        "message": "The applications with ID `abc` does not exist.",
        "code": "entity.not_exists_with_id",
    }
    assert render_message("no.such.code", {}) == "no.such.code"
    body = RequestError("auth.authorization_token_type_not_supported", 401,
                        data={"supportedTypes": ["Bearer"]}).to_body()
    assert body["data"] == {"supportedTypes": ["Bearer"]}


def test_invalid_input_has_details_lines_and_zod_like_data():
    error = invalid_input("body", [ValidationIssue("name", "invalid_type", "Expected string but received number.")])
    body = error.to_body()
    assert error.status == 400 and body["code"] == "guard.invalid_input"
    assert body["message"] == "The request body is invalid."
    assert body["details"] == 'Error in key path "name": (invalid_type) Expected string but received number.'
    assert body["data"]["issues"][0]["path"] == ["name"]


@pytest.mark.parametrize("query", [{"page": "0"}, {"page": "-1"}, {"page": "x"}, {"page_size": "0"},
                                   {"page_size": "101"}, {"page_size": "1.5"}])
def test_invalid_pagination(query):
    with pytest.raises(RequestError) as caught:
        parse_page(query)
    assert (caught.value.status, caught.value.code) == (400, "guard.invalid_pagination")


def test_pagination_defaults_bounds_and_optional():
    assert parse_page({}) == Page(1, 20)
    assert parse_page({"page": "3", "page_size": "100"}) == Page(3, 100)
    assert parse_page({}, optional=True) is None
    assert parse_page({"page_size": "5"}, optional=True) == Page(1, 5)


def test_pagination_headers_links():
    headers = pagination_headers(Page(2, 10), 35, scheme="https", host="id.example.com",
                                 path="/api/users", query=[("search", "%a%"), ("page", "2")])
    assert headers["Total-Number"] == "35"
    links = headers["Link"].split(", ")
    assert links == [
        '<https://id.example.com/api/users?search=%25a%25&page=1>; rel="first"',
        '<https://id.example.com/api/users?search=%25a%25&page=1>; rel="prev"',
        '<https://id.example.com/api/users?search=%25a%25&page=3>; rel="next"',
        '<https://id.example.com/api/users?search=%25a%25&page=4>; rel="last"',
    ]
    empty = pagination_headers(Page(1, 20), 0, scheme="http", host="h", path="/p", query=[])
    assert empty["Link"] == '<http://h/p?page=1>; rel="first", <http://h/p?page=1>; rel="last"'


@pytest.mark.parametrize("password, ok", [
    ("abcd1234", True), ("abcdefg!", True), ("1234567!", True), ("abcdefgh", False),
    ("12345678", False), ("ab1!", False), ("abcd 1234", False), ("abcd1234\\", False),
    ("pässword1", False), ("abcd1234\n", False),
])
def test_password_regex_is_logtos(password, ok):
    from tessera_kit.regexes import PASSWORD

    assert bool(PASSWORD.fullmatch(password)) is ok


def test_identifier_regexes():
    from tessera_kit.regexes import EMAIL, HEX_COLOR, PHONE, USERNAME

    assert USERNAME.fullmatch("_alice9") and not USERNAME.fullmatch("9alice")
    assert EMAIL.fullmatch("a@b.co") and not EMAIL.fullmatch("a@b")
    assert PHONE.fullmatch("123") and not PHONE.fullmatch("+123")
    assert HEX_COLOR.fullmatch("#ABC") and HEX_COLOR.fullmatch("#a1b2c3") and not HEX_COLOR.fullmatch("#abcd")

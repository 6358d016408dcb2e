"""Logto's search language to parameterised SQL (no I/O)."""

import pytest

from tessera_kit.errors import RequestError
from tessera_kit.search import build_conditions, is_truthy, parse_search

ROLE_FIELDS = ("id", "name", "description")
USER_FIELDS = ("id", "primary_email", "primary_phone", "username", "name")


def sql_for(query: list[tuple[str, str]], fields=ROLE_FIELDS, first_arg=2):
    condition = build_conditions(parse_search(query), fields, alias="r", first_arg=first_arg)
    return condition.sql, condition.args


def invalid(query, fields=ROLE_FIELDS) -> str:
    with pytest.raises(RequestError) as caught:
        sql_for(query, fields)
    assert (caught.value.status, caught.value.code) == (400, "request.invalid_input")
    return caught.value.message


def test_no_search_is_no_condition():
    assert sql_for([("page", "1"), ("page_size", "20")]) == ("", [])


def test_general_search_is_like_over_every_field_and_values_stay_verbatim():
    sql, args = sql_for([("search", "%adm%")])
    assert sql == "((r.id ILIKE $2 OR r.name ILIKE $2 OR r.description ILIKE $2))"
    assert args == ["%adm%"]


def test_field_modes_joint_and_case_sensitivity():
    sql, args = sql_for([("search.name", "Admin"), ("mode.name", "exact"), ("search.description", "^a"),
                         ("mode", "posix"), ("joint", "and"), ("isCaseSensitive", "true")])
    assert sql == "((r.name = $2) AND (r.description ~ $3))"
    assert args == ["Admin", "^a"]


def test_exact_case_insensitive_lowercases_both_sides_and_takes_several_values():
    sql, args = sql_for([("search.name", "A"), ("search.name", "B"), ("mode.name", "exact")])
    assert sql == "((lower(r.name) = any($2::varchar[])))"
    assert args == [["a", "b"]]


def test_camel_case_fields_become_columns():
    sql, _ = sql_for([("search.primaryEmail", "%@x.com")], USER_FIELDS, first_arg=5)
    assert sql == "((r.primary_email ILIKE $5))"


def test_logto_errors():
    assert "Search field `email` is not valid" in invalid([("search.email", "x")])
    assert "Only the first level field" in invalid([("search.name.first", "x")])
    assert "expect one of exact, like, similar_to, posix" in invalid([("search", "x"), ("mode", "fuzzy")])
    assert "Only one search value is allowed" in invalid([("search", "a"), ("search", "b")])
    assert "Search value cannot be empty." in invalid([("search.name", "")])
    assert "case-insensitive match for `similar to`" in invalid([("search", "a%"), ("mode", "similar_to")])
    assert "joint mode `xor` is not valid" in invalid([("search", "a"), ("joint", "xor")])
    assert invalid([("search.nope", "x")]).startswith("Input is invalid. Search field")


def test_similar_to_when_case_sensitive():
    sql, _ = sql_for([("search.name", "a%"), ("mode", "similar_to"), ("isCaseSensitive", "1")])
    assert sql == "((r.name SIMILAR TO $2))"


@pytest.mark.parametrize("value,expected", [("true", True), ("TRUE", True), ("1", True), ("yes", True),
                                            ("y", True), ("false", False), ("0", False), ("", False), (None, False)])
def test_truthy_flags(value, expected):
    assert is_truthy(value) is expected


def test_snake_case_like_the_snake_case_package():
    from tessera_kit.search import snake_case

    assert snake_case("primaryEmail") == "primary_email"
    assert snake_case("primary_email") == "primary_email"
    assert snake_case("PrimaryPhone") == "primary_phone"
    assert snake_case("id") == "id"


def test_first_control_value_counts_and_errors_carry_details():
    search = parse_search([("joint", "and"), ("joint", "or"), ("search.name", "a")])
    assert search.joint == "and"
    with pytest.raises(RequestError) as caught:
        parse_search([("mode", "fuzzy")])
    body = caught.value.to_body()
    assert body["code"] == "request.invalid_input"
    assert body["message"].startswith("Input is invalid. Search match mode `fuzzy` is not valid")
    assert body["details"].startswith("Search match mode `fuzzy` is not valid")


def test_without_alias_and_columns_that_are_never_upper_case():
    condition = build_conditions(parse_search([("search", "X"), ("mode", "exact")]), ("id", "name"),
                                 first_arg=1, never_upper_case=frozenset({"id"}))
    assert condition.sql == "((id = $1 OR lower(name) = $1))"
    assert condition.args == ["x"]


# ---------------------------------------------------------------- narrowing `like` for pg_trgm


def test_like_trigrams_follow_pg_trgm_padding_rules():
    from tessera_kit.search import like_trigrams

    # A word after a wildcard has no padding there; before '@' (not a letter) it has one space;
    # at the pattern's start two. Lower-cased, escapes stripped.
    assert [t for t, _ in like_trigrams("%Bob42@")] == ["bob", "ob4", "b42", "42 "]
    assert [t for t, _ in like_trigrams("ab_c")] == ["  a", " ab"]
    assert [t for t, _ in like_trigrams("x\\_yz%")] == ["  x", " x ", "  y", " yz"]
    assert like_trigrams("%é%") is None and like_trigrams("ab\\") is None


def test_narrowed_pattern_leaves_frequent_trigrams_out_and_stays_weaker():
    from tessera_kit.search import like_trigrams, narrowed_like_pattern

    narrowed = narrowed_like_pattern("%seed4242@%", {"see", "eed"})
    assert narrowed == "%__ed4242@%"
    assert {t for t, _ in like_trigrams(narrowed)} == {"ed4", "d42", "424", "242", "42 "}
    # Escapes and the client's own wildcards are kept as they are.
    assert narrowed_like_pattern("seed\\_4%", {"  s", " se", "see", "eed"}) == "__ed\\_4%"
    # Nothing frequent, everything frequent, or a pattern pg_trgm reads otherwise: no change.
    assert narrowed_like_pattern("%seed4242@%", {"xyz"}) is None
    assert narrowed_like_pattern("%gmail.com%", {"gma", "mai", "ail", "il ", "  c", " co", "com", "om "}) is None
    assert narrowed_like_pattern("%sé4242%", {"see"}) is None


def test_a_narrowed_like_keeps_the_clients_pattern_on_an_unindexed_expression():
    from tessera_kit.search import narrowed_like_pattern

    def narrow(column: str, pattern: str) -> str | None:
        return narrowed_like_pattern(pattern, {"see", "eed"}) if column == "primary_email" else None

    condition = build_conditions(parse_search([("search", "%seed4242@%")]), ("id", "primary_email"), first_arg=2,
                                 narrow_like=narrow)
    assert condition.sql == "((id ILIKE $2 OR (primary_email ILIKE $3 AND (primary_email || '') ILIKE $2)))"
    assert condition.args == ["%seed4242@%", "%__ed4242@%"]
    exact = build_conditions(parse_search([("search", "seed4242@x"), ("mode", "exact")]), ("primary_email",),
                             first_arg=2, narrow_like=lambda column, p: "never")
    assert exact.sql == "((lower(primary_email) = $2))"

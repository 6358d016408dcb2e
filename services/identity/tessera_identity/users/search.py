"""Logto's search query language (§1.5, `packages/core/src/utils/search.ts`), as SQL.

`parse_search` reads `search`, `search.<field>`, `mode`, `mode.<field>`, `joint`/`jointMode`
and `isCaseSensitive` from the query; `build_conditions` turns the result into one
parameterised SQL condition over the allowed columns. Values are used verbatim: `like`
adds no `%`. Any mistake raises `SearchError`, which the route answers with 400
`request.invalid_input` and the text below (Logto's own texts).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable, Sequence

MATCH_MODES = ("exact", "like", "similar_to", "posix")
JOINT_MODES = ("or", "and")
TRUE_WORDS = frozenset({"1", "true", "y", "yes", "yep", "yeah"})

USER_SEARCH_FIELDS = ("id", "primary_email", "primary_phone", "username", "name")
# Columns whose stored values never hold upper-case letters (generated ids over 0-9a-z; phone
# numbers are digits): case-insensitive `exact` compares them without lower(), so the plain
# indexes serve it. Same answer as lower(column), since the values are lower-cased too.
NEVER_UPPER_CASE = frozenset({"id", "primary_phone"})


class SearchError(ValueError):
    """A search the client got wrong; the message is Logto's."""


@dataclass(frozen=True)
class SearchItem:
    mode: str
    field: str | None  # as given (camelCase allowed); None: every searchable field
    values: tuple[str, ...]


@dataclass(frozen=True)
class Search:
    matches: tuple[SearchItem, ...]
    joint: str
    is_case_sensitive: bool


def _field_of(key: str) -> str | None:
    path = key.split(".")
    if len(path) > 2:
        raise SearchError(
            f"Unsupported nested search field path `{'.'.join(path[1:])}` detected."
            " Only the first level field is supported."
        )
    return path[1] if len(path) == 2 and path[1] else None


def parse_search(params: Iterable[tuple[str, str]]) -> Search:
    items = list(params)
    first = {}
    for key, value in items:
        first.setdefault(key, value)
    joint = first.get("joint") if "joint" in first else first.get("jointMode")
    if not joint:
        joint = "or"
    elif joint not in JOINT_MODES:
        raise SearchError(f"Search joint mode `{joint}` is not valid, expect one of {', '.join(JOINT_MODES)}.")
    is_case_sensitive = first.get("isCaseSensitive", "false").lower() in TRUE_WORDS

    modes: dict[str | None, str] = {}
    values: dict[str | None, list[str]] = {}
    for key, value in items:
        # Logto tests prefixes, not names: `modeX` and `searchX` count as `mode` and `search`.
        if key.startswith("mode"):
            field = _field_of(key)
            if value not in MATCH_MODES:
                where = f" for field `{field}`" if field else ""
                raise SearchError(
                    f"Search match mode `{value}`{where} is not valid, expect one of {', '.join(MATCH_MODES)}."
                )
            modes[field] = value
        elif key.startswith("search"):
            values.setdefault(_field_of(key), []).append(value)

    matches = []
    for field, field_values in values.items():
        mode = modes.get(field) or modes.get(None) or "like"
        if mode == "exact":
            if not all(field_values):
                raise SearchError("Search value cannot be empty.")
        else:
            if len(field_values) != 1:
                raise SearchError("Only one search value is allowed when search mode is not `exact`.")
            if not field_values[0]:
                raise SearchError("Search value cannot be empty.")
        matches.append(SearchItem(mode, field, tuple(field_values)))
    return Search(tuple(matches), joint, is_case_sensitive)


_WORD_BOUNDARIES = (re.compile(r"([a-z0-9])([A-Z])"), re.compile(r"([A-Z])([A-Z][a-z])"))
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def snake_case(name: str) -> str:
    """The `snake-case` package's result: `primaryEmail` and `primary-email` -> `primary_email`."""
    for pattern in _WORD_BOUNDARIES:
        name = pattern.sub(r"\1 \2", name)
    return "_".join(part.lower() for part in _NOT_ALNUM.split(name) if part)


def _operator(mode: str, case_sensitive: bool) -> str:
    if mode == "exact":
        return "="
    if mode == "like":
        return "LIKE" if case_sensitive else "ILIKE"
    if mode == "similar_to":
        if not case_sensitive:
            raise SearchError("Cannot use case-insensitive match for `similar to`.")
        return "SIMILAR TO"
    return "~" if case_sensitive else "~*"


def build_conditions(
    search: Search, fields: Sequence[str], args: list[object]
) -> str | None:
    """One SQL condition for `search` (None when there is nothing to match). Values are
    appended to `args` and referred to as `$n`; column names come only from `fields`."""
    conditions = []
    for item in search.matches:
        field = snake_case(item.field) if item.field else None
        if field is not None and field not in fields:
            raise SearchError(f"Search field `{field}` is not valid, expect one of {', '.join(fields)}.")
        lowercase = not search.is_case_sensitive and item.mode == "exact"
        values = [v.lower() for v in item.values] if lowercase else list(item.values)
        if not values or not all(values):
            raise SearchError(f"Empty value found{f' for field {field}' if field else ''}.")
        operator = _operator(item.mode, search.is_case_sensitive)
        if len(values) == 1:
            args.append(values[0])
            value_sql = f"${len(args)}"
        else:
            args.append(values)
            value_sql = f"ANY(${len(args)}::varchar[])"
        columns = [field] if field else list(fields)
        parts = []
        for column in columns:
            target = f"lower({column})" if lowercase and column not in NEVER_UPPER_CASE else column
            parts.append(f"{target} {operator} {value_sql}")
        conditions.append("(" + " OR ".join(parts) + ")")
    if not conditions:
        return None
    return "(" + f" {search.joint.upper()} ".join(conditions) + ")"

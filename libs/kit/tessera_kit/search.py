"""Logto's search query language (§1.5) as parameterised SQL: plain functions, no I/O.

`search` / `search.<field>` give values, `mode` / `mode.<field>` the match mode (`like`
default, `exact`, `similar_to`, `posix`), `joint` (or `jointMode`) combines fields with `or`
(default) or `and`, `isCaseSensitive` switches case sensitivity. Values are used verbatim:
`like` adds no `%`. Any mistake is 400 `request.invalid_input` with Logto's text in the message.

Services keep the searchable columns of their entities (a whitelist) and pass them to
`build_conditions`; columns never come from the request.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Callable, Collection, Iterable

from tessera_kit.errors import RequestError, render_message

MATCH_MODES = ("exact", "like", "similar_to", "posix")
JOINT_MODES = ("or", "and")
TRUTHY = frozenset({"1", "true", "y", "yes", "yep", "yeah"})

def is_truthy(value: str | None) -> bool:
    """Logto's yes/true query flags (`includeScopes`, `isCaseSensitive`)."""
    return value is not None and value.strip().lower() in TRUTHY


def invalid_search(details: str) -> RequestError:
    """Logto wraps its search parser's TypeError: 400 `request.invalid_input`, the text
    interpolated into the message ("Input is invalid. <text>") and given as `details`."""
    error = RequestError("request.invalid_input", 400, details=details)
    error.message = render_message("request.invalid_input", {"details": details})
    return error


@dataclass(frozen=True)
class Match:
    mode: str
    field: str | None  # None: every searchable field
    values: tuple[str, ...]


@dataclass(frozen=True)
class Search:
    matches: tuple[Match, ...] = ()
    joint: str = "or"
    case_sensitive: bool = False


def _field_of(key: str) -> str | None:
    path = key.split(".")
    if len(path) > 2:
        nested = ".".join(path[1:])
        raise invalid_search(
            f"Unsupported nested search field path `{nested}` detected. Only the first level field is supported."
        )
    return path[1] if len(path) == 2 else None


def parse_search(params: Iterable[tuple[str, str]]) -> Search:
    """The search in a query string's (key, value) pairs, in order (keys may repeat)."""
    params = list(params)
    lookup: dict[str, str] = {}
    for key, value in params:
        lookup.setdefault(key, value)  # the first of a repeated control key counts
    joint = (lookup.get("joint") if "joint" in lookup else lookup.get("jointMode")) or "or"
    if joint not in JOINT_MODES:
        raise invalid_search(f"Search joint mode `{joint}` is not valid, expect one of {', '.join(JOINT_MODES)}.")
    modes: dict[str | None, str] = {}
    values: dict[str | None, list[str]] = {}
    for key, value in params:
        if key.startswith("mode"):
            name = _field_of(key)
            if value not in MATCH_MODES:
                where = f" for field `{name}`" if name else ""
                raise invalid_search(
                    f"Search match mode `{value}`{where} is not valid, expect one of {', '.join(MATCH_MODES)}."
                )
            modes[name] = value
        elif key.startswith("search"):
            values.setdefault(_field_of(key), []).append(value)
    matches = []
    for name, given in values.items():
        mode = modes.get(name) or modes.get(None) or "like"
        if mode != "exact" and len(given) != 1:
            raise invalid_search("Only one search value is allowed when search mode is not `exact`.")
        if not all(given):
            raise invalid_search("Search value cannot be empty.")
        matches.append(Match(mode, name, tuple(given)))
    return Search(tuple(matches), joint, is_truthy(lookup.get("isCaseSensitive")))


_WORD_BOUNDARIES = (re.compile(r"([a-z0-9])([A-Z])"), re.compile(r"([A-Z])([A-Z][a-z])"))
_NOT_ALNUM = re.compile(r"[^A-Za-z0-9]+")


def snake_case(name: str) -> str:
    """The `snake-case` package's result: `primaryEmail` and `primary-email` -> `primary_email`."""
    for pattern in _WORD_BOUNDARIES:
        name = pattern.sub(r"\1 \2", name)
    return "_".join(part.lower() for part in _NOT_ALNUM.split(name) if part)


@dataclass
class SqlCondition:
    """A WHERE fragment and its arguments, numbered after the query's other arguments."""

    sql: str = ""
    args: list[object] = field(default_factory=list)


# (column, LIKE pattern) -> a weaker pattern for the column's trigram index, or None.
LikeNarrowing = Callable[[str, str], "str | None"]


def build_conditions(
    search: Search,
    fields: tuple[str, ...],
    *,
    first_arg: int,
    alias: str | None = None,
    never_upper_case: frozenset[str] = frozenset(),
    narrow_like: LikeNarrowing | None = None,
) -> SqlCondition:
    """SQL for the search over `[alias.]<field>` columns; placeholders start at `$first_arg`.
    Columns come only from `fields` (a whitelist), values only as arguments. Columns in
    `never_upper_case` (generated ids, digits) are compared without lower() in a
    case-insensitive `exact` match, so their plain indexes serve it.

    `narrow_like` (see `narrowed_like_pattern`) may give a `like` match a weaker pattern for
    the column's trigram index; the client's pattern is then still applied to every row the
    index finds, on an expression no index serves (`column || ''`), so the answer is the same."""
    if not search.matches:
        return SqlCondition()
    args: list[object] = []
    clauses: list[str] = []
    for match in search.matches:
        column = snake_case(match.field) if match.field else None
        if column is not None and column not in fields:
            raise invalid_search(f"Search field `{column}` is not valid, expect one of {', '.join(fields)}.")
        operator = _operator(match.mode, search.case_sensitive)
        lowercase = match.mode == "exact" and not search.case_sensitive
        values = [v.lower() for v in match.values] if lowercase else list(match.values)
        args.append(values[0] if len(values) == 1 else values)
        placeholder = f"${first_arg + len(args) - 1}"
        if len(values) > 1:
            placeholder = f"any({placeholder}::varchar[])"
        per_column = []
        for name in [column] if column else fields:
            qualified = f"{alias}.{name}" if alias else name
            target = f"lower({qualified})" if lowercase and name not in never_upper_case else qualified
            narrowed = narrow_like(name, values[0]) if narrow_like and match.mode == "like" else None
            if narrowed is None:
                per_column.append(f"{target} {operator} {placeholder}")
                continue
            args.append(narrowed)
            per_column.append(f"({qualified} {operator} ${first_arg + len(args) - 1}"
                              f" AND ({qualified} || '') {operator} {placeholder})")
        clauses.append("(" + " OR ".join(per_column) + ")")
    return SqlCondition("(" + f" {search.joint.upper()} ".join(clauses) + ")", args)


def _operator(mode: str, case_sensitive: bool) -> str:
    if mode == "exact":
        return "="
    if mode == "like":
        return "LIKE" if case_sensitive else "ILIKE"
    if mode == "similar_to":
        if not case_sensitive:
            raise invalid_search("Cannot use case-insensitive match for `similar to`.")
        return "SIMILAR TO"
    return "~" if case_sensitive else "~*"


# --- narrowing a LIKE pattern for a trigram index --------------------------------------------
#
# pg_trgm answers `column LIKE pattern` from the posting lists of every trigram of the pattern.
# A trigram found in most rows (`com` in e-mail addresses, a prefix every imported account
# shares) filters nothing but costs a pass over a posting list as long as the table: with a
# million users such a search reads megabytes of index for one match, ten times what it reads
# at 100k. A weaker pattern (some literal characters turned into `_`) whose trigrams leave the
# frequent ones out finds the same rows and a few more, which the client's pattern then drops.

_TRIGRAM_WORD = re.compile(r"[A-Za-z0-9]")


def _like_tokens(pattern: str) -> list[tuple[str, str]] | None:
    """(kind, text) per character: 'wild' (% or _), 'word' (a letter or digit, pg_trgm's word
    characters), 'other'; text keeps an escape. None when the pattern ends in a lone escape."""
    tokens: list[tuple[str, str]] = []
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            if i + 1 == len(pattern):
                return None
            escaped = pattern[i + 1]
            tokens.append(("word" if _TRIGRAM_WORD.match(escaped) else "other", char + escaped))
            i += 2
            continue
        kind = "wild" if char in "%_" else "word" if _TRIGRAM_WORD.match(char) else "other"
        tokens.append((kind, char))
        i += 1
    return tokens


def like_trigrams(pattern: str) -> list[tuple[str, tuple[int, ...]]] | None:
    """The trigrams pg_trgm takes from a LIKE pattern (its generate_wildcard_trgm: words of
    letters and digits, padded with two spaces before and one after unless a wildcard is
    there, lower-cased), each with the indexes of the pattern's tokens it covers. None for
    a pattern this model does not cover (non-ASCII text, a trailing escape)."""
    if not pattern.isascii():
        return None
    tokens = _like_tokens(pattern)
    if tokens is None:
        return None
    found: list[tuple[str, tuple[int, ...]]] = []
    i = 0
    while i < len(tokens):
        if tokens[i][0] != "word":
            i += 1
            continue
        start = i
        while i < len(tokens) and tokens[i][0] == "word":
            i += 1
        left = "  " if start == 0 or tokens[start - 1][0] != "wild" else ""
        right = " " if i == len(tokens) or tokens[i][0] != "wild" else ""
        chars = [(c[-1].lower(), n) for n, (_, c) in enumerate(tokens[start:i], start)]
        padded = [(c, None) for c in left] + chars + [(c, None) for c in right]
        for k in range(len(padded) - 2):
            window = padded[k:k + 3]
            found.append(("".join(c for c, _ in window), tuple(n for _, n in window if n is not None)))
    return found


def narrowed_like_pattern(pattern: str, frequent: Collection[str]) -> str | None:
    """A LIKE pattern that every match of `pattern` matches too, whose trigrams leave out the
    `frequent` ones; None when that changes nothing or would leave no trigram to search by
    (then every trigram is frequent, and so is likely the answer: the full pattern is best)."""
    trigrams = like_trigrams(pattern)
    if not trigrams:
        return None
    kept = [covered for trigram, covered in trigrams if trigram not in frequent]
    if not kept or len(kept) == len(trigrams):
        return None
    keep = {n for covered in kept for n in covered}
    tokens = _like_tokens(pattern) or []
    return "".join("_" if kind == "word" and n not in keep else text for n, (kind, text) in enumerate(tokens))

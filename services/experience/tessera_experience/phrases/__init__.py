"""The sign-in pages' phrases: built-in languages, custom phrases, and how a language is chosen.

Built-in phrase trees live in `locales/<tag>.json`: `translation` is the tree the pages use
(and the one custom phrases are checked against, English being the reference), `errors`
turns API error codes into sentences for the pages. A built-in language other than English
is English overlaid with its own texts, so a missing text falls back to English.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any, Iterable, Mapping

LOCALES = Path(__file__).parent / "locales"
DEFAULT_LANGUAGE = "en"
BUILT_IN_LANGUAGES: tuple[str, ...] = tuple(sorted(p.stem for p in LOCALES.glob("*.json")))

Tree = dict[str, Any]


@cache
def _locale_file(tag: str) -> dict[str, Any]:
    return json.loads((LOCALES / f"{tag}.json").read_text(encoding="utf-8"))


def deep_merge(base: Mapping[str, Any], overlay: Mapping[str, Any]) -> Tree:
    """`overlay` on top of `base`: objects merge key by key, anything else replaces."""
    merged: Tree = dict(base)
    for key, value in overlay.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = value
    return merged


@cache
def english_tree() -> Tree:
    return _locale_file(DEFAULT_LANGUAGE)["translation"]


@cache
def _built_in(tag: str) -> Tree:
    if tag == DEFAULT_LANGUAGE:
        return english_tree()
    return deep_merge(english_tree(), _locale_file(tag)["translation"])


def built_in_phrases(tag: str) -> Tree:
    """The built-in tree of `tag`, or English when `tag` is not built in."""
    return _built_in(tag if tag in BUILT_IN_LANGUAGES else DEFAULT_LANGUAGE)


def error_sentence(tag: str, code: str) -> str | None:
    """The page sentence for an API error code in `tag` (English if it has none). A
    connector's own error without a sentence of its own reads as `connector.general`."""
    codes = [code, "connector.general"] if code.startswith("connector.") else [code]
    for candidate in codes:
        if tag in BUILT_IN_LANGUAGES:
            sentence = _locale_file(tag).get("errors", {}).get(candidate)
            if sentence:
                return sentence
        sentence = _locale_file(DEFAULT_LANGUAGE).get("errors", {}).get(candidate)
        if sentence:
            return sentence
    return None


def clean_deep(value: Any) -> Any:
    """Logto's clean-deep: drop empty strings, nulls and (then) empty objects."""
    if isinstance(value, Mapping):
        cleaned = {}
        for key, item in value.items():
            item = clean_deep(item)
            if item is None or item == "" or (isinstance(item, dict) and not item):
                continue
            cleaned[key] = item
        return cleaned
    return value


def is_translation(value: Any) -> bool:
    """A nested object whose leaves are strings (the TranslationObject of the API)."""
    if not isinstance(value, Mapping):
        return False
    return all(isinstance(v, str) or (v is None) or is_translation(v) for v in value.values())


def fits_structure(translation: Mapping[str, Any], reference: Mapping[str, Any] | None = None) -> bool:
    """Every key path of `translation` exists in the English tree with the same kind
    (string leaf for a string, object for an object)."""
    reference = english_tree() if reference is None else reference
    for key, value in translation.items():
        expected = reference.get(key)
        if isinstance(value, Mapping):
            if not isinstance(expected, Mapping) or not fits_structure(value, expected):
                return False
        elif not isinstance(expected, str):
            return False
    return True


_QUALITY = re.compile(r"^\s*q\s*=\s*([0-9.]+)\s*$")


def accepted_languages(header: str | None) -> list[str]:
    """Tags of an Accept-Language header, most preferred first (q=0 excluded)."""
    if not header:
        return []
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")):
        tag, *params = [p.strip() for p in part.split(";")]
        if not tag or tag == "*":
            continue
        quality = 1.0
        for param in params:
            match = _QUALITY.match(param)
            if match:
                try:
                    quality = float(match[1])
                except ValueError:
                    quality = 0.0
        if quality > 0:
            ranked.append((-quality, position, tag))
    return [tag for _, _, tag in sorted(ranked)]


def choose_language(
    candidates: Iterable[str | None], *, custom_tags: Iterable[str], fallback: str
) -> str:
    """Logto's resolution: the first candidate (exact tag) that is built in or has custom
    phrases, then the fallback language if it is; otherwise English."""
    available = set(BUILT_IN_LANGUAGES) | set(custom_tags)
    for candidate in [*candidates, fallback]:
        if candidate and candidate in available:
            return candidate
    return DEFAULT_LANGUAGE


def phrases_for(tag: str, custom: Mapping[str, Any] | None) -> Tree:
    """Built-in phrases of `tag` (English when not built in) with the custom ones over them."""
    base = built_in_phrases(tag)
    return deep_merge(base, custom) if custom else base


_PLACEHOLDER = re.compile(r"\{\{\s*([\w.]+)\s*\}\}")


def lookup(tree: Mapping[str, Any], key: str, **values: Any) -> str:
    """`lookup(tree, "action.sign_in")`, with `{{name}}` placeholders filled in. A missing key
    answers itself (visible, never an exception on a page)."""
    node: Any = tree
    for part in key.split("."):
        node = node.get(part) if isinstance(node, Mapping) else None
    if not isinstance(node, str):
        node = english_tree()
        for part in key.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if not isinstance(node, str):
            return key
    return _PLACEHOLDER.sub(lambda m: str(values.get(m[1], "")), node)

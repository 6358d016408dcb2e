"""The searchable columns of users (Logto §1.5); the language is the kit's."""

from __future__ import annotations

from collections.abc import Mapping

from tessera_kit.search import LikeNarrowing, narrowed_like_pattern

USER_SEARCH_FIELDS = ("id", "primary_email", "primary_phone", "username", "name")
# Columns whose stored values never hold upper-case letters (generated ids over 0-9a-z; phone
# numbers are digits): case-insensitive `exact` compares them without lower(), so the plain
# indexes serve it. Same answer as lower(column), since the values are lower-cased too.
NEVER_UPPER_CASE = frozenset({"id", "primary_phone"})

# A trigram in at least this share of users is left out of a `like` search's index lookup
# (when the pattern has rarer ones): its posting list is a tenth of the table or more.
FREQUENT_TRIGRAM_SHARE = 0.1


def frequent_trigrams(statistics: Mapping[str, tuple[list[str], list[float]]]) -> dict[str, frozenset[str]]:
    """Per column, the trigrams at least FREQUENT_TRIGRAM_SHARE of the users have, from the
    (elements, frequencies) of the column's trigram statistics."""
    return {column: frozenset(e for e, f in zip(elements, frequencies) if f >= FREQUENT_TRIGRAM_SHARE)
            for column, (elements, frequencies) in statistics.items()}


def like_narrowing(frequent: Mapping[str, frozenset[str]]) -> LikeNarrowing:
    def narrow(column: str, pattern: str) -> str | None:
        common = frequent.get(column)
        return narrowed_like_pattern(pattern, common) if common else None
    return narrow

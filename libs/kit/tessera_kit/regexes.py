"""Logto's input regexes (§1.10, `packages/toolkit/core-kit/src/regex.ts`), in forms that
match in linear time, and the length caps every input meets before any regex sees it.

JS `\\d` and `\\w` are ASCII-only, hence re.ASCII; use `fullmatch`, because Python's `$`
would also accept a trailing newline. In Logto's password class ``[...@[\\]^...]`` the
`\\]` is an escaped `]`: a backslash is not an allowed character.

Logto's email rule is `\\S+@\\S+\\.\\S+`, whose overlapping `\\S+` runs backtrack
polynomially (a 30 kB run of `@`s took seconds). `EMAIL` accepts exactly the same strings
with no overlap: the first `@` after the first character splits it (an earlier `@` only
lengthens the domain, which helps), and the domain needs a dot after its first character
and before its last. Each piece stops at the one character the next one starts with, so a
failed match gives up in one pass.
"""

from __future__ import annotations

import re

# Caps checked before any regex (Logto's columns are varchar(128) for identifiers).
IDENTIFIER_MAX_LENGTH = 128
PASSWORD_MAX_LENGTH = 256
CODE_MAX_LENGTH = 64

USERNAME = re.compile(r"[A-Z_a-z]\w*", re.ASCII)
EMAIL = re.compile(r"\S[^\s@]*@\S[^\s.]*\.\S+")
PHONE = re.compile(r"\d+", re.ASCII)
HEX_COLOR = re.compile(r"#[\da-f]{3}([\da-f]{3})?", re.IGNORECASE)
_SPECIAL = r"""!"#$%&'()*+,./:;<=>?@\[\]^_`{|}~-"""
# Two of three classes (digit, letter, special), at least 8 of the allowed characters.
PASSWORD = re.compile(
    rf"((?=.*\d)(?=.*[A-Za-z])|(?=.*\d)(?=.*[{_SPECIAL}])|(?=.*[A-Za-z])(?=.*[{_SPECIAL}]))"
    rf"[\w{_SPECIAL}]{{8,}}",
    re.ASCII,
)
PASSWORD_MIN_LENGTH = 8

MAX_LENGTH = {USERNAME: IDENTIFIER_MAX_LENGTH, EMAIL: IDENTIFIER_MAX_LENGTH, PHONE: IDENTIFIER_MAX_LENGTH,
              HEX_COLOR: 7, PASSWORD: PASSWORD_MAX_LENGTH}


def matches(pattern: re.Pattern[str], value: object, max_length: int | None = None) -> bool:
    """`pattern.fullmatch(value)` for a string no longer than its cap; anything longer fails
    without the regex ever running."""
    limit = max_length if max_length is not None else MAX_LENGTH.get(pattern, IDENTIFIER_MAX_LENGTH)
    return isinstance(value, str) and len(value) <= limit and pattern.fullmatch(value) is not None

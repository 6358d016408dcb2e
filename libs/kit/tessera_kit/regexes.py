"""Logto's input regexes (§1.10, `packages/toolkit/core-kit/src/regex.ts`).

JS `\\d` and `\\w` are ASCII-only, hence re.ASCII; use `fullmatch`, because Python's `$`
would also accept a trailing newline. In Logto's password class ``[...@[\\]^...]`` the
`\\]` is an escaped `]`: a backslash is not an allowed character.
"""

from __future__ import annotations

import re

USERNAME = re.compile(r"[A-Z_a-z]\w*", re.ASCII)
EMAIL = re.compile(r"\S+@\S+\.\S+")
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

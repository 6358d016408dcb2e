"""Random ids over Logto's alphabet `0-9a-z` (users 12 characters, most entities 21)."""

from __future__ import annotations

import secrets

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
USER_ID_LENGTH = 12
DEFAULT_ID_LENGTH = 21


# The largest multiple of 36 a byte can hold: bytes from it up are dropped, so every
# character stays equally likely (rejection sampling, no modulo bias).
_BASE = len(ALPHABET)
_UNBIASED_BELOW = 256 - 256 % _BASE


def new_id(length: int = DEFAULT_ID_LENGTH) -> str:
    # One read of the OS random source per id; `secrets.choice` per character costs
    # several times more on hot paths (a token's jti, every event id).
    chars: list[str] = []
    while len(chars) < length:
        chars.extend(ALPHABET[b % _BASE] for b in secrets.token_bytes(length + 4) if b < _UNBIASED_BELOW)
    return "".join(chars[:length])


def new_user_id() -> str:
    return new_id(USER_ID_LENGTH)

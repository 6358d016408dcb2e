"""Random ids over Logto's alphabet `0-9a-z` (users 12 characters, most entities 21)."""

from __future__ import annotations

import secrets

ALPHABET = "0123456789abcdefghijklmnopqrstuvwxyz"
USER_ID_LENGTH = 12
DEFAULT_ID_LENGTH = 21


def new_id(length: int = DEFAULT_ID_LENGTH) -> str:
    choice = secrets.choice
    return "".join(choice(ALPHABET) for _ in range(length))


def new_user_id() -> str:
    return new_id(USER_ID_LENGTH)

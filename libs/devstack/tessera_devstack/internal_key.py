"""The internal key the gateway signs forwarded requests with and every service checks
(`tessera_kit.assertion`): generated for each `make run` and each test session."""

from __future__ import annotations

import secrets

INTERNAL_KEY_VARIABLE = "TESSERA_INTERNAL_KEY"


def generate_internal_key() -> str:
    """32 random bytes, base64url without padding (what TESSERA_INTERNAL_KEY takes)."""
    return secrets.token_urlsafe(32)

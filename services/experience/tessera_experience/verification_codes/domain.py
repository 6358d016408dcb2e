"""Verification codes (Logto's passcodes, §4.6): six random digits, valid ten minutes, ten
wrong tries. Only a digest is stored: SHA-256 over the code's own random id and the code, so
a database dump or backup shows no code and equal codes do not look equal. (Six digits are
few: what keeps them from being guessed is the expiry, the tries and the rate limits.)"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets

CODE_TTL = dt.timedelta(minutes=10)
MAX_TRIES = 10
# Logto's management API codes (`/api/verification-codes`) belong to no interaction.
GENERIC = "Generic"


def new_code() -> str:
    return f"{secrets.randbelow(1_000_000):06d}"


def digest(code_id: str, code: str) -> str:
    return hashlib.sha256(f"{code_id}\x00{code}".encode()).hexdigest()


def matches(code_id: str, stored_digest: str, candidate: str) -> bool:
    """Constant time: how long it takes says nothing about how close the guess was."""
    return hmac.compare_digest(digest(code_id, candidate[:64]), stored_digest)


def recipient_key(tenant_id: str, kind: str, value: str) -> str:
    """What the per-recipient limits count on (e-mail addresses compare case-insensitively)."""
    return f"{tenant_id}\x00{kind}\x00{value.lower() if kind == 'email' else value}"

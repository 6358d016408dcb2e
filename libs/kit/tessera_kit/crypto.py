"""Secrets at rest: AES-256-GCM under a key derived (HKDF-SHA256) from the deployment's
TESSERA_KEY_ENCRYPTION_KEY, one label per use, so each use has its own key.

`kek_id` names the derived key without revealing it: a row sealed under another key is
reported as such, not garbled. The associated data binds a ciphertext to its row, so it
cannot be moved to another one.
"""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tessera_kit.config import ConfigError
from tessera_kit.logging import get_logger

log = get_logger(__name__)

NONCE_BYTES = 12
DEVELOPMENT_KEY_ENCRYPTION_KEY = "tessera-development-only-key-encryption-key-do-not-use"
MINIMUM_SECRET_LENGTH = 32
# What the templates (deploy/k8s/secret.yaml, READMEs) put where a secret belongs.
PLACEHOLDER_MARKERS = ("replace", "changeme", "change_me", "change-me", "placeholder", "<", "xxxx")


def looks_like_placeholder(value: str) -> bool:
    lowered = value.lower()
    return any(marker in lowered for marker in PLACEHOLDER_MARKERS)


def secret_problem(value: str, minimum: int = MINIMUM_SECRET_LENGTH) -> str | None:
    if not value:
        return "is not set"
    if looks_like_placeholder(value):
        return "is a placeholder"
    if len(value) < minimum:
        return f"is shorter than {minimum} characters"
    return None


def key_encryption_key(value: str, *, production: bool, protects: str) -> str:
    """TESSERA_KEY_ENCRYPTION_KEY as a service may use it. Production refuses one that is
    unset, short or a template's placeholder; development warns and, for an unset or short
    one, uses a publicly known key (`protects` says what the warning is about)."""
    problem = secret_problem(value)
    if problem is None or (not production and len(value) >= MINIMUM_SECRET_LENGTH):
        return value
    if production:
        raise ConfigError(f"TESSERA_KEY_ENCRYPTION_KEY {problem}; refusing to start in production")
    log.warning(f"INSECURE: TESSERA_KEY_ENCRYPTION_KEY {problem}; {protects} are encrypted with a publicly "
                "known development key. Set it (>= 32 random characters) before any real use.")
    return DEVELOPMENT_KEY_ENCRYPTION_KEY


def derive(secret: str, label: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(secret.encode())


class AtRestEncryption:
    def __init__(self, secret: str, label: str) -> None:
        self._key = derive(secret, label)
        self.kek_id = hashlib.sha256(b"kek-id" + self._key).hexdigest()[:16]
        self._aead = AESGCM(self._key)  # once: it holds no per-message state

    def encrypt(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, plaintext, associated)

    def decrypt(self, blob: bytes, associated: bytes) -> bytes:
        """Raises cryptography's InvalidTag for another key, another row, or a changed blob."""
        return self._aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)

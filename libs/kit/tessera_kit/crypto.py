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

NONCE_BYTES = 12


def derive(secret: str, label: str, length: int = 32) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=None, info=label.encode()).derive(secret.encode())


class AtRestEncryption:
    def __init__(self, secret: str, label: str) -> None:
        self._key = derive(secret, label)
        self.kek_id = hashlib.sha256(b"kek-id" + self._key).hexdigest()[:16]

    def encrypt(self, plaintext: bytes, associated: bytes) -> bytes:
        nonce = os.urandom(NONCE_BYTES)
        return nonce + AESGCM(self._key).encrypt(nonce, plaintext, associated)

    def decrypt(self, blob: bytes, associated: bytes) -> bytes:
        """Raises cryptography's InvalidTag for another key, another row, or a changed blob."""
        return AESGCM(self._key).decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], associated)

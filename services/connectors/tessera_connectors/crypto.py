"""Connector configs at rest: AES-256-GCM under a key derived from TESSERA_KEY_ENCRYPTION_KEY
(another HKDF label than identity's signing keys). The associated data binds a ciphertext to
its tenant and instance id, so a config cannot be moved to another row."""

from __future__ import annotations

import hashlib
import os

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF


class ConfigEncryption:
    def __init__(self, secret: str) -> None:
        self._key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None,
                         info=b"tessera connector configs at rest").derive(secret.encode())
        # Names the key without revealing it: a row under another key is reported, not garbled.
        self.kek_id = hashlib.sha256(b"kek-id" + self._key).hexdigest()[:16]

    def encrypt(self, plaintext: bytes, tenant_id: str, connector_id: str) -> bytes:
        nonce = os.urandom(12)
        return nonce + AESGCM(self._key).encrypt(nonce, plaintext, _associated(tenant_id, connector_id))

    def decrypt(self, blob: bytes, tenant_id: str, connector_id: str) -> bytes:
        return AESGCM(self._key).decrypt(blob[:12], blob[12:], _associated(tenant_id, connector_id))


def _associated(tenant_id: str, connector_id: str) -> bytes:
    return f"{tenant_id}\x00{connector_id}".encode()

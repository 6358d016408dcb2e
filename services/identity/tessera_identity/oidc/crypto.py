"""Small cryptographic pieces: random tokens and their digests, signed cookie values. Keys
derived from the key-encryption key and encryption at rest are the kit's (tessera_kit.crypto).
Nothing here is JOSE (that is joserfc's, in keys.py)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets

TOKEN_BYTES = 32  # 256 bits of entropy for codes, refresh tokens and opaque access tokens


def new_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def digest(token: str) -> bytes:
    """What the database keeps of a code or token (a lookup key that reveals nothing)."""
    return hashlib.sha256(token.encode()).digest()


def successor_token(key: bytes, token: str) -> str:
    """The refresh token that rotating `token` yields, the same every time (HMAC-SHA256 under
    a key derived from the key-encryption key): a reuse inside the reuse interval is answered
    with the same successor, and neither it nor any ciphertext of it is stored."""
    return b64url(hmac.new(key, b"refresh-successor:" + token.encode(), hashlib.sha256).digest())


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def s256(verifier: str) -> str:
    """RFC 7636 §4.2: BASE64URL(SHA256(ASCII(code_verifier)))."""
    return b64url(hashlib.sha256(verifier.encode("ascii")).digest())


def half_hash(value: str, alg: str) -> str:
    """OIDC Core §3.1.3.6 `at_hash`: the left half of the hash the signing alg uses."""
    name = {"ES256": "sha256", "RS256": "sha256", "ES384": "sha384"}[alg]
    full = hashlib.new(name, value.encode("ascii")).digest()
    return b64url(full[: len(full) // 2])




class CookieSigner:
    """Signed cookies as koa sets them for oidc-provider (what Logto's clients read): the value
    in `<name>` and its keygrip signature in `<name>.sig`, base64url(HMAC-SHA1(`<name>=<value>`))
    without padding. The name is signed too, so a `_session` value cannot pass as an
    `_interaction` one. `sign`/`unsign` keep a value and its MAC in one string, for tokens that
    travel in a form rather than as cookies."""

    def __init__(self, key: bytes) -> None:
        self._key = key

    def signature(self, name: str, value: str) -> str:
        return b64url(hmac.new(self._key, f"{name}={value}".encode(), hashlib.sha1).digest())

    def verify(self, name: str, value: str | None, signature: str | None) -> str | None:
        """The value when `signature` is its own (constant-time), else None."""
        if not value or not signature:
            return None
        return value if hmac.compare_digest(signature.encode(), self.signature(name, value).encode()) else None

    def sign(self, name: str, value: str) -> str:
        return f"{value}.{self._mac(name, value)}"

    def unsign(self, name: str, signed: str | None) -> str | None:
        if not signed or "." not in signed:
            return None
        value, mac = signed.rsplit(".", 1)
        return value if hmac.compare_digest(mac.encode(), self._mac(name, value).encode()) else None

    def _mac(self, name: str, value: str) -> str:
        return b64url(hmac.new(self._key, f"{name}={value}".encode(), hashlib.sha256).digest())

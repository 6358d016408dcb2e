"""Signing keys: generated at first start, encrypted at rest, rotated without downtime.

A key lives through three states (column `status`):
- `next`: published in the JWKS but not signing, so verifiers (the gateway, RPs) that cache the
  JWKS learn it before the first token signed with it reaches them;
- `current`: signs every ID token and JWT access token (one per tenant);
- `retired`: no longer signs, still published until `expires_at`, after the last token it
  signed has expired.

`python -m tessera_identity.oidc.keys rotate` stages a new key; every replica promotes it once it
has been published for `oidc_key_propagation_seconds` (a conditional UPDATE, so replicas do not
race), and rereads the keys every `oidc_key_refresh_seconds`.
JOSE is joserfc's: RFC 7517 keys, RFC 7638 thumbprints as `kid`, RFC 7515/7519 compact JWTs.
"""

from __future__ import annotations

import asyncio
import functools
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any

import asyncpg
import msgspec
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, RSAKey

from tessera_kit.crypto import AtRestEncryption

# The HKDF label of the signing keys' encryption (changing it makes stored keys unreadable).
SIGNING_KEYS_LABEL = "tessera oidc signing keys at rest"
from tessera_kit.logging import get_logger

log = get_logger(__name__)

_CURVES = {"ES384": "P-384", "ES256": "P-256"}
SUPPORTED_ALGS = ("ES384", "ES256", "RS256")


class KeyDecryptionError(RuntimeError):
    pass


def generate_key(alg: str) -> ECKey | RSAKey:
    if alg in _CURVES:
        key = ECKey.generate_key(_CURVES[alg], private=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, private=True)
    else:
        raise ValueError(f"unsupported signing algorithm {alg!r}; use one of {SUPPORTED_ALGS}")
    return key


def public_jwk(key: ECKey | RSAKey, kid: str, alg: str) -> dict[str, Any]:
    return {**key.as_dict(private=False), "kid": kid, "alg": alg, "use": "sig"}


@dataclass(frozen=True)
class SigningKey:
    kid: str
    alg: str
    key: ECKey | RSAKey


class KeyRing:
    """The keys of one tenant as this replica knows them: the one that signs, the published
    set (for the JWKS and for verifying our own tokens), and the JWKS document, pre-encoded."""

    def __init__(self, tenant_id: str, encryption: AtRestEncryption, *, alg: str,
                 propagation_seconds: int, retired_seconds: int) -> None:
        self.tenant_id = tenant_id
        self.encryption = encryption
        self.alg = alg
        self.propagation_seconds = propagation_seconds
        self.retired_seconds = retired_seconds
        self.signing: SigningKey | None = None
        self.published: dict[str, Any] = {}  # kid -> public key (joserfc), for verification
        self.published_algs: dict[str, str] = {}
        self.jwks_json: bytes = b'{"keys":[]}'

    # ------------------------------------------------------------ storage

    async def _insert(self, conn: asyncpg.Connection, alg: str, status: str) -> str:
        key = generate_key(alg)
        kid = key.thumbprint()
        pem = key.as_pem(private=True)
        await conn.execute(
            "INSERT INTO oidc_signing_keys (tenant_id, kid, alg, private_key_encrypted, kek_id,"
            " public_jwk, status, activated_at)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, CASE WHEN $7 = 'current' THEN now() END)",
            self.tenant_id, kid, alg, self.encryption.encrypt(pem, kid.encode()),
            self.encryption.kek_id, public_jwk(key, kid, alg), status,
        )
        log.info("oidc signing key created", kid=kid, alg=alg, status=status)
        return kid

    async def ensure(self, conn: asyncpg.Connection) -> None:
        """First start: a current key now. A configured algorithm that differs from the
        current key's: stage a key of the new algorithm (promoted after propagation)."""
        async with conn.transaction():
            # Replicas starting together must not both create the first key.
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('oidc-keys:' || $1))", self.tenant_id)
            rows = await conn.fetch(
                "SELECT kid, alg, status FROM oidc_signing_keys WHERE tenant_id = $1"
                " AND status IN ('current', 'next')", self.tenant_id,
            )
            current = next((r for r in rows if r["status"] == "current"), None)
            staged = [r for r in rows if r["status"] == "next"]
            if current is None:
                await self._insert(conn, self.alg, "current")
            elif current["alg"] != self.alg and not any(r["alg"] == self.alg for r in staged):
                log.warning("oidc signing algorithm changed: staging a new key",
                            current=current["alg"], configured=self.alg)
                await self._insert(conn, self.alg, "next")
        await self.promote_due(conn)
        await self.reload(conn)

    async def stage(self, conn: asyncpg.Connection, alg: str | None = None) -> str:
        """Start a rotation: a new key, published now, signing after propagation."""
        async with conn.transaction():
            return await self._insert(conn, alg or self.alg, "next")

    async def promote_due(self, conn: asyncpg.Connection, *, now_offset: float = 0.0) -> bool:
        """Promote the oldest staged key published long enough; retire the current one.
        `now_offset` lets tests and the CLI's `--now` skip the wait."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('oidc-keys:' || $1))", self.tenant_id)
            staged = await conn.fetchrow(
                "SELECT kid FROM oidc_signing_keys WHERE tenant_id = $1 AND status = 'next'"
                " AND created_at <= now() + make_interval(secs => $2) - make_interval(secs => $3)"
                " ORDER BY created_at LIMIT 1",
                self.tenant_id, float(now_offset), float(self.propagation_seconds),
            )
            await conn.execute(
                "DELETE FROM oidc_signing_keys WHERE tenant_id = $1 AND status = 'retired'"
                " AND expires_at < now()", self.tenant_id,
            )
            if staged is None:
                return False
            await conn.execute(
                "UPDATE oidc_signing_keys SET status = 'retired', retired_at = now(),"
                " expires_at = now() + make_interval(secs => $2)"
                " WHERE tenant_id = $1 AND status = 'current'",
                self.tenant_id, float(self.retired_seconds),
            )
            await conn.execute(
                "UPDATE oidc_signing_keys SET status = 'current', activated_at = now() WHERE kid = $1",
                staged["kid"],
            )
            log.info("oidc signing key promoted", kid=staged["kid"])
            return True

    async def reload(self, conn: asyncpg.Connection) -> None:
        rows = await conn.fetch(
            "SELECT kid, alg, status, public_jwk, private_key_encrypted, kek_id FROM oidc_signing_keys"
            " WHERE tenant_id = $1 AND (expires_at IS NULL OR expires_at > now())"
            " ORDER BY CASE status WHEN 'current' THEN 0 WHEN 'next' THEN 1 ELSE 2 END, created_at DESC",
            self.tenant_id,
        )
        published: dict[str, Any] = {}
        algs: dict[str, str] = {}
        signing: SigningKey | None = None
        for row in rows:
            jwk_data = row["public_jwk"]
            published[row["kid"]] = (ECKey if jwk_data["kty"] == "EC" else RSAKey).import_key(
                {k: v for k, v in jwk_data.items() if k not in ("alg", "use", "kid")}
            )
            algs[row["kid"]] = row["alg"]
            if row["status"] == "current":
                if self.signing is not None and self.signing.kid == row["kid"]:
                    signing = self.signing  # no need to decrypt again
                else:
                    signing = SigningKey(row["kid"], row["alg"], self._decrypt(row))
        self.signing = signing
        self.published = published
        self.published_algs = algs
        self.jwks_json = msgspec.json.encode({"keys": [r["public_jwk"] for r in rows]})

    async def refresh(self, conn: asyncpg.Connection) -> None:
        """The timed round (every `oidc_key_refresh_seconds`, see wiring.refresh_keys): promote a
        staged key once due, then reread the keys."""
        await self.promote_due(conn)
        await self.reload(conn)

    def _decrypt(self, row: asyncpg.Record) -> ECKey | RSAKey:
        if row["kek_id"] != self.encryption.kek_id:
            raise KeyDecryptionError(
                f"signing key {row['kid']} was encrypted with another TESSERA_KEY_ENCRYPTION_KEY"
                f" (kek id {row['kek_id']}, this process has {self.encryption.kek_id})"
            )
        try:
            pem = self.encryption.decrypt(row["private_key_encrypted"], row["kid"].encode())
        except Exception as exc:
            raise KeyDecryptionError(f"signing key {row['kid']} cannot be decrypted") from exc
        cls = RSAKey if row["alg"] == "RS256" else ECKey
        return cls.import_key(pem)

    # ------------------------------------------------------------ JOSE

    @property
    def signing_alg(self) -> str:
        return self.signing.alg if self.signing else self.alg

    def sign(self, claims: dict[str, Any], *, typ: str = "JWT") -> str:
        key = self.signing
        if key is None:
            raise RuntimeError("no current signing key")
        # A JWT is a JWS of the claims as JSON (RFC 7519 §7.1): the claims are encoded once, by
        # msgspec, and joserfc signs and serialises them (jwt.encode would convert them again).
        header = {"typ": typ, "alg": key.alg, "kid": key.kid}
        return jws.serialize_compact(header, msgspec.json.encode(claims), key.key,
                                     registry=_registry(key.alg))

    def verify(self, token: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(header, claims) of a JWT signed by one of our published keys; claims unchecked.
        Raises JoseError (or ValueError) when it is not ours or is tampered with."""
        from joserfc.jws import extract_compact

        header = extract_compact(token.encode()).protected
        kid = header.get("kid")
        key = self.published.get(kid) if isinstance(kid, str) else None
        if key is None:
            raise JoseError("no published key for this kid")
        alg = self.published_algs[kid]
        if header.get("alg") != alg:
            raise JoseError("unexpected alg")
        decoded = jwt.decode(token, key, algorithms=[alg])
        return decoded.header, decoded.claims


@functools.cache
def _registry(alg: str) -> jws.JWSRegistry:
    """joserfc's registry allowing `alg` alone (jwt.encode builds one per call)."""
    return jws.JWSRegistry(algorithms=[alg])


def now() -> float:
    return time.time()


def from_timestamp(seconds: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(seconds, tz=dt.timezone.utc)


async def _cli(argv: list[str]) -> int:
    """`python -m tessera_identity.oidc.keys rotate [--alg ES384] [--now]` / `list`."""
    import argparse

    from tessera_identity.oidc.settings import load
    from tessera_kit.config import ServiceSettings, load_settings
    from tessera_kit.db import brief_connection

    parser = argparse.ArgumentParser(prog="python -m tessera_identity.oidc.keys")
    parser.add_argument("command", choices=["rotate", "list"])
    parser.add_argument("--alg", choices=SUPPORTED_ALGS)
    parser.add_argument("--now", action="store_true",
                        help="promote at once (only when no verifier caches the JWKS)")
    args = parser.parse_args(argv)
    service = load_settings(ServiceSettings)
    settings = load()
    async with brief_connection(service.database_url, "identity") as conn:
        encryption = AtRestEncryption(settings.effective_key_encryption_key(), SIGNING_KEYS_LABEL)
        ring = KeyRing(service.tenant_id, encryption,
                       alg=args.alg or settings.oidc_signing_alg,
                       propagation_seconds=settings.oidc_key_propagation_seconds,
                       retired_seconds=settings.oidc_retired_key_seconds)
        if args.command == "rotate":
            kid = await ring.stage(conn, args.alg)
            print(f"staged {kid}; it signs after {settings.oidc_key_propagation_seconds} s")
            if args.now:
                await ring.promote_due(conn, now_offset=settings.oidc_key_propagation_seconds + 1)
                print(f"promoted {kid}")
        for row in await conn.fetch("SELECT kid, alg, status, created_at, expires_at FROM oidc_signing_keys"
                                    " WHERE tenant_id = $1 ORDER BY created_at", service.tenant_id):
            print(row["status"].ljust(8), row["alg"], row["kid"], row["created_at"], row["expires_at"] or "")
    return 0


if __name__ == "__main__":
    import sys

    sys.exit(asyncio.run(_cli(sys.argv[1:])))

"""The OpenID Provider's configuration, from the environment (names as in `tessera_kit.config`).

Two secrets protect what the provider stores and hands out:
- `TESSERA_KEY_ENCRYPTION_KEY` encrypts the signing keys at rest (AES-256-GCM, key derived
  with HKDF-SHA256). Any string of at least 32 characters; keep it out of the database's reach.
- `TESSERA_COOKIE_SECRET` signs the `_interaction` and `_session` cookies (HMAC-SHA256).
  Unset: derived from the key-encryption key (another HKDF label), so one secret suffices.

Unset in development: a fixed, publicly known development key and a loud warning at every
start. With `TESSERA_ENV=production` an unset, short or placeholder key refuses to start, and
so does an admin client (`TESSERA_ADMIN_CLIENT_ID` / `_SECRET`) that is unset, short or a
template placeholder such as `REPLACE_ME`: a production deployment never runs on a generated
or publicly known credential.
"""

from __future__ import annotations

from typing import Literal

import msgspec

from tessera_kit.config import ConfigError, env_name, load_settings, redacted_repr
from tessera_kit.crypto import (  # noqa: F401 (DEVELOPMENT_KEY_ENCRYPTION_KEY re-exported)
    DEVELOPMENT_KEY_ENCRYPTION_KEY,
    MINIMUM_SECRET_LENGTH,
    key_encryption_key,
    secret_problem,
)
from tessera_kit.logging import get_logger

log = get_logger(__name__)

SigningAlg = Literal["ES384", "ES256", "RS256"]
# Logto's ids are 21 characters; anything much shorter is guessable or a leftover value.
MINIMUM_CLIENT_ID_LENGTH = 16


class OidcSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_name):
    env: str = "development"  # TESSERA_ENV; "production" makes missing secrets fatal
    key_encryption_key: str = ""  # TESSERA_KEY_ENCRYPTION_KEY
    cookie_secret: str = ""  # TESSERA_COOKIE_SECRET
    # Algorithm of newly generated signing keys (Logto's default key is EC P-384 -> ES384).
    oidc_signing_alg: SigningAlg = "ES384"
    # A consumed refresh token is still accepted this long, so concurrent refreshes of one
    # token both succeed (Logto's refreshTokenReuseInterval).
    oidc_refresh_reuse_seconds: float = 3.0
    # A staged key is published this long before it signs: longer than any verifier's JWKS
    # cache (the gateway refetches at most every 300 s, or at once on an unknown kid).
    oidc_key_propagation_seconds: int = 600
    # A retired key stays in the JWKS this long, longer than the longest token it signed.
    oidc_retired_key_seconds: int = 14 * 86400
    # How often each replica rereads the signing keys (new, promoted, retired).
    oidc_key_refresh_seconds: float = 30.0
    # Client lookups are cached this long; identity.application.* events evict sooner.
    oidc_client_cache_seconds: float = 5.0
    # rbac's answer for (application, resource) is reused this long by client-credentials
    # requests; any rbac.* event clears it sooner. 0: ask rbac for every token.
    oidc_application_scopes_cache_seconds: float = 2.0
    admin_client_id: str = ""  # TESSERA_ADMIN_CLIENT_ID
    admin_client_secret: str = ""  # TESSERA_ADMIN_CLIENT_SECRET

    __repr__ = redacted_repr  # the key, the cookie secret and the admin secret stay out of logs

    @property
    def is_production(self) -> bool:
        return self.env.lower() in ("production", "prod")

    def effective_key_encryption_key(self) -> str:
        return key_encryption_key(self.key_encryption_key, production=self.is_production,
                                  protects="the OIDC signing keys")

    def check_cookie_secret(self) -> None:
        if self.cookie_secret and len(self.cookie_secret) < MINIMUM_SECRET_LENGTH:
            if self.is_production:
                raise ConfigError(
                    f"TESSERA_COOKIE_SECRET is shorter than {MINIMUM_SECRET_LENGTH} characters"
                )
            log.warning("INSECURE: TESSERA_COOKIE_SECRET is short")


    def check_admin_client(self) -> None:
        """In production the admin client must be given, long enough and not a template's
        placeholder (development generates one, or takes what it is given)."""
        if not self.is_production:
            return
        problems = [
            f"{name} {problem}"
            for name, value, minimum in (
                ("TESSERA_ADMIN_CLIENT_ID", self.admin_client_id, MINIMUM_CLIENT_ID_LENGTH),
                ("TESSERA_ADMIN_CLIENT_SECRET", self.admin_client_secret, MINIMUM_SECRET_LENGTH),
            )
            if (problem := secret_problem(value, minimum)) is not None
        ]
        if problems:
            raise ConfigError("; ".join(problems) + "; refusing to start in production")


def load() -> OidcSettings:
    return load_settings(OidcSettings)

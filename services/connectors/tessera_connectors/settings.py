"""The connectors service's configuration, from the environment (names as in `tessera_kit.config`).

- `TESSERA_KEY_ENCRYPTION_KEY` encrypts connector configs at rest (`tessera_kit.crypto`:
  AES-256-GCM with an HKDF-derived key), as identity's signing keys. Unset in development: a
  publicly known development key and a warning; with `TESSERA_ENV=production` an unset, short
  or placeholder key (as in deploy/k8s/secret.yaml) makes the service refuse to start.
- `TESSERA_MOCK_CONNECTORS=true` installs Logto's test factories (`mock-email-service`, ...),
  which write each code to a record file that Logto's test suite reads back. On in `make run`
  and the tests (libs/devstack), off by default and in deploy/.
- The providers' endpoints are the real ones; tests point them at local servers.
"""

from __future__ import annotations

import tempfile

import msgspec

from tessera_kit.config import env_name, load_settings, redacted_repr
from tessera_kit.crypto import key_encryption_key


class ConnectorsSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_name):
    env: str = "development"  # TESSERA_ENV
    key_encryption_key: str = ""  # TESSERA_KEY_ENCRYPTION_KEY
    mock_connectors: bool = False  # TESSERA_MOCK_CONNECTORS
    # Where the mock factories write `logto_mock_verification_code_record.txt` (the OS temp dir).
    mock_connectors_record_dir: str = ""
    # A provider that has not answered by then is reported as `connector.general` (Logto: 5 s).
    connector_timeout_seconds: float = 5.0
    sendgrid_endpoint: str = "https://api.sendgrid.com/v3/mail/send"
    twilio_endpoint: str = "https://api.twilio.com/2010-04-01/Accounts/{{accountSID}}/Messages.json"
    github_authorization_endpoint: str = "https://github.com/login/oauth/authorize"
    github_token_endpoint: str = "https://github.com/login/oauth/access_token"
    github_userinfo_endpoint: str = "https://api.github.com/user"
    google_authorization_endpoint: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_endpoint: str = "https://oauth2.googleapis.com/token"
    google_userinfo_endpoint: str = "https://openidconnect.googleapis.com/v1/userinfo"

    __repr__ = redacted_repr  # the key-encryption key stays out of logs and tracebacks

    @property
    def is_production(self) -> bool:
        return self.env.lower() in ("production", "prod")

    @property
    def record_dir(self) -> str:
        return self.mock_connectors_record_dir or tempfile.gettempdir()

    def effective_key_encryption_key(self) -> str:
        return key_encryption_key(self.key_encryption_key, production=self.is_production,
                                  protects="connector configs")


def load() -> ConnectorsSettings:
    return load_settings(ConnectorsSettings)

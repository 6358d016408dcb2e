"""TESSERA_KEY_ENCRYPTION_KEY as connectors take it: production never runs on a missing,
short or template key; development falls back to the known development key."""

from __future__ import annotations

import pytest

from tessera_connectors.settings import ConnectorsSettings
from tessera_kit.config import ConfigError, load_settings
from tessera_kit.crypto import DEVELOPMENT_KEY_ENCRYPTION_KEY


@pytest.mark.parametrize(("key", "complaint"), [
    (None, "is not set"),
    ("short", "is shorter than 32"),
    ("REPLACE_ME_with_at_least_32_random_characters", "is a placeholder"),
])
def test_production_refuses_a_key_that_is_not_real(key, complaint):
    env = {"TESSERA_ENV": "production", **({"TESSERA_KEY_ENCRYPTION_KEY": key} if key else {})}
    with pytest.raises(ConfigError, match=f"TESSERA_KEY_ENCRYPTION_KEY {complaint}"):
        load_settings(ConnectorsSettings, env).effective_key_encryption_key()


def test_a_real_key_is_used_and_development_falls_back():
    real = "r" * 40
    production = {"TESSERA_ENV": "production", "TESSERA_KEY_ENCRYPTION_KEY": real}
    assert load_settings(ConnectorsSettings, production).effective_key_encryption_key() == real
    assert load_settings(ConnectorsSettings, {}).effective_key_encryption_key() == DEVELOPMENT_KEY_ENCRYPTION_KEY
    short = {"TESSERA_KEY_ENCRYPTION_KEY": "short"}
    assert load_settings(ConnectorsSettings, short).effective_key_encryption_key() == DEVELOPMENT_KEY_ENCRYPTION_KEY


def test_the_key_encryption_key_stays_out_of_the_settings_repr():
    from tessera_connectors.settings import ConnectorsSettings

    secret = "s3cret-value-that-must-not-be-printed-anywhere"
    text = repr(ConnectorsSettings(key_encryption_key=secret))
    assert secret not in text and "key_encryption_key=<redacted>" in text

"""Secrets at rest: what is sealed opens only with its key, label and associated data, and
the derivation stays what identity and connectors have stored rows under."""

from __future__ import annotations

import pytest
from cryptography.exceptions import InvalidTag

from tessera_kit.crypto import AtRestEncryption

SECRET = "a-test-key-encryption-key-of-32-chars!!"


def test_sealed_opens_with_the_same_key_label_and_associated_data():
    box = AtRestEncryption(SECRET, "label")
    blob = box.encrypt(b"the config", b"tenant\x00row")
    assert b"the config" not in blob
    assert box.decrypt(blob, b"tenant\x00row") == b"the config"
    assert box.encrypt(b"the config", b"tenant\x00row") != blob  # a fresh nonce each time


@pytest.mark.parametrize(("secret", "label", "associated"), [
    (SECRET, "label", b"tenant\x00other-row"),
    (SECRET, "another label", b"tenant\x00row"),
    (SECRET + "x", "label", b"tenant\x00row"),
])
def test_anything_else_does_not_open_it(secret, label, associated):
    blob = AtRestEncryption(SECRET, "label").encrypt(b"the config", b"tenant\x00row")
    with pytest.raises(InvalidTag):
        AtRestEncryption(secret, label).decrypt(blob, associated)


def test_the_key_ids_stored_rows_carry_do_not_change():
    # Computed with the services' own classes before they moved here: rows sealed then still open.
    assert AtRestEncryption(SECRET, "tessera connector configs at rest").kek_id == "f282d990abc6a018"
    assert AtRestEncryption(SECRET, "tessera oidc signing keys at rest").kek_id == "fa105269e51c75ba"
    assert AtRestEncryption(SECRET, "a").kek_id != AtRestEncryption(SECRET, "b").kek_id


def test_the_cipher_is_built_once_not_per_call(monkeypatch):
    import tessera_kit.crypto as crypto

    built = []
    real = crypto.AESGCM
    monkeypatch.setattr(crypto, "AESGCM", lambda key: built.append(key) or real(key))
    box = AtRestEncryption(SECRET, "label")
    for _ in range(3):
        assert box.decrypt(box.encrypt(b"x", b"row"), b"row") == b"x"
    assert len(built) == 1

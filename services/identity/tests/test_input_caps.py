"""Identity's guards cap a string before its pattern runs (issue 11, item 1): an over-long
identifier or password is `too_big`, and the regex never sees it."""

from __future__ import annotations

import pytest

from tessera_identity import validation
from tessera_identity.users import domain
from tessera_kit.errors import RequestError


class SpyPattern:
    def __init__(self, pattern) -> None:
        self.pattern = pattern
        self.seen: list[str] = []

    def fullmatch(self, value: str):
        self.seen.append(value)
        return self.pattern.fullmatch(value)


@pytest.mark.parametrize("guard, field", [
    (domain.guard_create, "primaryEmail"),
    (domain.guard_update, "primaryEmail"),
])
def test_an_over_long_email_is_too_big_and_never_matched(monkeypatch, guard, field):
    spy = SpyPattern(validation.EMAIL)
    monkeypatch.setattr(domain, "EMAIL", spy)
    with pytest.raises(RequestError) as raised:
        guard({field: "@" * 30_000})
    issue = raised.value.data["issues"][0]
    assert raised.value.code == "guard.invalid_input" and issue["code"] == "too_big"
    assert spy.seen == []


def test_an_over_long_new_password_is_too_big_and_never_matched(monkeypatch):
    spy = SpyPattern(validation.PASSWORD)
    monkeypatch.setattr(domain, "PASSWORD", spy)
    with pytest.raises(RequestError) as raised:
        domain.guard_new_password({"password": "a1" * 100_000})
    assert raised.value.data["issues"][0]["code"] == "too_big"
    assert spy.seen == []
    assert domain.guard_new_password({"password": "abcd1234"}) == "abcd1234"


async def test_bodies_are_capped_per_surface(identity):
    """OIDC's form posts at 64 KiB, the Management API at 1 MiB: larger bodies are 413, unread."""
    big_form = b"grant_type=client_credentials&x=" + b"@" * (64 * 1024)
    response = await identity.client.post("/oidc/token", content=big_form,
                                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert response.status_code == 413
    response = await identity.client.post("/api/users", content=b'{"name": "' + b"@" * (1024 * 1024) + b'"}',
                                          headers={"content-type": "application/json"})
    assert response.status_code == 413
    small = await identity.client.post("/oidc/token", data={"grant_type": "client_credentials"})
    assert small.status_code in (400, 401)  # read and answered


@pytest.mark.parametrize("avatar", ["javascript:alert(1)", "data:image/svg+xml,<svg onload=alert(1)>",
                                    "vbscript:x", "ftp://files.example/a.png"])
async def test_an_avatar_is_an_http_or_https_url(identity, unique, avatar):
    user = await identity.create_user(username=unique())
    response = await identity.client.patch(f"/api/users/{user['id']}", json={"avatar": avatar})
    assert response.status_code == 400 and response.json()["code"] == "guard.invalid_input", response.text
    ok = await identity.client.patch(f"/api/users/{user['id']}", json={"avatar": "https://img.example/a.png"})
    assert ok.status_code == 200 and ok.json()["avatar"] == "https://img.example/a.png"

"""A JSON body that is not UTF-8, or nested deeper than the interpreter's stack, is the client's
mistake: msgspec raises UnicodeDecodeError and RecursionError for those, not DecodeError, and
both were 500s (the OIDC endpoints' `server_error`, the Management API's internal error)."""

from __future__ import annotations

import pytest

from tessera_identity import validation
from tessera_identity.oidc import params
from tessera_identity.oidc.errors import OAuthError
from tessera_kit.errors import RequestError

UNREADABLE = [
    b'{"grant_type": "\xff"}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' * 50_000 + b"1" + b"}" * 50_000,
]


class FakeRequest:
    def __init__(self, body: bytes) -> None:
        self._body = body
        self.headers = {"content-type": "application/json"}

    async def body(self) -> bytes:
        return self._body


@pytest.mark.parametrize("body", UNREADABLE, ids=["not utf-8", "deep array", "deep object"])
def test_an_unreadable_oidc_body_is_invalid_request(body):
    with pytest.raises(OAuthError) as raised:
        params._from_json(body)
    assert (raised.value.error, raised.value.status) == ("invalid_request", 400)


@pytest.mark.parametrize("body", UNREADABLE, ids=["not utf-8", "deep array", "deep object"])
async def test_an_unreadable_management_body_is_invalid_input(body):
    with pytest.raises(RequestError) as raised:
        await validation.read_object(FakeRequest(body))
    assert (raised.value.code, raised.value.status) == ("guard.invalid_input", 400)

"""TokenVerifier and JwksCache in-process, against the fake identity's real JWKS endpoint."""

from __future__ import annotations

import httpx
import pytest
from joserfc import jwk

import tessera_gateway.auth as auth_module
from tessera_gateway.auth import InternalCalls, JwksCache, ManagementAuth, TokenVerifier
from tessera_kit.assertion import AssertionSigner
from tessera_kit.errors import RequestError


@pytest.fixture
async def http(internal_key, fake_identity):
    """Signs its requests to the fake identity as the gateway's own client does."""
    signing = InternalCalls(AssertionSigner(internal_key), [fake_identity.url])
    async with httpx.AsyncClient(timeout=5, auth=signing) as client:
        yield client


def _verifier(http: httpx.AsyncClient, fake_identity, tokens, **jwks_options) -> TokenVerifier:
    jwks = JwksCache(f"{fake_identity.url}/oidc/jwks", http, **jwks_options)
    return TokenVerifier(jwks, issuer=tokens.issuer, audience=tokens.audience)


async def test_a_repeated_token_costs_no_crypto(http, fake_identity, tokens, monkeypatch) -> None:
    verifier = _verifier(http, fake_identity, tokens)
    calls = []
    real_decode = auth_module.jwt.decode
    monkeypatch.setattr(auth_module.jwt, "decode", lambda *a, **k: calls.append(1) or real_decode(*a, **k))
    token = tokens.make(tokens.keys.ec384, sub="cached")
    for _ in range(5):
        assert (await verifier.verify(token)).caller.id == "cached"
    assert len(calls) == 1


async def test_cached_tokens_still_expire(http, fake_identity, tokens) -> None:
    clock = [1_000_000.0]
    jwks = JwksCache(f"{fake_identity.url}/oidc/jwks", http)
    verifier = TokenVerifier(jwks, issuer=tokens.issuer, audience=tokens.audience, wall_clock=lambda: clock[0])
    token = tokens.make(tokens.keys.ec384, iat=int(clock[0]), exp=int(clock[0]) + 60)
    await verifier.verify(token)
    clock[0] += 61
    with pytest.raises(RequestError) as raised:
        await verifier.verify(token)
    assert raised.value.code == "auth.unauthorized"


async def test_cache_is_bounded(http, fake_identity, tokens) -> None:
    jwks = JwksCache(f"{fake_identity.url}/oidc/jwks", http)
    verifier = TokenVerifier(jwks, issuer=tokens.issuer, audience=tokens.audience, cache_size=10)
    for i in range(25):
        await verifier.verify(tokens.make(tokens.keys.ec384, sub=f"u{i}"))
    assert len(verifier._cache) <= 10


async def test_withdrawn_key_invalidates_cached_tokens(http, fake_identity, tokens) -> None:
    clock = [0.0]
    verifier = _verifier(http, fake_identity, tokens, refresh_interval=1.0, max_age=300.0, clock=lambda: clock[0])
    extra = jwk.ECKey.generate_key("P-384", {"kid": "withdrawn"})
    try:
        tokens.publish([*tokens.keys.published, extra])
        token = tokens.make(extra)
        await verifier.verify(token)
        tokens.publish(tokens.keys.published)  # identity drops the key
        clock[0] += 301  # the JWKS is refetched when old...
        await verifier.verify(tokens.make(tokens.keys.ec384))
        with pytest.raises(RequestError) as raised:  # ...and the cached token goes with the key
            await verifier.verify(token)
        assert raised.value.code == "auth.unauthorized"
    finally:
        tokens.publish(tokens.keys.published)


async def test_refresh_is_rate_limited(http, fake_identity, tokens) -> None:
    clock = [0.0]
    verifier = _verifier(http, fake_identity, tokens, refresh_interval=10.0, clock=lambda: clock[0])
    await verifier.verify(tokens.make(tokens.keys.ec384))
    assert verifier.jwks.fetches == 1
    stranger = jwk.ECKey.generate_key("P-384", {"kid": "nobody"})
    for _ in range(3):
        with pytest.raises(RequestError):
            await verifier.verify(tokens.make(stranger, sub="x"))
    assert verifier.jwks.fetches == 1  # within 10 s of the last fetch: no refetch
    clock[0] += 10
    with pytest.raises(RequestError):
        await verifier.verify(tokens.make(stranger, sub="y"))
    assert verifier.jwks.fetches == 2


async def test_management_auth_order(http, fake_identity, tokens) -> None:
    auth = ManagementAuth(_verifier(http, fake_identity, tokens), dev_auth=False)
    token = tokens.make(tokens.keys.ec384, sub="app", client_id="app")
    caller = await auth.authenticate(f"Bearer {token}".encode(), None)
    assert (caller.type, caller.id) == ("application", "app")
    with pytest.raises(RequestError) as raised:
        await auth.authenticate(None, b"dev")
    assert raised.value.code == "auth.authorization_header_missing"
    dev = ManagementAuth(_verifier(http, fake_identity, tokens), dev_auth=True)
    assert (await dev.authenticate(b"Basic x", b"dev")).id == "dev"


async def test_token_without_kid_needs_an_unambiguous_key(http, fake_identity, tokens) -> None:
    token = tokens.make(tokens.keys.ec384, kid=None)
    with pytest.raises(RequestError):  # three published keys: which one?
        await _verifier(http, fake_identity, tokens).verify(token)
    try:
        tokens.publish([tokens.keys.ec384])
        assert (await _verifier(http, fake_identity, tokens).verify(token)).caller.id == "user-1"
    finally:
        tokens.publish(tokens.keys.published)


def test_the_gateway_does_not_start_without_the_internal_key() -> None:
    from tessera_gateway.gateway import Gateway
    from tessera_gateway.settings import GatewaySettings
    from tessera_kit.config import ConfigError

    for key in ["", "too-short"]:
        with pytest.raises(ConfigError, match="TESSERA_INTERNAL_KEY"):
            Gateway(GatewaySettings(internal_key=key))
    assert "internal_key=<redacted>" in repr(GatewaySettings(internal_key="secret"))


async def test_the_gateways_own_calls_are_signed_for_its_upstreams_only(internal_key, fake_identity,
                                                                        fake_rbac) -> None:
    signing = InternalCalls(AssertionSigner(internal_key), [fake_identity.url])
    async with httpx.AsyncClient(timeout=5, auth=signing) as client:
        upstream = (await client.get(f"{fake_identity.url}/anything?x=1")).json()["caller"]
        elsewhere = (await client.get(f"{fake_rbac.url}/anything")).json()
    assert upstream == {"type": "system", "id": None, "tenant": "default"}
    assert elsewhere["caller"] == {"refused": "the request carries no internal assertion"}
    assert not [name for name, _ in elsewhere["headers"] if name.startswith("x-tessera-")]

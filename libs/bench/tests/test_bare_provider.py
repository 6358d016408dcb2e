"""The baseline beside the client-credentials row: panva's oidc-provider 9 (installed with npm
into the bench's cache on first use, then reused) answers the row's very request with an ES384
JWT for the resource, verified here against its own JWKS; and the bench's answer checker
refuses what a misconfigured server would answer, so such a server shows as a wrong answer in
the table and never as a throughput."""

from __future__ import annotations

import base64
import contextlib
import json
import re
import shutil
import time

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from joserfc import jws, jwt
from joserfc.jwk import ECKey, KeySet, OctKey

from tessera_bench import bare_provider
from tessera_bench.scenario import Baseline, BenchContext, Scenario
from tessera_bench.scenarios.oidc import (CLIENT_CREDENTIALS_SCOPE, MANAGEMENT_API, check_client_credentials,
                                          client_credentials_request)
from tessera_bench.token_answer import WrongAnswer, check_token_answer
from tessera_devstack.admin_client import AdminClient

needs_node = pytest.mark.skipif(
    not (shutil.which("node") and shutil.which("npm")),
    reason="node and npm are needed to run panva's oidc-provider (the bench's baseline); not on PATH")

CLIENT = AdminClient.generate()  # the shape of the bench's admin client: 21-char id, 32-char secret


def basic(client_id: str, secret: str) -> str:
    return base64.b64encode(f"{client_id}:{secret}".encode()).decode()


@pytest.fixture(scope="module")
def bare():
    with bare_provider.running(client_id=CLIENT.id, client_secret=CLIENT.secret, resource=MANAGEMENT_API,
                               scope=CLIENT_CREDENTIALS_SCOPE) as running:
        keys = httpx.get(running.jwks_url).json()
        yield running, keys


def send(url: str, request) -> httpx.Response:
    return httpx.request(request.method, url + request.path, headers=request.headers, content=request.body)


@needs_node
def test_the_rows_request_gets_an_es384_jwt_for_the_resource(bare):
    running, keys = bare
    response = send(running.url, client_credentials_request(basic(CLIENT.id, CLIENT.secret)))
    assert response.status_code == 200, response.text
    answer = response.json()
    # Verified here with the harness's JWKS alone, independently of the bench's checker.
    assert [(k["kty"], k["crv"], k["alg"]) for k in keys["keys"]] == [("EC", "P-384", "ES384")]
    token = jwt.decode(answer["access_token"], KeySet.import_key_set(keys), algorithms=["ES384"])
    assert token.header["alg"] == "ES384" and token.header["typ"] == "at+jwt"
    assert token.header["kid"] in {k["kid"] for k in keys["keys"]}
    assert token.claims["aud"] == MANAGEMENT_API
    assert token.claims["exp"] > time.time() and token.claims["client_id"] == CLIENT.id
    assert answer["scope"] == token.claims["scope"] == "all" and answer["token_type"] == "Bearer"
    # The bench's checker agrees.
    assert check_token_answer(response.status_code, response.content, resource=MANAGEMENT_API,
                              scope="all", jwks=keys)["jti"] == token.claims["jti"]


def test_without_node_the_baseline_says_why(monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # a PATH with no node and no npm
    with pytest.raises(bare_provider.Unavailable, match="node is not on PATH"):
        with bare_provider.running(client_id=CLIENT.id, client_secret=CLIENT.secret, resource=MANAGEMENT_API,
                                   scope=CLIENT_CREDENTIALS_SCOPE):
            pass


@needs_node
def test_the_harness_is_installed_once_in_the_cache():
    server = bare_provider.install()
    assert server.parent.parent == bare_provider.cache_root()
    assert bare_provider.install() == server
    installed = json.loads((server.parent / "node_modules" / "oidc-provider" / "package.json").read_text())
    assert installed["version"] == bare_provider.pinned_version()
    assert not (server.parent / "package-lock.json").exists()


def _other_key() -> tuple[ECKey, dict]:
    key = ECKey.import_key(ec.generate_private_key(ec.SECP384R1()))
    key.ensure_kid()
    return key, {"keys": [key.as_dict(private=False, alg="ES384", use="sig")]}


def _signed(key: ECKey, claims: dict, header: dict | None = None) -> bytes:
    token = jwt.encode({"alg": "ES384", "typ": "at+jwt", "kid": key.kid, **(header or {})}, claims, key,
                       algorithms=["ES384"])
    return json.dumps({"access_token": token, "token_type": "Bearer", "scope": "all"}).encode()


def _right_claims(**changes) -> dict:
    claims = {"aud": MANAGEMENT_API, "exp": int(time.time()) + 600, "scope": "all", "sub": "x"}
    return {k: v for k, v in {**claims, **changes}.items() if v is not None}


@needs_node
def test_the_checker_refuses_wrong_answers_of_the_harness(bare):
    running, keys = bare
    right = client_credentials_request(basic(CLIENT.id, CLIENT.secret))
    wrong_secret = client_credentials_request(basic(CLIENT.id, "0" * 32))
    cases = {
        "status 401": send(running.url, wrong_secret),
        "lacks 'all'": send(running.url, type(right)(
            right.method, right.path, right.headers,
            right.body.replace("scope=all", "scope=something-else"))),
        "status 400": send(running.url, type(right)(
            right.method, right.path, right.headers,
            right.body.replace("default.logto.app", "elsewhere.example"))),
    }
    for expected, response in cases.items():
        with pytest.raises(WrongAnswer, match=re.escape(expected)):
            check_token_answer(response.status_code, response.content, resource=MANAGEMENT_API,
                               scope="all", jwks=keys)
    # The harness's right answer, checked against keys that did not sign it.
    good = send(running.url, right)
    with pytest.raises(WrongAnswer, match="signed by the server's JWKS"):
        check_token_answer(200, good.content, resource=MANAGEMENT_API, scope="all", jwks=_other_key()[1])


@pytest.mark.parametrize(("body", "expected"), [
    ("aud", "aud 'https://elsewhere.example/api'"),
    ("exp missing", "exp None"),
    ("exp past", "missing or past"),
    ("typ", "not at+jwt"),
    ("opaque", "not a JWT"),
    ("not json", "not JSON"),
    ("error", "no access_token"),
    ("mac", "no ES384 JWT"),
])
def test_the_checker_refuses_wrong_answers(body, expected):
    key, keys = _other_key()
    bodies = {
        "aud": lambda: _signed(key, _right_claims(aud="https://elsewhere.example/api")),
        "exp missing": lambda: _signed(key, _right_claims(exp=None)),
        "exp past": lambda: _signed(key, _right_claims(exp=int(time.time()) - 5)),
        "typ": lambda: _signed(key, _right_claims(), {"typ": "JWT"}),
        "opaque": lambda: json.dumps({"access_token": "opaque-token-value", "token_type": "Bearer"}).encode(),
        "not json": lambda: b"<html>ok</html>",
        "error": lambda: json.dumps({"error": "invalid_client"}).encode(),
        "mac": lambda: json.dumps({"access_token": jws.serialize_compact(
            {"alg": "HS256", "typ": "at+jwt"}, json.dumps(_right_claims()).encode(), OctKey.generate_key(256),
            algorithms=["HS256"]), "token_type": "Bearer"}).encode(),
    }
    with pytest.raises(WrongAnswer, match=re.escape(expected)):
        check_token_answer(200, bodies[body](), resource=MANAGEMENT_API, scope="all", jwks=keys)
    # And the same key with right claims passes: the cases fail for their reason only.
    check_token_answer(200, _signed(key, _right_claims()), resource=MANAGEMENT_API, scope="all", jwks=keys)



@contextlib.contextmanager
def _harness(secret: str):
    with bare_provider.running(client_id=CLIENT.id, client_secret=secret, resource=MANAGEMENT_API,
                               scope=CLIENT_CREDENTIALS_SCOPE) as running:
        yield running.url, [running.pid]


@needs_node
async def test_a_misconfigured_baseline_is_a_wrong_answer_not_a_throughput():
    """The bench's A/B/A run, with a rightly configured harness standing in for our stack and a
    baseline that refuses the row's client (another secret): it answers 401 fast, and the row
    says so instead of a rate, with no ratio."""
    from tessera_bench.__main__ import measure_beside_baseline
    from tessera_bench.wrk import ensure_wrk

    try:
        ensure_wrk()
    except SystemExit as exc:
        pytest.skip(str(exc))
    misconfigured = Baseline("bare (misconfigured)", lambda ctx: _harness("0" * 32),
                             ratio_of="client credentials", ratio_to="bare")
    scenario = Scenario("client-credentials", None, check=check_client_credentials, baseline=misconfigured)
    with _harness(CLIENT.secret) as (url, pids):
        ctx = BenchContext(url=url, admin_client_id=CLIENT.id, admin_client_secret=CLIENT.secret)
        async with httpx.AsyncClient(timeout=10) as client:
            rows, notes = await measure_beside_baseline(
                client, ctx, scenario, client_credentials_request(basic(CLIENT.id, CLIENT.secret)),
                seconds=1, watched=pids, warmup=1)
    (ours, bare), [note] = rows, notes
    assert ours[0] == "client-credentials" and ours[1].endswith("/s") and ours[4] == "0"
    assert bare[:2] == ("bare (misconfigured)", "wrong answer") and bare[4].startswith("before the run: status 401")
    assert note.startswith("client credentials: no ratio, bare (misconfigured) wrong answer: ")

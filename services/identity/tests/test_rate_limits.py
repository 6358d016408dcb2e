"""identity's rate limits on real PostgreSQL and NATS: sign-in password checks per address and
per address and account (VERIFY_PASSWORD with `client_ip`), token failures per address; 429
with Retry-After, other addresses unaffected, one limit across two instances on one schema."""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter as Tally

import pytest

from tessera_events.contracts.identity import VERIFY_PASSWORD, VerifyPasswordRequest
from tessera_identity.oidc.testing import ADMIN_ID, ADMIN_SECRET, Deployment, start_deployment
from tessera_identity.users import lockout
from tessera_identity.users import rpc as users_rpc
from tessera_kit import rpc
from tessera_kit.errors import RequestError

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

PASSWORD = "right-pass-1"


@pytest.fixture(scope="module")
async def identity(database_url, nats_url, namespace):
    """Default limits (100/10m per address, 20/1h per address and account)."""
    async with start_deployment(database_url, nats_url, namespace, whole_service=True) as dep:
        yield dep


@pytest.fixture(scope="module")
async def tight(database_url, nats_url, namespace):
    """Two instances on one schema, with small limits."""
    env = {"TESSERA_RATE_LIMIT_SIGN_IN_IP": "5/10m", "TESSERA_RATE_LIMIT_TOKEN_FAILURES_IP": "4/10m"}
    async with start_deployment(database_url, nats_url, namespace, env, whole_service=True) as first, \
            start_deployment(database_url, nats_url, namespace, env, whole_service=True, replica_of=first) as second:
        yield first, second


def address() -> str:
    return f"198.51.100.{secrets.randbelow(250) + 1}-{secrets.token_hex(3)}"


async def new_user(dep: Deployment) -> dict:
    name = f"u{secrets.token_hex(5)}"
    phone = "1" + "".join(secrets.choice("0123456789") for _ in range(12))
    async with dep.browser() as http:
        response = await http.post("/api/users", json={
            "username": name, "primaryEmail": f"{name}@example.com", "primaryPhone": phone, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return response.json()


async def sign_in(dep: Deployment, by: str, value: str, password: str, ip: str | None):
    try:
        return await rpc.call(dep.ctx.bus, VERIFY_PASSWORD, VerifyPasswordRequest(
            by=by, value=value, password=password, client_ip=ip, tenant_id="default"), timeout=60)
    except RequestError as error:
        return error


async def test_locking_a_victim_out_takes_more_than_100_requests_from_one_address(identity):
    user = await new_user(identity)
    guesses = [("username", user["username"]), ("email", user["primaryEmail"].upper()), ("phone", user["primaryPhone"])]
    attacker = address()
    results = await asyncio.gather(*[sign_in(identity, *guesses[i % 3], f"wrong-{i}", attacker) for i in range(150)])
    tally = Tally(r.code for r in results)
    # 20 checks per address and account, however the identifiers are spread (one more only if
    # this took over 3 minutes, the limit's refill); every other request refused before any hash.
    assert tally["session.invalid_credentials"] in (20, 21), tally
    assert tally["request.too_many_requests"] == 150 - tally["session.invalid_credentials"]
    assert set(tally) == {"session.invalid_credentials", "request.too_many_requests"}
    refused = next(r for r in results if r.code == "request.too_many_requests")
    assert refused.status == 429 and 1 <= refused.data["retryAfter"] <= 180
    assert refused.headers == {"retry-after": str(refused.data["retryAfter"])}
    # The lockout saw only the checked ones: far from its 100.
    failures = await identity.ctx.pool.fetchval(
        "SELECT failures FROM password_attempts WHERE identifier_hash = $1",
        lockout.identifier_key("id", user["id"]))
    assert failures == tally["session.invalid_credentials"]
    # A refused request took no lockout slot (the slot is taken in the limits' statement, only
    # when they admit the request): none is left in flight.
    assert await identity.ctx.pool.fetchval(
        "SELECT in_flight FROM password_attempts WHERE identifier_hash = $1",
        lockout.identifier_key("id", user["id"])) == 0
    # The victim, from their own address, signs in; the attacker's address stays refused even
    # with the right password.
    assert (await sign_in(identity, "email", user["primaryEmail"], PASSWORD, address())).id == user["id"]
    assert (await sign_in(identity, "username", user["username"], PASSWORD, attacker)).status == 429
    # 150 requests in a few minutes are over the address's own 100/10m: any account is refused.
    other = await new_user(identity)
    assert (await sign_in(identity, "username", other["username"], PASSWORD, attacker)).status == 429


async def test_from_many_addresses_the_lockout_still_gives_exactly_100_checks(identity):
    """Parallel wrong guesses from addresses each under its own limits: the slots taken with
    the limits' count never let a 101st guess be checked, and the account is locked."""
    user = await new_user(identity)
    addresses = [address() for _ in range(8)]
    results = await asyncio.gather(*[sign_in(identity, "username", user["username"], f"wrong-{i}", addresses[i % 8])
                                     for i in range(130)])
    tally = Tally(r.code for r in results)
    assert tally["session.invalid_credentials"] == 100, tally
    assert tally["session.verification_blocked_too_many_attempts"] + tally["request.too_many_requests"] == 30
    row = await identity.ctx.pool.fetchrow(
        "SELECT failures, in_flight, locked_until FROM password_attempts WHERE identifier_hash = $1",
        lockout.identifier_key("id", user["id"]))
    assert (row["failures"], row["in_flight"]) == (100, 0) and row["locked_until"] is not None


async def test_identifiers_no_account_has_are_limited_per_identifier(identity):
    attacker, ghost = address(), f"ghost{secrets.token_hex(4)}"
    results = [await sign_in(identity, "username", ghost, "whatever-1", attacker) for _ in range(21)]
    assert [r.code for r in results] == ["session.invalid_credentials"] * 20 + ["request.too_many_requests"]
    # Another identifier (or account) from that address has its own allowance.
    other = await sign_in(identity, "username", ghost + "x", "whatever-1", attacker)
    assert other.code == "session.invalid_credentials"
    user = await new_user(identity)
    assert (await sign_in(identity, "username", user["username"], PASSWORD, attacker)).id == user["id"]


async def test_without_an_address_only_the_lockout_applies(identity):
    """Callers that are not a client's sign-in (no `client_ip`) are not rate limited here."""
    user = await new_user(identity)
    results = [await sign_in(identity, "username", user["username"], f"wrong-{i}", None) for i in range(25)]
    assert {r.code for r in results} == {"session.invalid_credentials"}


async def test_the_address_limit_holds_across_accounts_and_instances(tight):
    first, second = tight
    users = [await new_user(first) for _ in range(6)]
    attacker = address()
    request = lambda user, ip: VerifyPasswordRequest(by="username", value=user["username"], password="wrong-1",
                                                     client_ip=ip, tenant_id="default")
    answers = []
    for n, user in enumerate(users):
        instance = (first, second)[n % 2]  # each instance answers in its own process state
        try:
            await users_rpc.verify_password(instance.ctx, request(user, attacker))
        except RequestError as error:
            answers.append(error.code)
    assert answers == ["session.invalid_credentials"] * 5 + ["request.too_many_requests"]
    with pytest.raises(RequestError) as caught:
        await users_rpc.verify_password(first.ctx, request(users[0], attacker))
    assert caught.value.status == 429
    with pytest.raises(RequestError) as caught:  # another address is unaffected
        await users_rpc.verify_password(second.ctx, request(users[0], address()))
    assert caught.value.code == "session.invalid_credentials"


async def token(dep: Deployment, secret: str, ip: str):
    async with dep.browser() as http:
        return await http.post("/oidc/token", data={"grant_type": "client_credentials"},
                               auth=(ADMIN_ID, secret), headers={"x-tessera-client-ip": ip, "x-forwarded-for": "6.6.6.6"})


async def test_token_failures_are_limited_per_address_across_instances(tight):
    first, second = tight
    attacker = address()
    answers = [await token((first, second)[n % 2], "wrong-secret", attacker) for n in range(5)]
    assert [a.status_code for a in answers] == [401, 401, 401, 401, 429]
    refused = answers[-1]
    assert refused.json() == {"error": "invalid_request",
                              "error_description": f"too many failed token requests; retry after "
                                                   f"{refused.headers['retry-after']} seconds"}
    assert 1 <= int(refused.headers["retry-after"]) <= 150 and refused.headers["cache-control"] == "no-store"
    # The fifth failure was first's; second has seen nothing refused yet: its next failure
    # learns the block from the database ...
    assert (await token(second, "wrong-secret", attacker)).status_code == 429
    # ... and then both refuse even a right secret from that address, before any work.
    for instance in (first, second):
        assert (await token(instance, ADMIN_SECRET, attacker)).status_code == 429
    # The first hop of X-Forwarded-For is the client's to choose, not the address counted.
    ok = await token(second, ADMIN_SECRET, address())
    assert ok.status_code == 200, ok.text


async def test_a_successful_token_request_writes_no_rate_limit_state(tight):
    first, _ = tight
    ip = address()
    before = await first.ctx.pool.fetchval("SELECT count(*) FROM rate_limits")
    for _ in range(3):
        assert (await token(first, ADMIN_SECRET, ip)).status_code == 200
    assert await first.ctx.pool.fetchval("SELECT count(*) FROM rate_limits") == before
    assert (await token(first, "wrong-secret", ip)).status_code == 401
    assert await first.ctx.pool.fetchval("SELECT count(*) FROM rate_limits") == before + 1

"""Rate limits on real PostgreSQL: shared by every limiter on the schema (every replica),
atomic under concurrency, 429 in Logto's format with Retry-After."""

import asyncio

import pytest
from litestar import Litestar, post
from litestar.testing import AsyncTestClient

from tessera_kit.http import EXCEPTION_HANDLERS
from tessera_kit.ratelimit import Limit, RateLimiter, TooManyRequests, client_ip


def test_limits_parse_from_settings():
    assert Limit.parse("a", "20/1h") == Limit("a", 20, 3600.0)
    assert Limit.parse("a", "100/10m") == Limit("a", 100, 600.0)
    assert Limit.parse("a", "1/60s") == Limit("a", 1, 60.0)
    assert Limit.parse("a", "5/30") == Limit("a", 5, 30.0)
    assert not Limit.parse("a", "off").enabled
    for bad in ("20", "x/1h", "0/1h", "20/0m", "20/1y"):
        with pytest.raises(ValueError):
            Limit.parse("a", bad)


def test_client_ip_is_the_address_the_gateway_signed_never_a_forwarded_for():
    # X-Forwarded-For is whatever the sender wrote: believing it let each request name a new
    # address past the per-address limits.
    assert client_ip({"x-forwarded-for": "6.6.6.6, 10.0.0.7"}, "10.0.0.2") == "10.0.0.2"
    assert client_ip({"x-forwarded-for": "10.0.0.7"}, "10.0.0.2") == "10.0.0.2"
    assert client_ip({}, "10.0.0.2") == "10.0.0.2"
    # Behind a trusted proxy the gateway names the client itself (a client cannot send this
    # header: the gateway drops every x-tessera-* it receives).
    assert client_ip({"x-tessera-client-ip": "203.0.113.9", "x-forwarded-for": "203.0.113.9, 10.0.0.7"},
                     "10.0.0.2") == "203.0.113.9"


async def test_two_replicas_share_one_limit_and_parallel_hits_never_exceed_it(pool):
    limit = Limit.parse("sign_in_ip", "10/1h")
    replicas = [RateLimiter(pool), RateLimiter(pool)]

    async def one(n: int) -> bool:
        try:
            await replicas[n % 2].hit((limit, "203.0.113.9"))
            return True
        except TooManyRequests:
            return False

    allowed = await asyncio.gather(*(one(n) for n in range(25)))
    assert sum(allowed) == 10
    with pytest.raises(TooManyRequests) as refused:
        await replicas[0].hit((limit, "203.0.113.9"))
    # GCRA: one more request is allowed after period/count (6 minutes here).
    assert 300 < refused.value.retry_after <= 360
    assert refused.value.headers == {"retry-after": str(refused.value.retry_after)}
    # Another address, and a disabled limit, are not affected.
    await replicas[1].hit((limit, "198.51.100.1"), (Limit.parse("x", "off"), "203.0.113.9"))
    # Nothing identifying is stored.
    keys = [r["key"] for r in await pool.fetch("SELECT key FROM rate_limits")]
    assert keys and not any("203.0.113.9" in k for k in keys)


async def test_any_exhausted_limit_refuses_and_the_refusal_is_remembered_locally(pool):
    loose, tight = Limit.parse("ip", "100/1h"), Limit.parse("ip_identifier", "2/1h")
    limiter = RateLimiter(pool)
    await limiter.hit((loose, "192.0.2.1"), (tight, "192.0.2.1|alice"))
    await limiter.hit((loose, "192.0.2.1"), (tight, "192.0.2.1|alice"))
    with pytest.raises(TooManyRequests):
        await limiter.hit((loose, "192.0.2.1"), (tight, "192.0.2.1|alice"))
    await limiter.hit((loose, "192.0.2.1"), (tight, "192.0.2.1|bob"))
    with pytest.raises(TooManyRequests):
        limiter.known_blocked((tight, "192.0.2.1|alice"))
    limiter.known_blocked((tight, "192.0.2.1|bob"))  # no database: only what this process saw
    assert not RateLimiter(pool)._blocked


async def test_429_in_logtos_error_format_with_retry_after():
    @post("/limited", sync_to_thread=False)
    def limited() -> None:
        raise TooManyRequests(41.2)

    app = Litestar([limited], exception_handlers=EXCEPTION_HANDLERS)
    async with AsyncTestClient(app) as client:
        response = await client.post("/limited")
    assert response.status_code == 429
    assert response.headers["retry-after"] == "42"
    assert response.json() == {"code": "request.too_many_requests", "data": {"retryAfter": 42},
                               "message": "Too many requests. Please try again in 42 seconds."}


async def test_a_request_given_back_no_longer_counts(pool):
    cooldown = Limit.parse("cooldown", "1/60s")
    limiter = RateLimiter(pool)
    await limiter.hit((cooldown, "a@example.com"))
    with pytest.raises(TooManyRequests):
        await limiter.hit((cooldown, "a@example.com"))
    await limiter.give_back((cooldown, "a@example.com"))
    await limiter.hit((cooldown, "a@example.com"))  # allowed again, and counted again
    with pytest.raises(TooManyRequests):
        await limiter.hit((cooldown, "a@example.com"))


async def test_a_statement_run_with_the_hit_runs_only_when_every_limit_admits(pool):
    """hit(then=...): the work the limits admit in the same statement as the count; refused,
    it does not run (and the 429 is raised); with every limit off it still runs."""
    from tessera_kit.ratelimit import ADMITTED

    await pool.execute("CREATE TABLE IF NOT EXISTS admitted_work (n int)")
    await pool.execute("TRUNCATE admitted_work")
    work = (f"INSERT INTO admitted_work (n) SELECT $4::int WHERE {ADMITTED} RETURNING n", (7,))
    limiter = RateLimiter(pool)
    limit = Limit.parse("then_test", "2/1h")
    assert await limiter.hit((limit, "1.2.3.4"), then=work) == 7
    assert await limiter.hit((limit, "1.2.3.4"), then=work) == 7
    with pytest.raises(TooManyRequests):
        await limiter.hit((limit, "1.2.3.4"), then=work)
    assert await pool.fetchval("SELECT count(*) FROM admitted_work") == 2  # not the refused one
    assert await limiter.hit((Limit.parse("off_test", "off"), "1.2.3.4"), then=work) == 7
    assert await pool.fetchval("SELECT count(*) FROM admitted_work") == 3
    with pytest.raises(ValueError):  # a statement that does not require the admission
        await limiter.hit((limit, "5.6.7.8"), then=("INSERT INTO admitted_work (n) VALUES ($4) RETURNING n", (1,)))

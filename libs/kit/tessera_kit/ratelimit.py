"""Rate limits that hold across replicas: state in the service's own PostgreSQL schema.

A `Limit` is "N per period" (`"20/1h"`, `"100/10m"`, `"1/60s"`, or `"off"`), read from a
setting. `RateLimiter.hit((limit, value), ...)` counts one request against each (limit,
value) pair in ONE atomic statement (an upsert per key, GCRA: a burst of N, then one per
period/N) and raises `TooManyRequests` — 429 in Logto's error format with `Retry-After` —
when any of them is exhausted; `give_back` returns a request whose work never happened. Keys are SHA-256 digests of the limit's name and the value,
so no address, e-mail or phone number is stored.

`known_blocked` answers from this process's memory only (no database round trip) whether a
key was refused recently: hot paths that count only failures (the token endpoint) check it
before the work and `hit` after a failure. Another replica learns of the block at its own
next failure from that key.

The client's address comes from the gateway (`client_ip`): `X-Tessera-Client-IP`, which the
request's assertion covers (`tessera_kit.assertion`), or the last `X-Forwarded-For` hop, the one
it appended; never a hop the client wrote.
"""

from __future__ import annotations

import functools
import hashlib
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Mapping

import asyncpg

from tessera_kit.errors import RequestError
from tessera_kit.logging import get_logger

log = get_logger(__name__)

_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_SPEC = re.compile(r"(\d{1,9})/(\d{0,9})([smhd]?)")
PURGE_EVERY_SECONDS = 300.0


@dataclass(frozen=True)
class Limit:
    name: str
    count: int  # 0: no limit
    period: float  # seconds

    @classmethod
    def parse(cls, name: str, spec: str) -> "Limit":
        """`"<count>/<period>"`, the period in seconds or with a unit (`10m`, `1h`); `off`."""
        spec = spec.strip().lower()[:32]
        if spec in ("off", "0", "none", ""):
            return cls(name, 0, 0.0)
        match = _SPEC.fullmatch(spec)
        if match is None:
            raise ValueError(f"rate limit {name}: {spec!r} is not '<count>/<period>' (e.g. 20/1h) or 'off'")
        period = int(match[2] or 1) * _UNITS[match[3]]
        if int(match[1]) < 1 or period <= 0:
            raise ValueError(f"rate limit {name}: count and period must be positive")
        return cls(name, int(match[1]), float(period))

    @property
    def enabled(self) -> bool:
        return self.count > 0

    def key(self, value: str) -> str:
        return hashlib.sha256(f"{self.name}\x00{value}".encode()).hexdigest()[:40]


class TooManyRequests(RequestError):
    def __init__(self, retry_after: float) -> None:
        seconds = max(1, math.ceil(retry_after))
        super().__init__("request.too_many_requests", 429, data={"retryAfter": seconds})
        self.message = f"Too many requests. Please try again in {seconds} seconds."
        self.headers = {"retry-after": str(seconds)}
        self.retry_after = seconds


_HIT = """
INSERT INTO rate_limits AS r (key, tat, seen_at, step, period, allowed)
SELECT k.key, t.n + make_interval(secs => k.step), t.n, make_interval(secs => k.step),
       make_interval(secs => k.period), true
FROM unnest($1::text[], $2::float8[], $3::float8[]) AS k(key, step, period)
CROSS JOIN (SELECT clock_timestamp() AS n) AS t
ON CONFLICT (key) DO UPDATE SET
    allowed = greatest(r.tat, EXCLUDED.seen_at) + EXCLUDED.step - EXCLUDED.seen_at <= EXCLUDED.period,
    tat = CASE WHEN greatest(r.tat, EXCLUDED.seen_at) + EXCLUDED.step - EXCLUDED.seen_at <= EXCLUDED.period
               THEN greatest(r.tat, EXCLUDED.seen_at) + EXCLUDED.step ELSE r.tat END,
    seen_at = EXCLUDED.seen_at, step = EXCLUDED.step, period = EXCLUDED.period
RETURNING key, allowed,
    extract(epoch FROM greatest(r.tat, r.seen_at) + r.step - r.seen_at - r.period)::float8 AS retry_after
"""


# What the WHERE clause of a statement run with a hit (RateLimiter.hit's `then`) must require:
# that no limit refused the request.
ADMITTED = "NOT EXISTS (SELECT FROM hit WHERE NOT allowed)"


@functools.cache  # a handful of statements, built once each (asyncpg caches by text)
def _hit_then(then_sql: str) -> str:
    """_HIT and `then_sql` in one statement; `then_sql` must require ADMITTED."""
    if ADMITTED not in then_sql:
        raise ValueError("a statement run with a rate limit hit must require ADMITTED in its WHERE clause")
    return (
        f"WITH hit AS ({_HIT}), then_ AS ({then_sql})"
        " SELECT (SELECT array_agg(key) FROM hit) AS keys, (SELECT array_agg(allowed) FROM hit) AS allowed,"
        " (SELECT array_agg(retry_after) FROM hit) AS retry_after, (SELECT * FROM then_ LIMIT 1) AS then"
    )


class RateLimiter:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self.pool = pool
        self._blocked: dict[str, float] = {}  # key -> monotonic time the block ends (this process)
        self._last_purge = time.monotonic()

    async def hit(self, *checks: tuple[Limit, str | None], then: tuple[str, tuple] | None = None) -> Any:
        """Count one request against every (limit, value); raise 429 if any is exhausted.
        Disabled limits and missing values (an unknown address) are skipped.

        `then`: (SQL, arguments) of one data-modifying statement with a RETURNING clause, its
        parameters numbered from $4 and its WHERE clause requiring `ADMITTED`, run in the SAME
        statement as the count, so only when every limit had room (the work the limits
        admit, e.g. taking a lockout slot: one round trip for both). Answers the first column
        of its first row (None when it returned none, or did not run)."""
        keyed: dict[str, Limit] = {}
        for limit, value in checks:
            if limit.enabled and value:
                keyed[limit.key(value)] = limit
        if not keyed and then is None:
            return None
        keys = list(keyed)
        arguments = (keys, [keyed[k].period / keyed[k].count for k in keys], [keyed[k].period for k in keys])
        if then is None:
            rows = await self.pool.fetch(_HIT, *arguments)
            answer = None
        else:
            row = await self.pool.fetchrow(_hit_then(then[0]), *arguments, *then[1])
            rows = [{"key": k, "allowed": a, "retry_after": r}
                    for k, a, r in zip(row["keys"] or [], row["allowed"] or [], row["retry_after"] or [])]
            answer = row["then"]
        if keyed:
            await self._purge_now_and_then()
        refused = [r["retry_after"] for r in rows if not r["allowed"]]
        now = time.monotonic()
        for row in rows:
            if not row["allowed"]:
                self._blocked[row["key"]] = now + row["retry_after"]
        if refused:
            raise TooManyRequests(max(refused))
        return answer

    async def give_back(self, *checks: tuple[Limit, str | None]) -> None:
        """Return one request counted by `hit` (the work it allowed never happened, e.g. a
        message the provider refused to send): each key's arrival time moves back one step."""
        keys = [limit.key(value) for limit, value in checks if limit.enabled and value]
        if keys:
            await self.pool.execute("UPDATE rate_limits SET tat = tat - step WHERE key = ANY($1::text[])", keys)
        for key in keys:
            self._blocked.pop(key, None)

    def known_blocked(self, *checks: tuple[Limit, str | None]) -> None:
        """Raise 429 if this process saw one of these keys refused and the block still runs."""
        if not self._blocked:  # the usual case: nothing to hash, nothing to look up
            return
        now = time.monotonic()
        for limit, value in checks:
            if not (limit.enabled and value):
                continue
            until = self._blocked.get(limit.key(value))
            if until is not None:
                if until > now:
                    raise TooManyRequests(until - now)
                del self._blocked[limit.key(value)]

    async def _purge_now_and_then(self) -> None:
        now = time.monotonic()
        if now - self._last_purge < PURGE_EVERY_SECONDS:
            return
        self._last_purge = now
        self._blocked = {k: until for k, until in self._blocked.items() if until > now}
        try:
            await self.pool.execute("DELETE FROM rate_limits WHERE tat < clock_timestamp()")
        except Exception as exc:  # the next round will do
            log.warning("rate limit purge failed", error=str(exc))


def client_ip(headers: Mapping[str, str], peer: str | None = None) -> str | None:
    """The caller's address: `X-Tessera-Client-IP`, which the gateway sets (its peer, or behind
    a trusted proxy, `TESSERA_TRUST_FORWARDED`, the client that proxy saw), never takes from
    a client, and signs into the request's assertion (the kit's middleware refuses it changed);
    without it, the connecting peer. `X-Forwarded-For` is never believed here: whoever sends
    it chooses it, and a new address per request would slip past every per-address limit."""
    stated = headers.get("x-tessera-client-ip")
    if stated and stated.strip():
        return stated.strip()[:64]
    return peer

"""identity's rate limits (tessera_kit.ratelimit), shared by every replica through its schema.

Sign-in password checks (the VERIFY_PASSWORD rpc, when the caller names the client's address):
- per address, `TESSERA_RATE_LIMIT_SIGN_IN_IP` (default 100/10m), whatever the account;
- per address and account, `TESSERA_RATE_LIMIT_SIGN_IN_IP_ACCOUNT` (default 20/1h), keyed like
  the lockout: the account, whichever of its identifiers is given, or the identifier itself when
  no account has it. A burst of 20, then one every 3 minutes: at most about 40 checks an hour
  from one address, so locking an account (100 failures within an hour) takes several
  addresses, and an attacker's refused requests never reach the lockout counter.
Both are counted before the hash is checked, in one statement.

Token requests: failures per address, `TESSERA_RATE_LIMIT_TOKEN_FAILURES_IP` (default 100/10m).
A successful request costs nothing: the endpoint asks this process's memory (`known_blocked`)
before the work and counts (`hit`) only after a failure.

Each limit is `<count>/<period>` (`20/1h`, `100/10m`, `5/30s`) or `off`.
"""

from __future__ import annotations

from dataclasses import dataclass

import msgspec

from tessera_kit.app import ServiceContext
from tessera_kit.config import env_name, load_settings
from tessera_kit.ratelimit import Limit, RateLimiter

EXTRAS_KEY = "identity.rate_limits"


class RateLimitSettings(msgspec.Struct, frozen=True, kw_only=True, rename=env_name):
    rate_limit_sign_in_ip: str = "100/10m"
    rate_limit_sign_in_ip_account: str = "20/1h"
    rate_limit_token_failures_ip: str = "100/10m"


@dataclass(frozen=True)
class RateLimits:
    limiter: RateLimiter
    sign_in_ip: Limit
    sign_in_ip_account: Limit
    token_failures_ip: Limit

    @classmethod
    def from_settings(cls, limiter: RateLimiter, settings: RateLimitSettings) -> "RateLimits":
        return cls(
            limiter,
            Limit.parse("sign_in_ip", settings.rate_limit_sign_in_ip),
            Limit.parse("sign_in_ip_account", settings.rate_limit_sign_in_ip_account),
            Limit.parse("token_failures_ip", settings.rate_limit_token_failures_ip),
        )

    async def count_sign_in(self, ip: str, lockout_key: str, *, then: tuple[str, tuple] | None = None) -> object:
        """One password check from `ip` against the account (or unknown identifier) the
        lockout counts under `lockout_key`; 429 once either limit is spent. `then`: a
        statement run with the count when admitted (RateLimiter.hit), whose answer this is."""
        return await self.limiter.hit((self.sign_in_ip, ip), (self.sign_in_ip_account, f"{ip}\x00{lockout_key}"),
                                      then=then)

    def token_refused(self, ip: str | None) -> None:
        """429 if this process saw `ip` exceed its token failures (no database round trip)."""
        self.limiter.known_blocked((self.token_failures_ip, ip))

    async def count_token_failure(self, ip: str | None) -> None:
        await self.limiter.hit((self.token_failures_ip, ip))


async def start(ctx: ServiceContext) -> None:
    """Read the limits once at start-up (a bad setting stops the service here)."""
    rate_limits(ctx)


def rate_limits(ctx: ServiceContext) -> RateLimits:
    limits = ctx.extras.get(EXTRAS_KEY)
    if limits is None:  # before start-up has run (rpc is served first)
        limits = RateLimits.from_settings(RateLimiter(ctx.pool), load_settings(RateLimitSettings))
        ctx.extras[EXTRAS_KEY] = limits
    return limits

"""Several replicas of one service behind one name: round-robin among those not marked down,
and a second replica when the first gave no answer and sending again cannot do harm.

A replica is marked down for `down_seconds` when the gateway gets no connection to it (refused,
unreachable, connect timeout, every connection busy); while down it is tried only after every
other replica has failed too. The request goes on to the next replica when
- no connection was made: nothing was sent, so any request may go elsewhere; or
- the request may be sent twice (GET, HEAD, OPTIONS with its whole body in hand, the proxy's
  `retry_on_stale`) and the replica closed or garbled the exchange before an answer's head.
A request that may have changed something (POST, PUT, PATCH, DELETE reaching the service) is
never sent again: its client gets the 502/503 and decides. A timeout is not retried either
(the client would wait twice as long for a service that is slow, not gone).

In Kubernetes each service URL is a Service that balances by itself: one URL, no ReplicaSet
(the gateway uses the UpstreamPool directly). Several URLs in one setting
(`TESSERA_IDENTITY_URL=http://10.0.0.1:3101,http://10.0.0.2:3101`) are for machines without
such a balancer, and for the replica test.
"""

from __future__ import annotations

import time
from typing import AsyncIterator

from tessera_kit import metrics
from tessera_kit.logging import get_logger
from tessera_gateway.upstream import (
    Headers,
    UpstreamError,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamUnavailable,
)

log = get_logger(__name__)


class ReplicaSet:
    """Duck-types `UpstreamPool` for the proxy: `name`, `host_header`, `request()`, `close()`."""

    def __init__(self, name: str, pools: list[UpstreamPool], *, down_seconds: float = 2.0):
        if not pools:
            raise ValueError(f"no replica for the {name} service")
        self.name = name
        self.replicas = pools
        self.host_header = pools[0].host_header  # replaced per replica in request()
        self.down_seconds = down_seconds
        self._down_until = [0.0] * len(pools)
        self._next = 0

    def order(self) -> list[int]:
        """Replica indexes to try, in order: the healthy ones from the round-robin cursor on,
        then those marked down, the one back soonest first."""
        count = len(self.replicas)
        start = self._next
        self._next = (start + 1) % count
        now = time.monotonic()
        rotation = [(start + i) % count for i in range(count)]
        healthy = [i for i in rotation if self._down_until[i] <= now]
        down = sorted((i for i in rotation if self._down_until[i] > now), key=self._down_until.__getitem__)
        return healthy + down

    def mark_down(self, index: int, error: UpstreamError) -> None:
        if self._down_until[index] <= time.monotonic():
            log.warning("upstream replica marked down", upstream=self.name,
                        replica=self.replicas[index].base_url, seconds=self.down_seconds, error=str(error))
        self._down_until[index] = time.monotonic() + self.down_seconds

    def is_down(self, index: int) -> bool:
        return self._down_until[index] > time.monotonic()

    async def request(self, method: bytes, target: bytes, headers: Headers,
                      body: bytes | AsyncIterator[bytes], *, length: int | None = None,
                      retry_on_stale: bool = False) -> UpstreamResponse:
        resendable = retry_on_stale  # the proxy's word: idempotent, and the whole body in hand
        error: UpstreamError | None = None
        for index in self.order():
            pool = self.replicas[index]
            try:
                return await pool.request(method, target, _with_host(headers, pool.host_header), body,
                                          length=length, retry_on_stale=retry_on_stale)
            except UpstreamUnavailable as failed:  # no connection: nothing went out
                self.mark_down(index, failed)
                error = failed
            except UpstreamProtocolError as failed:  # it went out; no answer came back
                if not resendable:
                    raise
                error = failed
            metrics.UPSTREAM_REPLICA_FAILURES.labels(self.name, type(error).__name__).inc()
        assert error is not None
        raise error

    async def close(self) -> None:
        for pool in self.replicas:
            await pool.close()


def _with_host(headers: Headers, host: bytes) -> Headers:
    """The chosen replica's authority in Host (the proxy put in the first replica's)."""
    return [(b"host", host) if name == b"host" else (name, value) for name, value in headers]


def upstream_for(name: str, urls: list[str], *, down_seconds: float = 2.0,
                 **pool_options: float) -> UpstreamPool | ReplicaSet:
    """One URL: its pool, as before. Several: a ReplicaSet over a pool each."""
    pools = [UpstreamPool(name, url, **pool_options) for url in urls]
    return pools[0] if len(pools) == 1 else ReplicaSet(name, pools, down_seconds=down_seconds)

"""The service context for code that does not receive it from Litestar (rpc handlers).

The kit starts serving rpc before it runs the start-up hooks, so a handler may be called
before `bind` has run; it then waits for it. One `Runtime` per ServiceSpec, so several
identity instances in one process (tests) never share a context.
"""

from __future__ import annotations

import asyncio

from tessera_kit.app import ServiceContext

BIND_TIMEOUT_SECONDS = 30.0


class Runtime:
    def __init__(self) -> None:
        self._ctx: ServiceContext | None = None
        self._bound: asyncio.Event | None = None

    def _event(self) -> asyncio.Event:
        if self._bound is None:
            self._bound = asyncio.Event()
        return self._bound

    async def bind(self, ctx: ServiceContext) -> None:
        """The first start-up hook."""
        self._ctx = ctx
        self._event().set()

    async def ctx(self) -> ServiceContext:
        if self._ctx is None:
            await asyncio.wait_for(self._event().wait(), BIND_TIMEOUT_SECONDS)
        assert self._ctx is not None
        return self._ctx

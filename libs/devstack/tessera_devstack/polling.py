"""Waiting in tests for something another process does (a relay publishing, a consumer acking):
poll a condition, never sleep a guessed time."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import Any


async def until(check: Callable[[], Any | Awaitable[Any]], what: str, *, tries: int = 400,
                interval: float = 0.025) -> Any:
    """The first truthy result of `check` (plain or async), polled every `interval` seconds;
    AssertionError naming `what` after `tries` polls."""
    for _ in range(tries):
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(interval)
    raise AssertionError(f"never happened: {what}")

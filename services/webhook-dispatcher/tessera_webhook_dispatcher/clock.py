"""Time as the dispatcher sees it: injectable, so tests move it instead of waiting hours."""

from __future__ import annotations

import datetime as dt


class Clock:
    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.timezone.utc)


class ManualClock(Clock):
    """Stands still until moved (tests)."""

    def __init__(self) -> None:
        # From the real time (aware, UTC), not one a test picks: a naive one would break every
        # comparison with the database's timestamps.
        self._now = super().now()

    def now(self) -> dt.datetime:
        return self._now

    def advance(self, seconds: float) -> dt.datetime:
        self._now += dt.timedelta(seconds=seconds)
        return self._now

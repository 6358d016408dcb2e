"""Instants as events and Logto's API carry them: whole milliseconds since 1970, UTC."""

from __future__ import annotations

import datetime as dt

# 9999-12-31T23:59:59.999Z, the last instant a datetime holds: bounds for input in milliseconds
# (past it, `from_ms` raises and the database would refuse; say 400 first).
LATEST_MS = 253_402_300_799_999


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)


def from_ms(ms: int | float) -> dt.datetime:
    # Not fromtimestamp(ms / 1000): the float division loses microseconds far from 1970 (the
    # year-9999 bound came back as .998993 s).
    return _EPOCH + dt.timedelta(milliseconds=ms)

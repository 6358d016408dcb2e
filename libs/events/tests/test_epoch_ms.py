"""Milliseconds since 1970 and their upper bound, written once for every service."""

import datetime as dt

import pytest

from tessera_events.cloudevents import rfc3339
from tessera_events.epoch_ms import LATEST_MS, from_ms


def test_the_bound_is_the_last_millisecond_a_datetime_holds():
    assert from_ms(LATEST_MS) == dt.datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=dt.timezone.utc)
    with pytest.raises((ValueError, OverflowError)):
        from_ms(LATEST_MS + 1)


def test_from_ms_is_utc_and_keeps_the_milliseconds():
    assert from_ms(0) == dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    assert from_ms(1_700_000_000_123).isoformat() == "2023-11-14T22:13:20.123000+00:00"
    assert rfc3339(1_700_000_000_123) == "2023-11-14T22:13:20.123Z"

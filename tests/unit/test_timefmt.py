"""The one renderer of stored epoch-ms timestamps: exact for every valid time,
never an exception for anything a store might hold."""

from __future__ import annotations

import logging
import math

import pytest

from tastebud import timefmt
from tastebud.timefmt import MISSING, human_time, iso_or_none

YEAR_9999_MINUS_12H = 253402300799000 + 43_200_000  # "9999-12-31T23:59:59-12:00"
YEAR_1_PLUS_14H = -62135596800000 - 50_400_000  # "0001-01-01T00:00:00+14:00": before year 1 in UTC


def test_valid_times_render_exactly():
    assert iso_or_none(1_709_294_400_000) == "2024-03-01T12:00:00Z"
    assert iso_or_none(1_079_337_347_472) == "2004-03-15T07:55:47.472000Z"  # as tastebud.profiles.events.iso writes it
    assert iso_or_none(0) == "1970-01-01T00:00:00Z"
    assert iso_or_none(timefmt.MAX_MS) == "9999-12-31T23:59:59.999000Z"
    assert human_time(1_709_294_400_000) == "2024-03-01 12:00 UTC"
    assert human_time(1_709_294_400_000, None) == "2024-03-01 12:00 UTC"


@pytest.mark.parametrize("ms", [
    YEAR_9999_MINUS_12H, 253402300799000 + 10**12, 10**18, 10**30, timefmt.MAX_MS + 1,
    -1, -62135596800000, YEAR_1_PLUS_14H, -(10**30),
    math.inf, -math.inf, math.nan, 1e300, "yesterday", b"\x00", True, [1],
])
def test_unrenderable_values_are_unknown_with_a_warning_never_an_error(ms, caplog):
    timefmt._WARNED.clear()
    with caplog.at_level(logging.WARNING, logger="tastebud.timefmt"):
        assert iso_or_none(ms) is None
        assert human_time(ms) == MISSING
        assert human_time(ms, None) is None
    assert [r.levelname for r in caplog.records] == ["WARNING"]  # once per value, not per call
    assert "tastebud doctor" in caplog.records[0].getMessage()


def test_absent_is_unknown_without_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="tastebud.timefmt"):
        assert iso_or_none(None) is None and human_time(None) == MISSING
    assert not caplog.records

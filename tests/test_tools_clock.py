"""tools.clock: current time and conversions, with a frozen clock so results are exact."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agentkit._exceptions import ToolError
from agentkit.tools.clock import convert_time, current_time, set_clock, use_clock

FROZEN = datetime(2025, 7, 14, 10, 30, 0, tzinfo=UTC)  # a Monday, summer time in Europe


@pytest.fixture(autouse=True)
def frozen_clock() -> object:
    with use_clock(FROZEN):
        yield


def test_current_time_utc_default() -> None:
    now = current_time()
    assert now["iso"] == "2025-07-14T10:30:00+00:00"
    assert now["weekday"] == "Monday"
    assert now["utc_offset"] == "+00:00"
    assert now["timezone"] == "UTC"


def test_current_time_in_zone_with_dst() -> None:
    paris = current_time("Europe/Paris")
    assert paris["time"] == "12:30:00"
    assert paris["utc_offset"] == "+02:00"
    assert paris["abbreviation"] == "CEST"
    assert paris["is_dst"] is True
    kolkata = current_time("Asia/Kolkata")
    assert kolkata["utc_offset"] == "+05:30"
    assert kolkata["time"] == "16:00:00"


def test_zone_names_are_forgiving_about_case_and_utc_aliases() -> None:
    assert current_time("europe/paris")["timezone"] == "Europe/Paris"
    assert current_time("gmt")["timezone"] == "UTC"


@pytest.mark.parametrize("bad", ["Mars/Olympus", "Paris", "", "../../etc/passwd", "Europe/Pariss", "a\x00b"])
def test_unknown_zone_suggests_iana_format(bad: str) -> None:
    with pytest.raises(ToolError, match="Europe/Paris"):
        current_time(bad)


def test_unknown_zone_suggests_close_match() -> None:
    with pytest.raises(ToolError, match="Did you mean Europe/Paris"):
        current_time("Europe/Pariss")
    with pytest.raises(ToolError, match="America/Los_Angeles"):
        current_time("Los Angeles")


def test_convert_hh_mm_uses_today_in_source_zone() -> None:
    result = convert_time("09:00", "America/New_York", "Asia/Tokyo")
    assert result["from"]["iso"] == "2025-07-14T09:00:00-04:00"
    assert result["to"]["iso"] == "2025-07-14T22:00:00+09:00"
    assert result["time_difference"] == "+13:00"
    assert "day_change" not in result


def test_convert_reports_day_change() -> None:
    result = convert_time("23:30", "Europe/London", "Australia/Sydney")
    assert result["to"]["iso"] == "2025-07-15T08:30:00+10:00"
    assert result["day_change"] == 1


def test_convert_iso_datetime_and_explicit_offset() -> None:
    winter = convert_time("2025-01-10T12:00", "Europe/Paris", "UTC")
    assert winter["to"]["iso"] == "2025-01-10T11:00:00+00:00"
    explicit = convert_time("2025-01-10T12:00:00Z", "Asia/Tokyo", "Europe/Paris")
    assert explicit["to"]["iso"] == "2025-01-10T13:00:00+01:00"
    twelve_hour = convert_time("2:15 pm", "UTC", "Europe/Berlin")
    assert twelve_hour["to"]["time"] == "16:15:00"


def test_convert_flags_dst_gap_and_overlap() -> None:
    gap = convert_time("2025-03-30T02:30", "Europe/Paris", "UTC")
    assert "does not exist" in gap["notes"][0]
    overlap = convert_time("2025-10-26T02:30", "Europe/Paris", "UTC")
    assert "twice" in overlap["notes"][0]


@pytest.mark.parametrize("bad", ["noon-ish", "25:00", "2025-13-01T00:00", ""])
def test_convert_bad_time(bad: str) -> None:
    with pytest.raises(ToolError, match="HH:MM"):
        convert_time(bad, "UTC", "Europe/Paris")


def test_convert_bad_zone_names_which_side() -> None:
    with pytest.raises(ToolError, match="target time zone"):
        convert_time("10:00", "UTC", "Nowhere/Land")
    with pytest.raises(ToolError, match="source time zone"):
        convert_time("10:00", "Nowhere/Land", "UTC")


def test_set_clock_accepts_callable_and_resets() -> None:
    set_clock(lambda: datetime(2030, 1, 1, tzinfo=UTC))
    try:
        assert current_time()["date"] == "2030-01-01"
    finally:
        set_clock(None)
    assert current_time()["date"] != "2030-01-01"  # system clock again (well before 2030, or after)

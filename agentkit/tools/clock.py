"""Clock tools: the current time in a time zone and conversions between zones (IANA names, ``zoneinfo``).

"Now" comes from a replaceable clock so tests and offline demos are deterministic::

    with use_clock(datetime(2025, 3, 14, 12, 0, tzinfo=UTC)):
        current_time("Asia/Tokyo")
"""

from __future__ import annotations

import difflib
import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from agentkit._exceptions import ToolError
from agentkit._tool import tool

__all__ = ["convert_time", "current_time", "set_clock", "use_clock"]

Clock = Callable[[], datetime]


def _system_clock() -> datetime:
    return datetime.now(UTC)


_clock: Clock = _system_clock

_ALIASES = {"utc": "UTC", "gmt": "UTC", "z": "UTC", "zulu": "UTC"}


def set_clock(clock: Clock | datetime | None) -> None:
    """Replace the source of "now" (a callable returning an aware datetime, a fixed datetime, or
    ``None`` for the system clock)."""
    global _clock
    _clock = _as_clock(clock)


@contextmanager
def use_clock(clock: Clock | datetime) -> Iterator[None]:
    """Use ``clock`` (callable or fixed datetime) as "now" inside the ``with`` block."""
    global _clock
    previous = _clock
    _clock = _as_clock(clock)
    try:
        yield
    finally:
        _clock = previous


def _as_clock(clock: Clock | datetime | None) -> Clock:
    if clock is None:
        return _system_clock
    if isinstance(clock, datetime):
        fixed = clock if clock.tzinfo is not None else clock.replace(tzinfo=UTC)
        return lambda: fixed
    return clock


def _now() -> datetime:
    value = _clock()
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


@functools.cache
def _zone_names() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _zone(name: str, what: str = "time zone") -> ZoneInfo:
    key = name.strip()
    key = _ALIASES.get(key.lower(), key)
    try:
        if not key or "\x00" in key:
            raise ValueError(key)
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        pass
    # Accept a wrong capitalisation ("europe/paris") before giving up.
    by_lower = {zone.lower(): zone for zone in _zone_names()}
    if key.lower() in by_lower:
        return ZoneInfo(by_lower[key.lower()])
    hints = difflib.get_close_matches(key, _zone_names(), n=3, cutoff=0.6)
    if not hints:
        tail = key.replace(" ", "_").lower()
        hints = [zone for zone in _zone_names() if zone.lower().endswith("/" + tail)][:3]
    hint = f" Did you mean {', '.join(hints)}?" if hints else ""
    raise ToolError(
        f"Unknown {what} {name!r}. Use an IANA time zone name such as 'Europe/Paris', "
        f"'America/New_York', 'Asia/Tokyo' or 'UTC'.{hint}"
    )


def _describe(moment: datetime) -> dict[str, Any]:
    offset = moment.utcoffset() or timedelta(0)
    dst = moment.dst()
    return {
        "timezone": str(moment.tzinfo),
        "iso": moment.isoformat(timespec="seconds"),
        "date": moment.date().isoformat(),
        "time": moment.strftime("%H:%M:%S"),
        "weekday": moment.strftime("%A"),
        "utc_offset": _format_offset(offset),
        "abbreviation": moment.tzname(),
        "is_dst": bool(dst),
    }


def _format_offset(offset: timedelta) -> str:
    minutes = int(offset.total_seconds() // 60)
    sign = "+" if minutes >= 0 else "-"
    hours, mins = divmod(abs(minutes), 60)
    return f"{sign}{hours:02d}:{mins:02d}"


@tool
def current_time(timezone: str = "UTC") -> dict[str, Any]:
    """Get the current date and time in a time zone.

    Args:
        timezone: IANA time zone name, e.g. "Europe/Paris", "America/New_York" or "UTC".
    """
    zone = _zone(timezone)
    return _describe(_now().astimezone(zone))


@tool
def convert_time(time: str, from_timezone: str, to_timezone: str) -> dict[str, Any]:
    """Convert a time from one time zone to another.

    Args:
        time: "HH:MM" (today in the source zone) or an ISO 8601 date-time such as "2025-03-14T09:30".
            An explicit offset in the ISO string (e.g. "+01:00") overrides the source zone.
        from_timezone: IANA name of the zone the time is expressed in, e.g. "Europe/London".
        to_timezone: IANA name of the zone to convert to, e.g. "Asia/Tokyo".
    """
    source = _zone(from_timezone, "source time zone")
    target = _zone(to_timezone, "target time zone")
    moment = _parse_time(time, source)
    notes: list[str] = []
    if moment.tzinfo is source and not _exists(moment):
        notes.append("This local time does not exist in the source zone (clocks jump forward).")
    elif moment.tzinfo is source and _is_ambiguous(moment):
        notes.append("This local time occurs twice in the source zone (clocks go back); the first was used.")
    converted = moment.astimezone(target)
    result: dict[str, Any] = {
        "from": _describe(moment),
        "to": _describe(converted),
        "time_difference": _format_offset(
            (converted.utcoffset() or timedelta(0)) - (moment.utcoffset() or timedelta(0))
        ),
    }
    if converted.date() != moment.date():
        result["day_change"] = (converted.date() - moment.date()).days
    if notes:
        result["notes"] = notes
    return result


def _parse_time(text: str, zone: tzinfo) -> datetime:
    value = text.strip()
    for fmt in ("%H:%M", "%H:%M:%S", "%I:%M %p", "%I:%M%p", "%I %p", "%I%p"):
        try:
            clock_time = datetime.strptime(value.upper() if "%p" in fmt else value, fmt).time()
        except ValueError:
            continue
        today: date = _now().astimezone(zone).date()
        return datetime.combine(today, clock_time, tzinfo=zone)
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00") if value.endswith("Z") else value)
    except ValueError:
        raise ToolError(
            f"Could not read the time {text!r}. Use 'HH:MM' (e.g. '14:30') or an ISO 8601 date-time "
            "(e.g. '2025-03-14T14:30')."
        ) from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


def _exists(moment: datetime) -> bool:
    round_trip = moment.astimezone(UTC).astimezone(moment.tzinfo)
    return round_trip.replace(tzinfo=None) == moment.replace(tzinfo=None)


def _is_ambiguous(moment: datetime) -> bool:
    return moment.utcoffset() != moment.replace(fold=1).utcoffset()

"""Parse the times and spans users type: ``2026-11-01``, ``1700000000``, ``2h``, ``7d``.

A date or a datetime without an offset (and ``today``/``yesterday``) means a
day or a time in the *store's* time zone: a store owner in Los Angeles who
asks for ``--since 2026-12-01`` means that day's orders there, not those after
midnight UTC (docs/design.md §4.2). The zone defaults to UTC.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo

_SPAN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_span(text: str) -> int:
    """``90m`` -> 5400 seconds. Raise ValueError for anything else."""
    match = _SPAN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a span like 90m, 2h or 7d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


# the names that mean UTC itself: no second zone to show beside it
_UTC_NAMES = frozenset({"utc", "z", "etc/utc", "etc/uct", "uct", "zulu", "etc/zulu",
                        "universal", "etc/universal"})  # fmt: skip
_DAYS_BACK = {"today": 0, "yesterday": 1}


def zone_named(name: str) -> tzinfo:
    """The IANA time zone ``name`` (``UTC``, ``America/Los_Angeles``).

    Raise ValueError naming it when there is no such zone. The zone data comes
    from the system, else from the ``tzdata`` package (a dependency).
    """
    text = name.strip()
    if text.lower() in _UTC_NAMES:
        return UTC
    # imported here: the command line's start-up (--help, --version) needs none
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    # a folder ("America"), an absolute path, a NUL: all just "not a zone"
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(
            f"{name!r} is not a time zone: use an IANA name such as "
            "America/Los_Angeles, Europe/Berlin or UTC"
        ) from None


def is_utc(zone: tzinfo) -> bool:
    """Whether ``zone`` is UTC itself (not merely at offset 0 today, like London)."""
    return zone is UTC or str(zone).lower() in _UTC_NAMES


def parse_when(text: str, now: float, zone: tzinfo = UTC) -> int:
    """A point in time as unix seconds.

    Digits are always unix seconds; a span (``2h``) is that long before ``now``;
    ``today``/``yesterday`` are the start of that day in ``zone``; otherwise an
    ISO date or datetime, read in ``zone`` unless it carries an offset. A wall
    time that a DST change makes ambiguous takes its first occurrence.
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    if _SPAN.match(text):
        return int(now) - parse_span(text)
    back = _DAYS_BACK.get(text.lower())
    if back is not None:
        day = datetime.fromtimestamp(now, zone).date() - timedelta(days=back)
        return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp())
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use an ISO date (2026-11-01, in the store's "
            "timezone), a datetime (2026-11-01T08:00:00+02:00), unix seconds, "
            "today, or a span like 2h or 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=zone)
    try:
        return int(moment.timestamp())
    except (OverflowError, ValueError):  # 0001-01-01 in a zone east of UTC
        raise ValueError(f"{text!r} is out of range") from None


@dataclass(frozen=True)
class WhenText:
    """A time as the user typed it, read once the store's zone is known.

    The command line parses its options before it has loaded the settings
    that name the zone, so it checks the text at once (a typo is exit 2
    before anything runs) and keeps it until :meth:`resolve`. ``str()`` gives
    the text back, so it can be handed on to another run unchanged.
    """

    text: str

    def __post_init__(self) -> None:
        parse_when(self.text, time.time())  # raises ValueError for a non-time

    def __str__(self) -> str:
        return self.text

    def resolve(self, zone: tzinfo = UTC, now: float | None = None) -> int:
        """Unix seconds, bare dates and times read in ``zone``."""
        return parse_when(self.text, time.time() if now is None else now, zone)


def iso(seconds: float | None) -> str:
    """Unix seconds as an ISO-8601 UTC string (``-`` for none)."""
    if seconds is None:
        return "-"
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):  # beyond year 9999, NaN
        return f"{seconds} (not a valid time)"


def iso_in(seconds: float | None, zone: tzinfo) -> str:
    """Unix seconds as ISO UTC, followed by the same moment in ``zone`` unless
    that is UTC: ``2026-12-01T09:00:00Z (2026-12-01T01:00:00-08:00 America/Los_Angeles)``."""
    text = iso(seconds)
    if seconds is None or is_utc(zone):
        return text
    try:
        local = datetime.fromtimestamp(seconds, zone).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return text
    return f"{text} ({local} {zone})"


def human_span(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

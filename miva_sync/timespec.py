"""Parse the times and spans users type: ``2026-11-01``, ``1700000000``, ``2h``, ``7d``."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_SPAN = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_span(text: str) -> int:
    """``90m`` -> 5400 seconds. Raise ValueError for anything else."""
    match = _SPAN.match(text)
    if not match:
        raise ValueError(f"{text!r} is not a span like 90m, 2h or 7d")
    return int(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def parse_when(text: str, now: float) -> int:
    """A point in time as unix seconds.

    Digits are always unix seconds; a span (``2h``) is that long before ``now``;
    otherwise an ISO date or datetime, UTC unless it carries an offset.
    """
    text = text.strip()
    if text.isdigit():
        return int(text)
    if _SPAN.match(text):
        return int(now) - parse_span(text)
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            f"{text!r} is not a time: use an ISO date (2026-11-01), a datetime "
            "(2026-11-01T08:00:00+02:00), unix seconds, or a span like 2h or 7d"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp())


def iso(seconds: float | None) -> str:
    """Unix seconds as an ISO-8601 UTC string (``-`` for none)."""
    if seconds is None:
        return "-"
    try:
        return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    except (OverflowError, ValueError, OSError):  # beyond year 9999, NaN
        return f"{seconds} (not a valid time)"


def human_span(seconds: float) -> str:
    seconds = int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"

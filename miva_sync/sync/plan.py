"""Turn the user's options and the saved record into one pull plan.

Modes (design.md §5): ``date`` (orderdate), ``updated`` (dt_updated) and
``number`` (id). ``--since``/``--from-order`` make a mode active and restart
its cursor, keeping the dedupe window; a bare pull resumes the active mode.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from miva_sync.errors import UsageError
from miva_sync.timespec import iso, parse_span

FIELDS = {"date": "orderdate", "updated": "dt_updated", "number": "id"}
DEFAULT_LOOKBACK = 15 * 60
DEFAULT_OVERLAP = "30"


@dataclass(frozen=True)
class PullOptions:
    """What the user asked for (already parsed)."""

    since: int | None = None
    updated: bool = False
    from_order: int | None = None
    until: int | None = None
    to_order: int | None = None
    lookback: int | None = None  # seconds
    overlap: str | None = None  # "30" ids or a span such as "45m"
    emit_unchanged: bool = False

    @property
    def bounded(self) -> bool:
        return self.until is not None or self.to_order is not None


@dataclass
class Plan:
    """One run: its mode, cursor and the record to update as it goes."""

    mode: str
    start: int
    watermark: int | None
    lookback: int
    overlap: str
    hi: int | None
    bounded: bool
    record: dict[str, Any]
    notices: list[str] = field(default_factory=list)

    @property
    def field(self) -> str:
        return FIELDS[self.mode]

    @property
    def overlap_span(self) -> int | None:
        """The overlap as seconds when it was given as a span, else None."""
        return None if self.overlap.isdigit() else parse_span(self.overlap)

    def describe_cursor(self, value: int | None) -> str:
        if value is None:
            return "-"
        return f"#{value}" if self.mode == "number" else iso(value)


def validate_overlap(text: str) -> str:
    text = text.strip().lower()
    if text.isdigit():
        return str(int(text))
    parse_span(text)  # raises ValueError with a clear message
    return text


def make_plan(record: dict[str, Any] | None, options: PullOptions) -> Plan:
    """Resolve mode and cursor; never mutates the saved record in place."""
    record = copy.deepcopy(record) if record else None
    notices: list[str] = []
    if options.since is not None or options.from_order is not None:
        if options.since is not None and options.from_order is not None:
            raise UsageError("use either --since or --from-order, not both")
        mode = (
            "number"
            if options.from_order is not None
            else ("updated" if options.updated else "date")
        )
        start = options.from_order if options.from_order is not None else options.since
        if options.to_order is not None and mode != "number":
            raise UsageError("--to-order goes with --from-order")
        if options.until is not None and mode == "number":
            raise UsageError("--until goes with --since")
        record = record or {"cursors": {}, "dedupe": {}, "held": {}}
        previous = record["cursors"].get(mode)
        cursor = {"start": start, "watermark": None}
        if previous and not options.bounded:
            notices.append(
                f"{mode} mode: restarting its cursor at the new start "
                "(the dedupe window is kept)"
            )
    else:
        if options.bounded:
            raise UsageError("--until/--to-order need --since or --from-order")
        if not record:
            raise UsageError(
                "no saved state for this store: start with --since WHEN, "
                "--from-order N (or --queue CODE); later runs resume from there"
            )
        mode = record["mode"]
        if mode == "queue":
            raise UsageError(
                "the active mode is queue: run 'miva-sync pull --queue CODE'"
            )
        if options.updated and mode == "date":
            # switch to updated mode where the date cursor stands
            date_cursor = record["cursors"]["date"]
            start = date_cursor.get("watermark") or date_cursor["start"]
            mode = "updated"
            cursor = {"start": start, "watermark": None}
            notices.append(f"switching to updated mode from {iso(start)}")
        else:
            cursor = dict(record["cursors"][mode])
    saved = record["cursors"].get(mode, {}) if record else {}
    lookback = (
        options.lookback
        if options.lookback is not None
        else int(saved.get("lookback", DEFAULT_LOOKBACK))
    )
    overlap = options.overlap or str(saved.get("overlap", DEFAULT_OVERLAP))
    cursor.update({"lookback": lookback} if mode != "number" else {"overlap": overlap})
    if not options.bounded:
        record["mode"] = mode
        record["cursors"][mode] = cursor
    hi = options.until if mode != "number" else options.to_order
    return Plan(
        mode=mode,
        start=int(cursor["start"]),
        watermark=cursor.get("watermark"),
        lookback=lookback,
        overlap=overlap,
        hi=hi,
        bounded=options.bounded,
        record=record,
        notices=notices,
    )

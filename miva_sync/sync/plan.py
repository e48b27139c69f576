"""Turn the user's options and the saved record into one pull plan.

Modes (docs/design.md §5.1): ``date`` (orderdate), ``updated`` (dt_updated) and
``number`` (id). ``--since``/``--from-order`` are where a mode begins when it
has no saved cursor; once it has one, the saved cursor wins (the ELT
convention, see :func:`make_plan`). A bare pull resumes the active mode; a
mode becomes active with its run's first durable commit (:meth:`Plan.activate`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from typing import Final, Literal

from miva_sync.base.timespec import iso, parse_span
from miva_sync.errors import UsageError
from miva_sync.state.file import is_int
from miva_sync.state.record import (
    PullCursor,
    PullMode,
    StateRecord,
    copy_record,
    new_record,
)
from miva_sync.store.orders import CURSOR_FIELDS
from miva_sync.sync.summary import describe_cursor

DEFAULT_LOOKBACK = 15 * 60
DEFAULT_OVERLAP = "30"
# seconds a clock may run ahead: a start beyond it is refused, an order beyond
# it warns and never moves the watermark (here, not in sync/pull.py, so the
# offline `state set` checks a start without importing the client)
FUTURE_TOLERANCE = 120
# a restarted cursor keeps the one it replaces here until its first commit
PREVIOUS: Final = "previous"


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
    # restart the mode at the start and deliver its window again
    full_refresh: bool = False

    @property
    def bounded(self) -> bool:
        return self.until is not None or self.to_order is not None


@dataclass
class Plan:
    """One run: its mode, cursor and the record to update as it goes."""

    mode: PullMode
    start: int
    watermark: int | None
    lookback: int
    overlap: str
    hi: int | None
    bounded: bool
    record: StateRecord
    notices: list[str] = field(default_factory=list)
    full_refresh: bool = False
    # the store's time zone: times are shown in it too (beside UTC) when not UTC
    zone: tzinfo = UTC

    @property
    def field(self) -> str:
        return CURSOR_FIELDS[self.mode]

    @property
    def overlap_span(self) -> int | None:
        """The overlap as seconds when it was given as a span, else None."""
        return None if self.overlap.isdigit() else parse_span(self.overlap)

    def activate(self) -> None:
        """Make this run's mode the store's active mode: called once a page of
        it has been read and verified, so the next durable commit carries it.
        A run that fails before that leaves the previous mode and cursor."""
        if not self.bounded:
            make_active(self.record, self.mode)

    def describe_cursor(self, value: int | None) -> str:
        return describe_cursor(self.mode, value, self.zone)


def validate_overlap(text: str) -> str:
    text = text.strip().lower()
    if text.isdigit():
        return str(int(text))
    parse_span(text)  # raises ValueError with a clear message
    return text


def make_plan(record: StateRecord | None, options: PullOptions) -> Plan:
    """Resolve mode and cursor; never mutates the saved record in place.

    The start rule (docs/design.md §5.5; Singer's ``start_date``, dlt's
    ``initial_value``): an explicit start is where a mode begins when it has
    no saved cursor; once it has one, the saved cursor wins. So a crontab that
    repeats its first command line is gapless and duplicate-free.
    ``--full-refresh`` restarts the mode at the start; a bounded window reads
    its whole range and saves nothing. The record's active mode is left as it
    is: :meth:`Plan.activate` switches it at the run's first durable commit.
    Which flags go together (one start, a bound of its own kind, no
    --full-refresh without a start or with a bound) is the app's to refuse
    (app/flag_rules.py) before a plan is made.
    """
    record = copy_record(record) if record else None
    notices: list[str] = []
    if options.since is not None or options.from_order is not None:
        mode: PullMode = (
            "number"
            if options.from_order is not None
            else ("updated" if options.updated else "date")
        )
        start = options.from_order if options.from_order is not None else options.since
        assert start is not None  # noqa: S101 - one of them is set
        # a record with no active mode yet has nothing to keep: this mode is it
        # at once, so a run killed before its first commit is resumed by a bare
        # pull. Otherwise the active mode switches with the first commit.
        record = record or new_record(mode)
        if options.bounded:
            cursor: PullCursor = {"start": start, "watermark": None}
        else:
            cursor = _start_cursor(record, mode, start, options, notices)
    else:
        if not record:
            raise UsageError(
                "no saved state for this store: start with --since WHEN, "
                "--from-order N (or --queue CODE); later runs resume from there"
            )
        active = record["mode"]
        if active == "queue":
            raise UsageError(
                "the active mode is queue: run 'miva-sync pull --queue CODE'"
            )
        if active == "webhook":  # listen's own record (listen:<store>), no cursor
            raise UsageError("the saved record is listen's, not a pull's")
        mode = active
        if options.updated and mode == "date":
            mode = "updated"
            cursor = _switch_to_updated(record, notices)
        else:
            cursor = _resumed(mode, record["cursors"][mode], notices)
    lookback = (
        options.lookback
        if options.lookback is not None
        else int(cursor.get("lookback", DEFAULT_LOOKBACK))
    )
    overlap = options.overlap or str(cursor.get("overlap", DEFAULT_OVERLAP))
    if mode != "number":
        cursor["lookback"] = lookback
    else:
        cursor["overlap"] = overlap
    if not options.bounded:
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
        full_refresh=options.full_refresh,
    )


def make_active(
    record: StateRecord, mode: Literal["date", "updated", "number", "queue"]
) -> None:
    """Make ``mode`` the store's active mode and drop the cursor its run
    replaced: called (by Plan.activate, QueuePlan.activate) once the store has
    answered the run, so the next durable commit carries both."""
    record["mode"] = mode
    record["cursors"][mode].pop(PREVIOUS, None)


def _committed(cursor: PullCursor | None) -> PullCursor | None:
    """The cursor a mode has committed: a cursor restarted by a --full-refresh
    that has not reached its first durable commit keeps the one it replaces
    under ``previous``, and that one still counts."""
    if cursor is None:
        return None
    if PREVIOUS not in cursor:
        return cursor
    previous = cursor[PREVIOUS]
    # validate_record leaves it to this, its only reader
    if isinstance(previous, dict) and is_int(previous.get("start")):
        committed = previous.copy()
        committed.pop(PREVIOUS, None)
        return committed
    return None


def restarted(cursor: PullCursor | None, start: int) -> PullCursor:
    """A cursor at ``start`` that has read nothing yet, with ``cursor``'s
    settings (lookback, overlap): a restart moves the position only."""
    fresh: PullCursor = {"start": start, "watermark": None}
    if cursor is not None and "lookback" in cursor:
        fresh["lookback"] = cursor["lookback"]
    if cursor is not None and "overlap" in cursor:
        fresh["overlap"] = cursor["overlap"]
    return fresh


def _start_cursor(
    record: StateRecord,
    mode: PullMode,
    start: int,
    options: PullOptions,
    notices: list[str],
) -> PullCursor:
    """The cursor a run with an explicit start (``--since``/``--from-order``) uses."""
    committed = _committed(record["cursors"].get(mode))
    if options.full_refresh:
        # The cursor it replaces stays under `previous` until the first durable
        # commit, so a run that fails before it leaves the mode where it was.
        cursor = restarted(committed, start)
        if committed is not None:
            cursor[PREVIOUS] = committed
        notices.append(
            f"{mode} mode: full refresh from {_point(mode, start)}: every order "
            "since then is delivered again (the saved cursor is replaced at the "
            "first commit; the ack journal and held orders are kept)"
        )
        return cursor
    if committed is None:
        return {"start": start, "watermark": None}
    cursor = committed.copy()
    if cursor.get("watermark") is None and start < int(cursor["start"]):
        # nothing has moved this cursor yet (an earlier run stopped before any
        # order, or saw none): an earlier start widens it at no cost
        cursor["start"] = start
        return cursor
    if cursor.get("watermark") is None and start == int(cursor["start"]):
        return cursor
    notices.append(_resume_notice(mode, cursor, start))
    return cursor


def _resume_notice(mode: PullMode, cursor: PullCursor, start: int) -> str:
    flag, bound = (
        ("--from-order", "--to-order N")
        if mode == "number"
        else ("--since", "--until WHEN")
    )
    watermark = cursor.get("watermark")
    where = (
        f"its watermark {_point(mode, watermark)}"
        if watermark is not None
        else f"its start {_point(mode, int(cursor['start']))}"
    )
    return (
        f"{mode} mode resumes from its saved cursor ({where}), not from {flag} "
        f"{start if mode == 'number' else iso(start)}: a start only applies to a "
        "mode with no saved "
        f"cursor. To pull from there again: add --full-refresh (re-delivers "
        f"everything since then), or bound it with {bound} (leaves the cursor alone)"
    )


def _resumed(mode: PullMode, saved: PullCursor, notices: list[str]) -> PullCursor:
    """A bare pull's cursor: the saved one, or the one an unfinished
    --full-refresh would have replaced."""
    if PREVIOUS not in saved:
        return saved.copy()
    committed = _committed(saved)
    if committed is None:
        raise UsageError(
            f"the saved {mode} cursor is malformed; inspect it with 'miva-sync state "
            "show' or start again with 'miva-sync state set'"
        )
    notices.append(
        f"{mode} mode: the --full-refresh from {_point(mode, int(saved['start']))} "
        "stopped before its first commit; resuming from the saved cursor (repeat "
        "the --full-refresh to re-pull)"
    )
    return committed.copy()


def _switch_to_updated(record: StateRecord, notices: list[str]) -> PullCursor:
    """A bare ``--updated`` while date mode is active: updated mode's own
    cursor if it has one, else a new one where the date cursor stands."""
    own = _committed(record["cursors"].get("updated"))
    if own is not None:
        notices.append(
            "updated mode resumes from its own saved cursor "
            f"({_point('updated', own.get('watermark') or int(own['start']))})"
        )
        return own.copy()
    date_cursor = _committed(record["cursors"]["date"]) or record["cursors"]["date"]
    start = date_cursor.get("watermark") or date_cursor["start"]
    notices.append(f"switching to updated mode from {iso(start)}")
    return {"start": start, "watermark": None}


def _point(mode: str, value: int) -> str:
    return f"#{value}" if mode == "number" else iso(value)


def refuse_future_since(since: int | None, now: float, tolerance: int) -> None:
    """A ``--since`` beyond now (plus the clock tolerance) is a typo: a mistyped
    year, or milliseconds read as seconds. Saved, it would hide every order
    until then, and the staleness alarm would never ring (exit 2)."""
    if since is None or since <= now + tolerance:
        return
    raise UsageError(
        f"--since {iso(since)} is {_ahead(since - now)} in the future (this "
        f"machine's clock says {iso(now)}): a mistyped year, or milliseconds given "
        "as seconds? A start in the future would hide every order until then; "
        "nothing was saved"
    )


def overlap_margin(overlap: str) -> int:
    """How many order numbers a start may lie beyond the highest one: the
    overlap when it is a count, else the default count (a span has none)."""
    return int(overlap) if overlap.isdigit() else int(DEFAULT_OVERLAP)


def refuse_future_order(from_order: int, highest: int | None, overlap: str) -> None:
    """A ``--from-order`` beyond the store's highest order number plus the
    overlap is a typo: saved, it would hide every order until then (exit 2).
    ``highest`` None: the store has no orders yet, nothing to compare with."""
    margin = overlap_margin(overlap)
    if highest is None or from_order <= highest + margin:
        return
    raise UsageError(
        f"--from-order {from_order} is beyond the store's highest order number "
        f"#{highest} (plus the overlap, {margin}): a typo? A start past every "
        "order would hide the orders until then; nothing was saved"
    )


def _ahead(seconds: float) -> str:
    for unit, size in (("years", 365 * 86400), ("days", 86400), ("hours", 3600)):
        if seconds >= size:
            return f"{seconds / size:.0f} {unit}"
    return f"{int(seconds)} seconds"

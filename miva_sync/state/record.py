"""The per-store state record: its schema, with every key documented here once.

The state file (:mod:`miva_sync.state.file`) maps each store's key to one
record; a database target (SQLite, PostgreSQL) commits a copy of it with its
rows (``sync_state``), and a Singer target writes part of it as STATE. On disk
a record is a JSON object::

    {"mode": "date",
     "cursors": {"date": {"start": 1700000000, "watermark": 1700050000,
                          "lookback": 900}},
     "dedupe": {"1001": [1700049000, 1700040000, 1700049000]},
     "held": {"1002": {"since": 1700050000, "orderdate": 1700049500}},
     "last_run": {"finished_at": 1700050100, "mode": "date", "emitted": 12,
                  "unchanged": 3, "held": 1, "released": 0, "seconds": 1.52},
     "updated_at": "2023-11-15T12:08:20Z",
     "output": {"target": "orders.jsonl", "inode": 1234, "offset": 5678},
     "target": "/srv/miva/orders.jsonl"}

The types below say what the code writes. What it reads back passes
:func:`miva_sync.state.file.validate_record` first; the few keys that check
leaves alone (``output``, ``target``, ``updated_at``, a cursor's ``previous``,
the elements of a dedupe entry) are checked by their readers where they read
them: a hand-edited value there costs at most a duplicate or a clear refusal.
"""

from __future__ import annotations

import copy
from typing import Literal, Required, TypedDict, cast

# date: by orderdate; updated: by dt_updated; number: by order id; queue: an
# order-workflow queue; webhook: listen's own record of held orders
Mode = Literal["date", "updated", "number", "queue", "webhook"]
# the modes that page through the store by one field (sync/pull.py)
PullMode = Literal["date", "updated", "number"]

MODES: tuple[Mode, ...] = ("date", "updated", "number", "queue", "webhook")
PULL_MODES: tuple[PullMode, ...] = ("date", "updated", "number")


class PullSettings(TypedDict, total=False):
    """A pull cursor's settings: kept when the cursor restarts (``--full-refresh``,
    ``state set``), and overridden for one run by ``--lookback``/``--overlap``."""

    # date, updated: seconds below the watermark that each run reads again
    lookback: int
    # number: order ids below the watermark that each run reads again ("30"),
    # or a span of order dates ("45m"); a hand-written integer counts as ids
    overlap: int | str


class PullCursor(PullSettings, total=False):
    """The cursor of one pull mode (date, updated, number)."""

    # where the mode began: unix seconds (date, updated) or an order id (number)
    start: Required[int]
    # how far the committed pages reach in the mode's field, never past the
    # local clock at the start of their run; None until a page moves it
    watermark: int | None
    # a --full-refresh before its first durable commit: the cursor it replaces,
    # which still counts until then (removed by Plan.activate)
    previous: PullCursor


class QueueJournal(TypedDict, total=False):
    """The part of a queue cursor that belongs to no one queue code: it is kept
    across a switch of queue, since ``OrderList_Acknowledge`` takes ids only."""

    # the ack journal: ids durably written but not yet acknowledged; the next
    # run acknowledges them first (sync/queue_state.py)
    pending_ack: list[int]
    # without acknowledgement: a download started whose orders are not yet all
    # written; the next run recovers them from the received queue first
    in_flight: bool


class QueueCursor(QueueJournal, total=False):
    """Queue mode's cursor (sync/queue_state.py tells the protocol)."""

    # the store's own queue code (case-sensitive)
    queue_code: Required[str]
    # True (the default when absent): acknowledge after a durable write;
    # False: --no-ack, the read itself moves the orders out of the queue
    ack: bool
    # --no-ack: the queue the workflow moves downloaded orders to (recovery)
    received_queue: str | None
    # unix seconds: the last time the queue was read empty
    drained_at: int | None
    # unix seconds: the first run on this queue code, and the last read that
    # returned an order; the "never delivered" alarm reads them. Absent from
    # state files written before that alarm: its clock then starts at the next run
    first_run_at: int | None
    delivered_at: int | None
    # a switch to another queue code before that queue first answered: the
    # cursor of the queue that last worked (removed by QueuePlan.activate)
    previous: QueueCursor


class WebhookCursor(TypedDict):
    """listen's record carries an empty cursor: it only keeps held orders."""


class Cursors(TypedDict, total=False):
    """One cursor per mode the store has been pulled in; switching the active
    mode keeps the others, so switching back resumes where that mode stood."""

    date: PullCursor
    updated: PullCursor
    number: PullCursor
    queue: QueueCursor
    webhook: WebhookCursor


# [version, orderdate, dt_updated] of the last version emitted (sync/dedupe.py):
# the version is dt_updated, or on stores without it a content fingerprint
# ("h" + 24 hex; an older release's hash is recognised and replaced). The times
# are unix seconds or None; readers treat anything but an int as unknown, so
# the elements are typed as what a hand-edited file may hold. An entry is
# replaced whole, never changed in place: copies of a record share entries
# (copy_record)
DedupeEntry = list[object]


class HeldEntry(TypedDict):
    """An unpaid order held back by ``--require-payment`` (sync/held.py)."""

    since: int  # unix seconds: first seen unpaid; the hold expires from then
    orderdate: int | None


class LastRun(TypedDict, total=False):
    """The last run that ended successfully: ``state show`` and its
    ``--max-age`` staleness alarm read it. The counts are None (or absent) only
    in state files written by hand."""

    finished_at: Required[int]  # unix seconds
    mode: str
    emitted: int | None
    unchanged: int | None
    held: int | None  # held at the end of the run
    released: int | None  # held orders the run emitted (paid, expired, gone)
    seconds: float | None


class Receipt(TypedDict):
    """Where a JSON Lines output file stood at the last commit (sinks/receipts.py):
    the next run appending to the same file replays what came after it into
    the dedupe window, so a killed run's last page is not emitted twice."""

    target: str  # the file's path as given
    inode: int
    offset: int  # bytes of whole lines at the commit


class StateRecord(TypedDict, total=False):
    """One store's record."""

    # the active mode: the one a bare pull resumes. A run's mode becomes active
    # with its first durable commit (Plan.activate, QueuePlan.activate), so a
    # run that fails before leaves the previous mode and its cursor
    mode: Required[Mode]
    cursors: Required[Cursors]
    # order id (decimal digits) -> the version last emitted, for every order a
    # later run can still read back; absent counts as empty
    dedupe: dict[str, DedupeEntry]
    # order id (decimal digits) -> an unpaid order held back; absent: none
    held: dict[str, HeldEntry]
    # absent (or null): no run has ended successfully yet
    last_run: LastRun | None
    # ISO 8601 UTC: the last commit of a run
    updated_at: str
    # the last receipt of a JSON Lines file target; None for any other target,
    # and for a database's own copy (its rows are the truth, nothing to replay)
    output: Receipt | None
    # the target the last run wrote into (sinks.identity: a resolved path, or
    # a database's description): a mode that begins into another target seeds
    # a new consumer, which must not skip what the dedupe window remembers
    target: str


def new_record(mode: Mode) -> StateRecord:
    """The record of a store with nothing saved yet, ``mode`` active at once: a
    run killed before its first commit is resumed by a bare pull."""
    # the keys in the order earlier releases wrote them
    return {"cursors": {}, "dedupe": {}, "held": {}, "mode": mode}


def copy_record(record: StateRecord) -> StateRecord:
    """A copy of ``record`` that no change to either can reach from the other.

    Deep, but for the entries of the dedupe window, which the copy shares: no
    code changes an entry in place (sync/dedupe.py replaces it whole), and a
    full window holds tens of thousands of them, which ``copy.deepcopy`` took
    about 25 ms to copy one by one, at the start of every run. Key order kept.
    """
    copied = {
        key: copy.deepcopy(value) for key, value in record.items() if key != "dedupe"
    }
    if "dedupe" in record:
        copied["dedupe"] = dict(record["dedupe"])
    # in the order of the keys of ``record`` (the file's bytes keep it)
    return cast(StateRecord, {key: copied[key] for key in record})

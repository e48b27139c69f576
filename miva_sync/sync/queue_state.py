"""Queue mode's part of the store record: the queue cursor, the ack journal, pruning.

The cursor lives under ``record["cursors"]["queue"]``::

    {"queue_code": "new_updated_orders",  # the store's own code
     "ack": true,                         # acknowledgement variant (default)
     "received_queue": null,              # --no-ack: where downloaded orders go
     "pending_ack": [1001, 1002],         # the ack journal (see below)
     "in_flight": false,                  # --no-ack: a download may be lost
     "drained_at": 1700000000,            # last time the queue was read empty
     "first_run_at": 1699990000,          # first run on this queue code
     "delivered_at": 1699999000}          # last time a read returned an order

``first_run_at`` and ``delivered_at`` feed the "never delivered" alarm (a pull's
warning and ``state show --max-age``): queue codes are store-defined, and a
mistyped one may answer like an empty queue. State files written before they
existed lack both; the clock then starts at the next run.

The ack journal: ids that are durably written but not yet acknowledged. They are
saved after the sink commits and before ``OrderList_Acknowledge`` is sent, so a
run that dies in between acknowledges them first next time (and the dedupe
window keeps them from being emitted again when the queue re-delivers them).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from miva_sync.errors import ConfigError, UsageError
from miva_sync.state.file import is_queue_cursor
from miva_sync.state.record import (
    DedupeEntry,
    QueueCursor,
    QueueJournal,
    StateRecord,
    copy_record,
    new_record,
)
from miva_sync.sync.plan import PREVIOUS, make_active

DEDUPE_HORIZON = 7 * 86400  # how long an emitted version is remembered
RECOVERY_MARGIN = 86400  # store clock vs local clock, and workflow delays
MAX_PENDING = 100_000  # a journal longer than this is not ours


@dataclass(frozen=True)
class QueueOptions:
    """What the user asked for (already parsed); ``queue_code`` None: resume."""

    queue_code: str | None = None
    ack: bool = True
    received_queue: str | None = None
    emit_unchanged: bool = False


@dataclass
class QueuePlan:
    """One queue run: its settings and the record to update as it goes."""

    queue_code: str
    ack: bool
    received_queue: str | None
    record: StateRecord
    notices: list[str] = field(default_factory=list)

    @property
    def cursor(self) -> QueueCursor:
        return self.record["cursors"]["queue"]

    def activate(self) -> None:
        """Make queue mode (this queue) the store's active mode: called once the
        queue has answered, so the next durable commit carries it. A run that
        fails before that (a mistyped code) leaves the previous mode and queue."""
        make_active(self.record, "queue")

    @property
    def pending(self) -> list[int]:
        return list(self.cursor.get("pending_ack") or [])

    @property
    def recovery_floor(self) -> int | None:
        """Lowest dt_updated an order in the queue can have, when known.

        Orders enter a workflow queue when they are created or updated, so after
        a run that read the queue empty at ``drained_at``, everything queued since
        carries a later ``dt_updated`` (less the margin for clock differences).
        """
        drained = self.cursor.get("drained_at")
        return None if drained is None else int(drained) - RECOVERY_MARGIN


def make_queue_plan(record: StateRecord | None, options: QueueOptions) -> QueuePlan:
    """Resolve the queue settings; never mutates the saved record in place."""
    record = copy_record(record) if record else None
    notices: list[str] = []
    saved = record["cursors"].get("queue") if record else None
    if saved is not None:
        check_cursor(saved)
    if options.queue_code is None:
        if not record or record["mode"] != "queue" or saved is None:
            raise UsageError(
                "no saved queue state for this store: start with --queue CODE"
            )
        cursor = _resumed_queue(saved, notices)
        if options.received_queue and not cursor.get("ack", True):
            cursor["received_queue"] = options.received_queue
    else:
        # a record with no active mode yet has nothing to keep: queue mode is it
        record = record or new_record("queue")
        committed = _committed_queue(saved)
        if saved and saved.get("queue_code") == options.queue_code:
            cursor = saved.copy()
        elif committed is not None and committed["queue_code"] == options.queue_code:
            # back to the queue an unfinished switch would have replaced; the
            # journal and in-flight mark are the newest ones, so they stay
            cursor = {**committed, **_journal(saved or {})}
        else:
            # the new code is set below, with the other settings
            cursor = saved.copy() if saved else {"queue_code": options.queue_code}
            cursor.pop(PREVIOUS, None)
            if committed is not None:
                notices.append(
                    f"queue mode: switching from queue {committed['queue_code']!r} "
                    f"to {options.queue_code!r} (the dedupe window and the ack "
                    "journal are kept)"
                )
                # until the new queue answers, a bare pull goes on with this one
                cursor[PREVIOUS] = committed
            # facts about the other queue
            cursor.pop("drained_at", None)
            cursor.pop("first_run_at", None)
            cursor.pop("delivered_at", None)
        if record["mode"] != "queue":
            notices.append(
                f"switching to queue mode from {record['mode']} mode "
                "(the dedupe window is kept)"
            )
        cursor.update(
            {
                "queue_code": options.queue_code,
                "ack": options.ack,
                "received_queue": options.received_queue,
            }
        )
    if cursor.get("ack", True) and cursor.get("received_queue"):
        raise UsageError("--received-queue goes with --no-ack")
    # the journal is not tied to one queue: OrderList_Acknowledge takes ids only
    cursor.setdefault("pending_ack", [])
    cursor.setdefault("in_flight", False)
    # queue mode becomes active with its first answer (QueuePlan.activate)
    record["cursors"]["queue"] = cursor
    return QueuePlan(
        queue_code=str(cursor["queue_code"]),
        ack=bool(cursor.get("ack", True)),
        received_queue=cursor.get("received_queue") or None,
        record=record,
        notices=notices,
    )


def _journal(cursor: QueueJournal) -> QueueJournal:
    """The ack journal and in-flight mark: not tied to one queue code."""
    journal: QueueJournal = {}
    if "pending_ack" in cursor:
        journal["pending_ack"] = cursor["pending_ack"]
    if "in_flight" in cursor:
        journal["in_flight"] = cursor["in_flight"]
    return journal


def _committed_queue(saved: QueueCursor | None) -> QueueCursor | None:
    """The queue cursor that last worked: a switch to another queue code keeps
    it under ``previous`` until the new queue first answers."""
    if saved is None or PREVIOUS not in saved:
        return saved
    # validate_record leaves it to this, its only reader
    committed = check_cursor(saved[PREVIOUS]).copy()
    committed.pop(PREVIOUS, None)
    return committed


def _resumed_queue(saved: QueueCursor, notices: list[str]) -> QueueCursor:
    """A bare pull's queue cursor (issue 19: a failed switch is not a switch)."""
    committed = _committed_queue(saved)
    if committed is None or committed is saved:
        return saved
    if saved.get("in_flight"):
        # the new queue's download may have moved orders: recover them first
        notices.append(
            f"queue {saved['queue_code']!r}: the run that started it stopped during "
            "a download; resuming it to recover that download"
        )
        return saved
    notices.append(
        f"queue {saved['queue_code']!r} never answered (its run stopped before its "
        f"first commit); resuming queue {committed['queue_code']!r}"
    )
    return {**committed, **_journal(saved)}


def check_cursor(cursor: object) -> QueueCursor:
    """``cursor`` if it is a queue cursor with a journal of ours, else ConfigError."""
    if (
        isinstance(cursor, dict)
        and is_queue_cursor(cursor)
        and len(cursor.get("pending_ack", [])) <= MAX_PENDING
    ):
        return cursor
    raise ConfigError(
        "the saved queue cursor is malformed; inspect it with 'miva-sync state "
        "show' or start again with 'miva-sync state reset'"
    )


def queue_keep(
    now: int, floor: int | None, protected: Iterable[int]
) -> Callable[[int, DedupeEntry], bool]:
    """Which dedupe entries a queue run keeps.

    Kept: ids in the ack journal or written by this run (a re-delivery must not
    emit them twice), and versions updated within :data:`DEDUPE_HORIZON`, or since
    the recovery floor, whichever is older (a no-ack recovery compares the
    received queue against them). Everything else has left the queue; if it is
    ever queued again unchanged it is emitted again: a duplicate, never a loss.
    """
    keep_ids = {str(i) for i in protected}
    horizon = now - DEDUPE_HORIZON
    if floor is not None:
        horizon = min(horizon, floor)

    def keep(oid: int, entry: DedupeEntry) -> bool:
        if str(oid) in keep_ids:
            return True
        stamps = [v for v in entry[1:] if isinstance(v, int)]
        return not stamps or max(stamps) >= horizon

    return keep

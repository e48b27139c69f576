"""``miva-sync state show|reset|set``: look at a store's saved state and move it on purpose.

The state file is the record of every store; a database target (SQLite,
PostgreSQL) also keeps its own copy of the cursor, committed with its rows, and
that copy is authoritative for it (docs/design.md §6.4). So these commands act
on the target's copy too when one is named (``-o``, or the profile's ``output``).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from miva_sync.app.session import SANDBOX_STORE_KEY, waiting_line
from miva_sync.base.timespec import human_span, iso
from miva_sync.config import Settings
from miva_sync.errors import ConfigError, IncompleteError, UsageError
from miva_sync.state.record import (
    PullCursor,
    PullMode,
    StateRecord,
    copy_record,
    new_record,
)
from miva_sync.store.orders import CURSOR_FIELDS
from miva_sync.sync.plan import restarted

# order numbers of the acknowledgement journal that state show lists
SHOWN_PENDING = 10


class StaleStateError(IncompleteError):
    """``state show --max-age``: the last successful run is too old (exit 9)."""


@dataclass(frozen=True)
class StoreRef:
    """Which record: the state file, the key, and the database target (if any)."""

    settings: Settings
    key: str
    target: str | None


def store_ref(settings: Settings, *, sandbox: bool, output: str | None) -> StoreRef:
    """The store's state key, without connecting (so a token is not needed)."""
    if sandbox:
        key = SANDBOX_STORE_KEY
    elif settings.profile or (settings.url and settings.store_code):
        key = settings.store_key
    else:
        raise ConfigError(
            "which store? set MIVA_URL and MIVA_STORE_CODE, pass --profile NAME, "
            "or --sandbox for the demo store"
        )
    return StoreRef(settings, key, output if output and output != "-" else None)


@contextlib.contextmanager
def _target(ref: StoreRef) -> Iterator[Any]:
    """The database target that keeps its own cursor copy, else None."""
    if ref.target is None or not _is_database(ref.target):
        # only databases keep a cursor copy; opening a file or folder target
        # here would create it as a side effect of merely looking
        yield None
        return
    from miva_sync.sinks import open_sink

    sink = open_sink(ref.target)
    try:
        yield sink if sink.keeps_checkpoint else None
    finally:
        sink.close()


def _is_database(target: str) -> bool:
    from miva_sync.sinks import is_postgres

    if is_postgres(target):
        return True
    if target.startswith("sqlite:///"):
        from miva_sync.sinks.sqlite import sqlite_path

        return sqlite_path(target).exists()
    return False


def load(ref: StoreRef) -> tuple[StateRecord | None, str]:
    """The record a pull would start from, and where it came from."""
    from miva_sync.state.file import StateStore

    record = StateStore(ref.settings.state_path()).get(ref.key)
    with _target(ref) as sink:
        if sink is not None:
            own = sink.load_checkpoint(ref.key)
            if own is not None:
                return with_last_run(own, record), sink.description
    return record, str(ref.settings.state_path())


def with_last_run(record: StateRecord, other: StateRecord | None) -> StateRecord:
    """``record`` carrying the newer ``last_run`` of the two.

    A database's cursor copy is committed with its last page, before the run
    ends, so the run's ``last_run`` may be only in the state file.
    """
    theirs = other.get("last_run") if other else None
    ours = record.get("last_run")
    if isinstance(theirs, dict) and (
        not isinstance(ours, dict)
        or theirs.get("finished_at", 0) > ours.get("finished_at", 0)
    ):
        return {**record, "last_run": theirs}
    return record


def view(record: StateRecord, key: str, source: str, *, now: float) -> dict[str, Any]:
    """The ``state show --json`` object (documented in the README)."""
    mode = record.get("mode")
    cursors = {}
    # every kind of cursor, each key shown as saved
    saved: Mapping[str, Any] = record.get("cursors", {})
    for name, cursor in saved.items():
        shown: dict[str, Any] = {"field": CURSOR_FIELDS.get(name)}
        for point in ("start", "watermark"):
            value = cursor.get(point)
            shown[point] = value
            # order numbers are not times; only time cursors get an ISO form
            shown[f"{point}_iso"] = (
                iso(value)
                if value is not None and name in ("date", "updated")
                else None
            )
        shown.update({k: v for k, v in cursor.items() if k not in shown})
        if name == "queue":
            shown.update(_queue_silence(cursor, now))
        cursors[name] = shown
    held = []
    for order_id, entry in sorted(
        record.get("held", {}).items(), key=lambda item: int(item[0])
    ):
        since = entry.get("since")
        held.append(
            {
                "id": int(order_id),
                "since": since,
                "since_iso": iso(since),
                "age_seconds": int(now - since) if since is not None else None,
                "orderdate": entry.get("orderdate"),
            }
        )
    last = record.get("last_run")
    last_run = None
    if isinstance(last, dict):
        finished = last.get("finished_at")
        last_run = {
            **last,
            "finished_at_iso": iso(finished),
            "age_seconds": int(now - finished) if finished is not None else None,
        }
    active = cursors.get(mode or "", {})
    return {
        "store": key,
        "source": source,
        "mode": mode,
        "watermark": active.get("watermark"),
        "watermark_iso": active.get("watermark_iso"),
        "cursors": cursors,
        "dedupe_size": len(record.get("dedupe", {})),
        "held": held,
        "last_run": last_run,
        "updated_at": record.get("updated_at"),
    }


def _queue_silence(cursor: dict[str, Any], now: float) -> dict[str, Any]:
    """How long the queue has delivered no order: since its last delivery, or
    since its first run if it never delivered (None: a state file from before
    these were recorded)."""
    delivered = cursor.get("delivered_at")
    first = cursor.get("first_run_at")
    since = delivered if delivered is not None else first
    return {
        "delivered_at_iso": iso(delivered) if delivered is not None else None,
        "first_run_at_iso": iso(first) if first is not None else None,
        "silent_seconds": int(now - since) if since is not None else None,
    }


def render(data: dict[str, Any]) -> list[str]:
    """``state show`` for people: one fact per line, as ``key  value`` rows
    whose values all start in one column, whatever the row (store, cursors,
    the queue's journal, held orders, the last run)."""
    return align(rows(data))


def align(pairs: list[tuple[str, str]]) -> list[str]:
    """``key  value`` lines, every value starting in the same column (two
    spaces after the longest key); a row without a value is its key alone."""
    width = max((len(key) for key, _ in pairs), default=0) + 2
    return [f"{key:<{width}}{value}".rstrip() if value else key for key, value in pairs]


def rows(data: dict[str, Any]) -> list[tuple[str, str]]:
    """What :func:`render` shows, as (key, value) pairs (nested keys indented)."""
    out = [
        ("store", str(data["store"])),
        ("from", str(data["source"])),
        ("active mode", str(data["mode"])),
    ]
    for name, cursor in data["cursors"].items():
        out.append((f"cursor {name}", "active" if name == data["mode"] else "inactive"))
        if name == "queue":
            out.extend(_queue_rows(cursor))
            continue
        for point in ("start", "watermark"):
            value = cursor.get(point)
            if value is None:
                shown = "- (none yet)"
            elif cursor.get(f"{point}_iso"):
                shown = f"{cursor[point + '_iso']}  ({value})"
            else:
                shown = f"#{value}"
            out.append((f"  {point}", shown))
        if "lookback" in cursor:
            out.append(("  lookback", human_span(int(cursor["lookback"]))))
        if "overlap" in cursor:
            out.append(("  overlap", str(cursor["overlap"])))
    out.append(("dedupe", f"{data['dedupe_size']} order versions remembered"))
    held = data["held"]
    out.append(("held", f"{len(held)} unpaid order(s)"))
    out.extend(
        (
            f"  #{h['id']}",
            f"held since {h['since_iso']} ({_age(h['age_seconds'])} ago)",
        )
        for h in held
    )
    last = data["last_run"]
    if last is None:
        out.append(("last run", "none recorded"))
    else:
        counts = ", ".join(
            f"{last[k]} {k}"
            for k in ("emitted", "unchanged", "held", "released")
            if last.get(k) is not None
        )
        took = f" in {last['seconds']:.1f}s" if last.get("seconds") is not None else ""
        out.append(
            (
                "last run",
                f"{last['finished_at_iso']} ({_age(last['age_seconds'])} ago), "
                f"{last.get('mode', '?')} mode: {counts or 'no counts'}{took}",
            )
        )
    return out


def _queue_rows(cursor: dict[str, Any]) -> list[tuple[str, str]]:
    """A queue cursor's rows: the code, how it acknowledges, when it last
    delivered, and its acknowledgement journal."""
    out = []
    if "queue_code" in cursor:
        out.append(("  queue code", str(cursor["queue_code"])))
    if "ack" in cursor:
        ack = cursor["ack"] is not False
        out.append(
            ("  acknowledge", "yes, after a durable write" if ack else "no (--no-ack)")
        )
    if cursor.get("received_queue"):
        out.append(("  received queue", str(cursor["received_queue"])))
    if cursor.get("drained_at") is not None:
        out.append(("  drained at", iso(cursor["drained_at"])))
    if cursor.get("delivered_at") is not None:
        out.append(
            (
                "  delivered",
                f"{cursor['delivered_at_iso']} ({_age(cursor['silent_seconds'])} ago)",
            )
        )
    elif cursor.get("first_run_at") is not None:
        out.append(
            (
                "  delivered",
                f"never, in {_age(cursor['silent_seconds'])} since the first run "
                f"({cursor['first_run_at_iso']})",
            )
        )
    pending = cursor.get("pending_ack") or []
    shown = f"{len(pending)} to acknowledge"
    if pending:
        ids = ", ".join(f"#{i}" for i in pending[:SHOWN_PENDING])
        more = (
            f" … {len(pending) - SHOWN_PENDING} more"
            if len(pending) > SHOWN_PENDING
            else ""
        )
        shown += f" ({ids}{more})"
    out.append(("  pending ack", shown))
    return out


def _age(seconds: int | None) -> str:
    if seconds is None:
        return "?"
    s = max(0, seconds)
    if s >= 86400:
        return f"{s // 86400}d{s % 86400 // 3600}h"
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60}m"
    if s >= 60:
        return f"{s // 60}m"
    return f"{s}s"


def check_age(data: dict[str, Any], max_age: int) -> None:
    """Raise :class:`StaleStateError` when the last successful run is older than
    max_age, or the active queue has delivered no order for longer."""
    last = data["last_run"]
    if last is None or last.get("age_seconds") is None:
        raise StaleStateError(
            f"no successful run recorded for {data['store']} (--max-age "
            f"{human_span(max_age)}): run a pull, then check its cron line and logs"
        )
    if last["age_seconds"] > max_age:
        raise StaleStateError(
            f"the last successful run of {data['store']} finished "
            f"{_age(last['age_seconds'])} ago ({last['finished_at_iso']}), more than "
            f"--max-age {human_span(max_age)}: check the cron job or timer and its "
            "log (journalctl -u miva-sync, or the cron mail)"
        )
    _check_queue_silence(data, max_age)


def _check_queue_silence(data: dict[str, Any], max_age: int) -> None:
    """A queue that runs on time but delivers nothing is just as stale: queue
    codes are the store's own and case-sensitive, and a mistyped code may
    answer like an empty queue (docs/miva-api.md §6.1)."""
    cursor = data["cursors"].get("queue") if data["mode"] == "queue" else None
    silent = (cursor or {}).get("silent_seconds")
    if cursor is None or silent is None or silent <= max_age:
        return
    code = cursor.get("queue_code")
    if cursor.get("delivered_at") is None:
        what = (
            f"has delivered no order since its first run {_age(silent)} ago "
            f"({cursor['first_run_at_iso']})"
        )
    else:
        what = (
            f"last delivered an order {_age(silent)} ago ({cursor['delivered_at_iso']})"
        )
    raise StaleStateError(
        f"queue {code!r} of {data['store']} {what}, more than --max-age "
        f"{human_span(max_age)}: check the queue code (the store's own, "
        "case-sensitive) under Order Workflows in the Miva admin, or with "
        f"'miva-sync check --queue {code}'; a store this quiet needs a longer "
        "--max-age"
    )


def no_state(key: str) -> UsageError:
    return UsageError(
        f"no saved state for store {key!r}: the first pull creates it "
        "(miva-sync pull --since 7d), or set a start with 'miva-sync state set'"
    )


@dataclass(frozen=True)
class Change:
    """What ``state set`` did: the mode and its cursor before and after."""

    mode: PullMode
    before: PullCursor | None
    after: PullCursor
    record: StateRecord


def set_cursor(
    record: StateRecord | None,
    *,
    order: int | None = None,
    since: int | None = None,
    updated: bool = False,
    forget_seen: bool = False,
) -> Change:
    """Restart a mode's cursor at ``order`` or ``since`` and make that mode active.

    The same as ``pull --from-order``/``--since`` does at the start of a run:
    the next pull reads from exactly there (its lookback or overlap apply from
    then on). The dedupe window is kept unless ``forget_seen``, so a rewind does
    not re-emit unchanged orders unless asked to.
    """
    if (order is None) == (since is None):
        raise UsageError("give one of --order N or --since WHEN")
    if updated and since is None:
        raise UsageError("--updated goes with --since")
    mode: PullMode = (
        "number" if order is not None else ("updated" if updated else "date")
    )
    value = order if order is not None else since
    assert value is not None  # noqa: S101 - checked above
    new = copy_record(record) if record else new_record(mode)
    before = new["cursors"].get(mode)
    cursor = restarted(before, int(value))
    new["cursors"][mode] = cursor
    new["mode"] = mode
    if forget_seen:
        new["dedupe"] = {}
    return Change(mode, copy.deepcopy(before), cursor, new)


def describe_point(mode: str, cursor: Mapping[str, Any] | None) -> str:
    if not cursor:
        return "none"
    value = cursor.get("watermark")
    if value is None:
        value = cursor.get("start")
    if value is None:
        return "none"
    return f"#{value}" if mode == "number" else f"{iso(value)} ({value})"


def apply(
    ref: StoreRef,
    change_of: Callable[[StateRecord | None], Change],
    *,
    wait: bool | float = False,
) -> Change:
    """Under the store's run lock: read, change, write the state file and the
    target copy. ``wait``: for the lock, as ``pull --wait`` (app/session.py)."""
    from miva_sync.state.file import StateStore

    state = StateStore(ref.settings.state_path())
    held = state.run_lock(ref.key, wait=wait, on_wait=waiting_line)
    with held, _target(ref) as sink:
        record = state.get(ref.key)
        if sink is not None:
            own = sink.load_checkpoint(ref.key)
            record = with_last_run(own, record) if own is not None else record
        change: Change = change_of(record)
        state.put(ref.key, change.record)
        if sink is not None:
            sink.commit(ref.key, change.record)
    return change


def reset(
    ref: StoreRef, *, wait: bool | float = False
) -> tuple[StateRecord | None, str | None]:
    """Delete the store's record under its run lock; return it and a note for a database."""
    from miva_sync.state.file import StateStore

    state = StateStore(ref.settings.state_path())
    with state.run_lock(ref.key, wait=wait, on_wait=waiting_line):
        record = state.get(ref.key)
        state.delete(ref.key)
    note = None
    with _target(ref) as sink:
        if sink is not None and sink.load_checkpoint(ref.key) is not None:
            note = (
                f"{sink.description} keeps its own cursor for this store and a pull "
                "into it resumes from there; to start that over too, delete the "
                f"row with store_key {ref.key!r} from its sync_state table"
            )
    return record, note

"""``miva-sync verify``: prove an output holds every order of a range, and repair it.

The store knows which orders exist and their ``dt_updated``; the output knows
what it holds. Verify lists the store's range cheaply (base columns only,
pages of 1000, through the tie-safe keyset pager), reads the output back
(:mod:`miva_sync.sinks.readback`) and compares id by id:

* **missing**: in the store's range, not in the output;
* **stale**: in the output with an older ``dt_updated`` than the store's.
  Date and number modes never re-pull updated orders (Miva's documented
  limit), so there a stale version is reported apart and only counts as
  incomplete with ``--updated``;
* **extra**: in the output's copy of the range but no longer in the store
  (deleted there). Confirmed by id first, so an order that merely moved (an
  update during the listing) is never called extra. Reported, never removed:
  the output's copy is the only history left.

``--repair`` re-reads exactly the missing and stale orders by id (``id IN``,
100 per request) and writes them through the output's own newest-wins write
path, with no dedupe in between (a deleted row may still sit in the dedupe
window) and no checkpoint (the cursor is untouched), under the run lock.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from miva_sync.base.timespec import iso
from miva_sync.errors import IncompleteError, UsageError
from miva_sync.sinks.readback import (
    Stored,
    TargetContents,
    check_target,
    read_target,
)
from miva_sync.store.orders import CURSOR_FIELDS, cursor_value, order_id
from miva_sync.store.query import MAX_PAGE_SIZE, ListQuery, chunked
from miva_sync.sync.held import fetcher
from miva_sync.sync.pager import iter_chunks

if TYPE_CHECKING:
    from miva_sync.app.requests import GlobalOptions, VerifyRequest
    from miva_sync.console import ConsoleReporter
    from miva_sync.sinks.base import Sink
    from miva_sync.store.client import MivaClient
    from miva_sync.store.urls import StoreIdentity

SHOWN_IDS = 20  # ids listed in a message; --json has them all


@dataclass(frozen=True)
class Range:
    """Which orders must be in the output: ``lo <= field <= hi``."""

    mode: str  # date, updated or number (as in pull)
    lo: int
    hi: int | None

    @property
    def field(self) -> str:
        return CURSOR_FIELDS[self.mode]

    @property
    def stale_counts(self) -> bool:
        """Only updated mode promises the latest version (docs/design.md §5.1)."""
        return self.mode == "updated"

    def value(self, oid: int, stored: Stored) -> int | None:
        """An order's value of the range field, as ``stored`` says."""
        if self.mode == "number":
            return oid
        return stored.orderdate if self.mode == "date" else stored.dt_updated

    def holds(self, value: int | None) -> bool:
        return (
            value is not None
            and self.lo <= value
            and (self.hi is None or value <= self.hi)
        )

    def day(self, oid: int, stored: Stored) -> str:
        """The UTC day an order is counted on: its range time (orderdate by number)."""
        when = stored.orderdate if self.mode == "number" else self.value(oid, stored)
        return "-" if when is None else time.strftime("%Y-%m-%d", time.gmtime(when))

    def describe(self) -> str:
        if self.mode == "number":
            top = "" if self.hi is None else f" <= {self.hi}"
            return f"id >= {self.lo}{top}"
        return f"{self.field} {iso(self.lo)} .. {iso(self.hi)}"


def range_from(
    *,
    since: int | None,
    until: int | None,
    updated: bool,
    from_order: int | None,
    to_order: int | None,
    now: int,
) -> Range:
    """The range of ``verify``'s options; time ranges end at ``now`` by default.

    Pinning the end keeps both sides comparing the same set while pulls go on.
    """
    if since is not None and from_order is not None:
        raise UsageError("use either --since or --from-order, not both")
    if from_order is not None:
        if until is not None or updated:
            raise UsageError("--until and --updated go with --since, not --from-order")
        if to_order is not None and to_order < from_order:
            raise UsageError("--to-order is below --from-order: the range is empty")
        return Range("number", from_order, to_order)
    if since is None:
        raise UsageError("verify needs a range: --since WHEN or --from-order N")
    if to_order is not None:
        raise UsageError("--to-order goes with --from-order")
    hi = now if until is None else until
    if hi < since:
        raise UsageError(f"the range ends ({iso(hi)}) before it starts ({iso(since)})")
    return Range("updated" if updated else "date", since, hi)


@dataclass(frozen=True)
class DayCount:
    """One UTC day of the comparison."""

    day: str
    store: int
    missing: int
    stale: int
    extra: int

    @property
    def clean(self) -> bool:
        return not (self.missing or self.stale or self.extra)


@dataclass
class Report:
    """The outcome of one comparison (``--json`` prints :meth:`as_json`)."""

    range: Range
    target: str
    store_orders: int
    target_orders: int
    missing: list[int]
    stale: list[int]
    extra: list[int]
    held: list[int]
    unreadable: int
    days: list[DayCount]
    requests: int
    fmt: str = "jsonl"
    repaired: list[int] | None = None

    @property
    def complete(self) -> bool:
        return not self.missing and not (self.stale and self.range.stale_counts)

    def as_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "complete": self.complete,
            "mode": self.range.mode,
            "field": self.range.field,
            "from": self.range.lo,
            "to": self.range.hi,
            "target": self.target,
            "store_orders": self.store_orders,
            "target_orders": self.target_orders,
            "missing": self.missing,
            "stale": self.stale,
            "stale_counts": self.range.stale_counts,
            "extra": self.extra,
            "held": self.held,
            "unreadable": self.unreadable,
            "days": [vars(d) for d in self.days],
            "requests": self.requests,
            # what raise_if_incomplete ends the command with
            "exit_status": 0 if self.complete else int(IncompleteError.exit_code),
        }
        if self.repaired is not None:
            out["repaired"] = self.repaired
        return out

    def raise_if_incomplete(self) -> None:
        """Exit 9 (docs/design.md §7) unless every order of the range is there."""
        if self.complete:
            return
        parts = [f"{len(self.missing)} missing"]
        if self.stale and self.range.stale_counts:
            parts.append(f"{len(self.stale)} stale")
        ids = sorted({*self.missing, *(self.stale if self.range.stale_counts else [])})
        hint = (
            "still incomplete after the repair"
            if self.repaired is not None
            else "add --repair to re-pull them"
        )
        raise IncompleteError(
            f"{self.target} is incomplete: {', '.join(parts)} ({_ids(ids)}); {hint}"
        )


def list_store(client: MivaClient, rng: Range) -> dict[int, Stored]:
    """Every order of the range, from base columns only, in pages of 1000."""
    base = ListQuery(count=MAX_PAGE_SIZE)  # no on-demand columns: cheap rows
    listed: dict[int, Stored] = {}
    for chunk in iter_chunks(client.list_orders, base, rng.field, rng.lo, rng.hi):
        for order in chunk.orders:
            listed[order_id(order)] = Stored(
                cursor_value(order, "orderdate"), cursor_value(order, "dt_updated")
            )
    return listed


def compare(
    rng: Range,
    listed: dict[int, Stored],
    contents: TargetContents,
    held: Iterable[int] = (),
) -> tuple[list[int], list[int], list[int], list[int]]:
    """(missing, stale, held, extra candidates), each sorted.

    Held orders (unpaid, ``--require-payment``) are absent on purpose: they
    are reported apart, not as missing. Extra candidates still need
    :func:`confirm_gone`.
    """
    on_hold = set(held)
    missing: list[int] = []
    stale: list[int] = []
    waiting: list[int] = []
    for oid, theirs in listed.items():
        ours = contents.orders.get(oid)
        if ours is None:
            (waiting if oid in on_hold else missing).append(oid)
        elif (
            ours.dt_updated is not None
            and theirs.dt_updated is not None
            and ours.dt_updated < theirs.dt_updated
        ):
            stale.append(oid)
    candidates = [
        oid
        for oid, ours in contents.orders.items()
        if oid not in listed and rng.holds(rng.value(oid, ours))
    ]
    return sorted(missing), sorted(stale), sorted(waiting), sorted(candidates)


def confirm_gone(client: MivaClient, candidates: list[int]) -> list[int]:
    """The candidates the store really no longer has (read by id, 100 a request)."""
    if not candidates:
        return []
    found = {order_id(o) for o in fetcher(client, ListQuery())(candidates)}
    return [oid for oid in candidates if oid not in found]


def check(
    client: MivaClient, target: str, rng: Range, store_key: str, held: Iterable[int]
) -> Report:
    """Compare the store's range with what ``target`` holds."""
    sent = client.requests_sent
    # the store first: an order a pull writes meanwhile is then found, not missing
    listed = list_store(client, rng)
    contents = read_target(target, store_key)
    if contents.checkpoint is not None:
        # a database's own cursor is authoritative for it (docs/design.md §6.4)
        held = _held_ids(contents.checkpoint)
    missing, stale, waiting, candidates = compare(rng, listed, contents, held)
    extra = confirm_gone(client, candidates)
    in_range = sum(
        1 for oid, ours in contents.orders.items() if rng.holds(rng.value(oid, ours))
    )
    return Report(
        range=rng,
        target=contents.description,
        store_orders=len(listed),
        target_orders=in_range,
        missing=missing,
        stale=stale,
        extra=extra,
        held=waiting,
        unreadable=contents.unreadable,
        days=_days(rng, listed, contents, missing, stale, extra),
        requests=client.requests_sent - sent,
        fmt=contents.fmt,
    )


def repair(
    client: MivaClient,
    sink: Sink,
    ids: list[int],
    base: ListQuery,
    store_key: str,
) -> list[int]:
    """Re-read ``ids`` and write them into ``sink``; the ids written.

    One commit per 100, with no checkpoint: the cursor is not touched, and
    what is repaired stays repaired if a later batch fails.
    """
    fetch = fetcher(client, base)  # the columns a pull asks for
    written: list[int] = []
    for batch in chunked(sorted(ids)):
        orders = fetch(batch)
        if orders:
            sink.write(orders)
            sink.commit(store_key, None)
            written.extend(order_id(o) for o in orders)
    return sorted(written)


def run_verify(options: GlobalOptions, request: VerifyRequest) -> Report:
    """``miva-sync verify``: compare, optionally repair and compare again, render."""
    from miva_sync.app.session import base_query, reporter, store_session
    from miva_sync.sinks import check_store

    rng = range_from(
        since=request.since,
        until=request.until,
        updated=request.updated,
        from_order=request.from_order,
        to_order=request.to_order,
        now=int(time.time()),
    )
    target = request.output
    check_target(target)  # a typo fails before any request is sent
    # parsed (a typo refused) before any request; only a repair uses it
    base = base_query(request.columns, page_size=1)
    console = reporter(options, progress=False)
    # only a repair writes, so only a repair takes the run lock
    with store_session(
        options, request.use_sandbox, lock=request.repair, wait=request.wait
    ) as session:
        key, client = session.key, session.client
        # another store's database: refused before the store is listed
        check_store(target, session.identity)
        held = _held_ids(session.state.get(key))
        if not request.repair:
            report = check(client, target, rng, key, held)
        else:
            report = _check_and_repair(
                client, target, rng, key, held, base, request.wait, session.identity
            )
    render(report, console, table=not request.as_json)
    return report


def _check_and_repair(
    client: MivaClient,
    target: str,
    rng: Range,
    key: str,
    held: list[int],
    base: ListQuery,
    wait: bool | float,
    store: StoreIdentity,
) -> Report:
    from miva_sync.sinks import open_sink

    sent = client.requests_sent
    first = check(client, target, rng, key, held)
    wanted = sorted({*first.missing, *first.stale})
    repaired: list[int] = []
    if wanted:
        sink = open_sink(target, source="pull", fmt=first.fmt, wait=wait, store=store)
        try:
            repaired = repair(client, sink, wanted, base, key)
        finally:
            sink.close()
    report = check(client, target, rng, key, held)
    report.repaired = repaired
    report.requests = client.requests_sent - sent  # both checks and the repair
    return report


def render(report: Report, reporter: ConsoleReporter, *, table: bool) -> None:
    """The per-day table (days with a gap, and the total) and notes, on stderr.

    No table when no day differs: the closing line says it all, and an empty
    table with only its total row would say nothing more."""
    rng = report.range
    if table and not reporter.quiet and any(not day.clean for day in report.days):
        _table(report)
    if report.repaired is not None:
        reporter.info(
            f"repaired {len(report.repaired)} orders"
            + (f" ({_ids(report.repaired)})" if report.repaired else "")
            + "; saved state untouched"
        )
    if report.stale and not rng.stale_counts:
        reporter.warn(
            f"{len(report.stale)} orders are in the target in an older version than "
            f"the store's ({_ids(report.stale)}): {rng.mode} mode does not re-pull "
            "updated orders (the documented limit); --updated counts them, "
            "--repair refreshes them"
        )
    if report.extra:
        reporter.warn(
            f"{len(report.extra)} orders in the target are no longer in the store "
            f"({_ids(report.extra)}): deleted there? verify leaves them alone"
        )
    if report.held:
        reporter.info(
            f"{len(report.held)} orders are held unpaid (--require-payment) and "
            f"not counted as missing ({_ids(report.held)})"
        )
    if report.unreadable:
        reporter.warn(
            f"{report.unreadable} lines or files of the target could not be read "
            "as orders; their orders count as absent"
        )
    verdict = "complete" if report.complete else "INCOMPLETE"
    reporter.info(
        f"{report.target}: {verdict} for {rng.describe()}: "
        f"{report.store_orders} orders in the store, {len(report.missing)} missing, "
        f"{len(report.stale)} stale, {len(report.extra)} extra; "
        f"{report.requests} requests"
    )


def _table(report: Report) -> None:
    from miva_sync import console as ui

    columns = ("day (UTC)", "in store", "missing", "stale", "extra")
    rows = [
        (d.day, str(d.store), str(d.missing), str(d.stale), str(d.extra))
        for d in report.days
        if not d.clean
    ]
    rows.append(
        (
            "total",
            str(report.store_orders),
            str(len(report.missing)),
            str(len(report.stale)),
            str(len(report.extra)),
        )
    )
    ui.print_table(
        f"verify {report.target}: days with a difference",
        columns,
        rows,
        styles=[None] * (len(rows) - 1) + ["bold"],
    )


def _days(
    rng: Range,
    listed: dict[int, Stored],
    contents: TargetContents,
    missing: list[int],
    stale: list[int],
    extra: list[int],
) -> list[DayCount]:
    store = Counter(rng.day(oid, s) for oid, s in listed.items())
    gaps = Counter(rng.day(oid, listed[oid]) for oid in missing)
    old = Counter(rng.day(oid, listed[oid]) for oid in stale)
    gone = Counter(rng.day(oid, contents.orders[oid]) for oid in extra)
    days = sorted({*store, *gone})
    return [DayCount(d, store[d], gaps[d], old[d], gone[d]) for d in days]


def _held_ids(record: Mapping[str, Any] | None) -> list[int]:
    # the state file's record, or a database's read unchecked (sinks/readback.py)
    held = (record.get("held") if record else None) or {}
    return [int(k) for k in held if str(k).isdigit()]


def _ids(ids: list[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:SHOWN_IDS])
    return shown + (f" … {len(ids) - SHOWN_IDS} more" if len(ids) > SHOWN_IDS else "")

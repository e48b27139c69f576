"""Queue mode: pull an order-workflow queue without losing an order in transit.

With acknowledgement (the default), per page::

    read the front (Offset 0) -> write -> sink.commit -> journal the ids (state)
    -> OrderList_Acknowledge in batches of 100 -> re-read those ids by id

so at the moment an acknowledgement reaches the store every id in it is already
durable in the output, and a run that dies in between acknowledges the journal
first next time. The re-read closes the download-to-acknowledge race: an order
updated after we read it can leave the queue with the acknowledgement, so its
newer version is emitted from the re-read.

Without acknowledgement a download moves the orders, so the front is always
read, and a download that fails may have moved a page we never saw: recover it
from the received queue before reading on, or stop and say so (exit 6).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any, Protocol

from miva_sync.base.timespec import human_span, iso
from miva_sync.errors import (
    AckError,
    ApiError,
    AuthError,
    InterruptedRunError,
    TransientError,
    UntrustedAnswerError,
)
from miva_sync.sinks import identity
from miva_sync.sinks.base import Sink
from miva_sync.sinks.receipts import receipt, uncommitted
from miva_sync.state.file import StateStore
from miva_sync.state.record import QueueCursor
from miva_sync.store.client import QUEUE_ORDERS, MivaClient, Page
from miva_sync.store.orders import fingerprint, order_id, version_key
from miva_sync.store.query import MAX_IN_LIST, Condition, ListQuery, chunked
from miva_sync.sync.dedupe import DedupeWindow
from miva_sync.sync.held import DEFAULT_HOLD_FOR, HeldOrders, fetcher
from miva_sync.sync.pull import last_run
from miva_sync.sync.queue_recovery import scan_received
from miva_sync.sync.queue_state import QueuePlan, queue_keep
from miva_sync.sync.summary import RunSummary, Tally

ACK_BATCH = 100  # MivaAccess GUARD-2666: bigger acknowledgements time out at gateways
MAX_DOWNLOAD_FAILURES = 3  # failed no-ack downloads (each recovered) before giving up
BACKOFF = 1.0  # seconds before the 2nd retry of a failed no-ack download; doubles


class QueueReporter(Protocol):
    def progress(self, done: int, total: int | None) -> None: ...

    def warn(self, message: str) -> None: ...

    def info(self, message: str) -> None: ...

    # a warning that -q does not silence: for what cron must see
    def alarm(self, message: str) -> None: ...


class UnrecoveredOrdersError(TransientError):
    """A no-ack download was lost and its orders could not be recovered (exit 6)."""


# (id, version) -> how often this run took it out of the queue (acknowledged
# it, or downloaded it without acknowledgement)
Taken = Counter[tuple[int, int | str]]


def kept_after_taken_twice(taken: Taken, orders: list[dict[str, Any]]) -> bool:
    """Is every order of this front page one the run took out twice already,
    in this version: a queue that does not let its orders go?

    Once is not enough: dt_updated has whole seconds, so an order updated in
    the second it was taken out re-enters the queue in the version it left
    with. It is taken once more (its new content written, if any; see
    :meth:`QueueRun._changed`); only a queue that keeps it again is stuck.
    """
    return all(taken[(order_id(o), version_key(o))] >= 2 for o in orders)


@dataclass
class QueueRun:
    """Everything one queue pull needs; :meth:`run` does it."""

    client: MivaClient
    sink: Sink
    plan: QueuePlan
    store_key: str
    state: StateStore
    reporter: QueueReporter
    base_query: ListQuery
    emit_unchanged: bool = False
    # no-ack: a client that never retries a download on its own, because a retry
    # after a lost answer would read the next page and hide the lost one
    download_client: MivaClient | None = None
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    require_payment: bool = False
    hold_for: int = DEFAULT_HOLD_FOR
    # a Singer tap (app/tap.py): acknowledge on the next run. Only the runner
    # knows when its target has stored the records, and it says so by handing
    # back the STATE that carries the journal; this run journals what it wrote
    # and steps over it in the queue, as over held orders
    defer_ack: bool = False
    dedupe: DedupeWindow = field(init=False)
    held: HeldOrders = field(init=False)
    _written: dict[int, str] = field(init=False, default_factory=dict)  # fingerprints
    # orders a killed run wrote but never acknowledged: they come back from the
    # queue, so their dedupe entries must outlive any age limit until then
    _replayed: set[int] = field(init=False, default_factory=set)
    _result: Tally = field(init=False, default_factory=Tally)
    # orders written and covered by a finished checkpoint (what an interrupted
    # run says it committed)
    _orders_committed: int = field(init=False, default=0)
    _began: bool = field(init=False, default=False)  # run() has started
    # the store answered a queue read out of id order this run (told once)
    _unsorted: bool = field(init=False, default=False)
    _pruned: bool = field(init=False, default=False)  # the window, this run

    def __post_init__(self) -> None:
        self.dedupe = DedupeWindow(self.plan.record.get("dedupe"))
        # a page a killed run wrote to this same file but never checkpointed
        for order in uncommitted(self.sink, self.plan.record.get("output")):
            self.dedupe.add(order)
            self._replayed.add(order_id(order))
        if self.plan.ack and self._replayed:
            # written but never acknowledged: journal them, so they are
            # acknowledged first instead of waiting to be delivered again
            self.cursor["pending_ack"] = list(
                dict.fromkeys([*self.plan.pending, *sorted(self._replayed)])
            )
        self.held = HeldOrders.from_record(
            self.plan.record,
            require_payment=self.require_payment,
            hold_for=self.hold_for,
        )

    @property
    def cursor(self) -> QueueCursor:
        return self.plan.cursor

    # -- entry points ------------------------------------------------------------

    def preview(self) -> dict[str, Any]:
        """--dry-run in acknowledgement mode: the queue's size; nothing written or acked."""
        page = self.client.queue_orders(
            self.plan.queue_code, self.base_query.sorted_by("id").page(1)
        )
        return {  # machine values: app/preview.py renders them for people
            "mode": "queue",
            "queue": self.plan.queue_code,
            "ack": self.plan.ack,
            "columns": list(self.base_query.columns),
            "page_size": self.base_query.count,
            "total_count": page.total_count,
            "pending_ack": len(self.plan.pending),
        }

    def run(self) -> RunSummary:
        try:
            return self._run()
        except KeyboardInterrupt:
            raise InterruptedRunError.after(self._orders_committed) from None

    def _run(self) -> RunSummary:
        started = time.monotonic()
        self._began = True
        # when this queue was first read: the "never delivered" alarm counts from it
        self.cursor.setdefault("first_run_at", int(self.clock()))
        clients = {id(c): c for c in (self.client, self.download_client) if c}
        before = sum(c.requests_sent for c in clients.values())
        retries_before = sum(c.retries for c in clients.values())
        # the mode and queue claim nothing about data: save them at once, with
        # where the output file ends now, so a killed run's pages can be replayed
        # (replayed orders are saved with it: the receipt never moves past them).
        # The replayed lines were fsynced as they were read back, so this write
        # also makes their acknowledgement journal durable before any ack.
        self.plan.record["output"] = receipt(self.sink)
        self.plan.record["target"] = identity(self.sink)
        self.plan.record["dedupe"] = self.dedupe.entries
        self.state.put(self.store_key, self.plan.record)
        try:
            if len(self.held):
                # held by earlier runs: emit those paid (or expired) since
                now = int(self.clock())
                ready = self.held.recheck(fetcher(self.client, self.base_query), now)
                if ready:
                    self._write(ready)
                self._checkpoint()
            if self.plan.pending:
                self._flush_journal()
            if self.plan.ack:
                self._run_ack()
            else:
                self._run_no_ack()
        finally:
            self._result.held = len(self.held)
            self._result.released = self.held.released
            self._result.seconds = time.monotonic() - started
            self._result.requests = (
                sum(c.requests_sent for c in clients.values()) - before
            )
            self._result.retries = (
                sum(c.retries for c in clients.values()) - retries_before
            )
        # only a run that got here succeeded: the staleness alarm reads this
        self.plan.record["last_run"] = last_run("queue", self._result, self.clock())
        self.state.put(self.store_key, self.plan.record)
        self._never_delivered()
        return self._summary()

    def _summary(self) -> RunSummary:
        return self._result.freeze(
            "queue",
            queue_code=self.plan.queue_code,
            ack=self.plan.ack,
            store=self.store_key,
        )

    def partial_summary(self) -> RunSummary | None:
        """After a failed :meth:`run`: what it wrote, acknowledged and counted
        before it stopped (None: it never started)."""
        return self._summary() if self._began else None

    def _never_delivered(self) -> None:
        """Say so, even under -q, while the queue has never delivered an order.

        Queue codes are the store's own and case-sensitive, and a store may
        answer an unknown code with an empty list and ``success: 1``
        (docs/miva-api.md §6.1): every run would then report "0 orders" and
        exit 0 forever. ``state show --max-age`` alarms on the same fact.
        """
        if self.cursor.get("delivered_at") is not None:
            return
        first = self.cursor.get("first_run_at")
        since = (
            f"since it was first read {human_span(max(0, int(self.clock()) - first))} "
            f"ago ({iso(first)})"
            if isinstance(first, int)
            else "yet"
        )
        self._alarm(
            f"queue {self.plan.queue_code!r} has delivered no order {since}. Queue "
            "codes are the store's own and case-sensitive, and a mistyped code may "
            "answer like an empty queue: check the code under Order Workflows in "
            f"the Miva admin, or run 'miva-sync check --queue {self.plan.queue_code}'"
        )

    # -- with acknowledgement ------------------------------------------------------

    def _run_ack(self) -> None:
        acked: Taken = Counter()  # acknowledged by this run, by version
        skipped = 0  # held orders left in the queue, in front of the rest
        # the held orders stepped over, for checking the step: an order entering
        # the queue in front of them meanwhile pushes one onto a later page,
        # where it is counted (and stepped over) again
        stepped: dict[int, None] = {}
        while True:
            page = self._front(self.client, offset=skipped)
            self._check_order(page, stepped)
            self.plan.activate()  # the queue answered: active from the next commit
            if not page.orders:
                self._drained()
                return
            if kept_after_taken_twice(acked, page.orders):
                raise ApiError(
                    f"acknowledged orders are still in queue {self.plan.queue_code!r}: "
                    "the store does not move them out (is it the right queue, and "
                    "an acknowledgement queue?)",
                    request=QUEUE_ORDERS,
                )
            fresh, holding = self._admit(self._split(page.orders))
            if fresh:
                self._write(fresh)
            # a held order stays in the queue unacknowledged: later runs see it again
            skipped += len(holding)
            stepped.update(dict.fromkeys(order_id(o) for o in holding))
            ids = list(
                dict.fromkeys(order_id(o) for o in page.orders if o not in holding)
            )
            self.cursor["pending_ack"] = list(dict.fromkeys([*self.plan.pending, *ids]))
            # durable data first, then the journal, then the acknowledgement
            self._checkpoint()
            if self.defer_ack:
                # left queued until the next run acknowledges the journal
                skipped += len(ids)
                stepped.update(dict.fromkeys(ids))
                self._progress(page)
                continue
            self._acknowledge(ids, recheck=True)
            # held orders are not acknowledged: one pushed onto a later page (an
            # order entered the queue in front of it) is not "still queued"
            sent = set(ids)
            acked.update(
                {
                    (order_id(o), version_key(o))
                    for o in page.orders
                    if order_id(o) in sent
                }
            )
            self._progress(page)

    def _flush_journal(self) -> None:
        """Acknowledge what an earlier run wrote but could not acknowledge."""
        pending = self.plan.pending
        self.reporter.info(
            f"acknowledging {len(pending)} orders an earlier run wrote but did not "
            "acknowledge"
        )
        # re-checking membership reads the queue, which is harmless only when a
        # read does not move orders, i.e. in acknowledgement mode
        self._acknowledge(pending, recheck=self.plan.ack)

    def _acknowledge(self, ids: list[int], *, recheck: bool) -> None:
        for batch in chunked(ids, ACK_BATCH):
            try:
                self.client.acknowledge(batch, batch_size=ACK_BATCH)
            except AckError as err:
                # processed: 0 on a retried acknowledgement may mean the first
                # attempt went through and the orders already left the queue
                still = self._still_queued(batch) if recheck else []
                if still:
                    raise AckError(
                        f"{err}. {len(still)} of them are still queued; the next run "
                        "acknowledges them again (they are already written and will "
                        "not be emitted twice)",
                        order_ids=still,
                        http_status=err.http_status,
                        request=err.request,
                    ) from None
                self.reporter.info(
                    f"the store answered processed: 0 for {len(batch)} orders no "
                    "longer in the queue: an earlier attempt was acknowledged"
                )
            self._result.acknowledged += len(batch)
            done = set(batch)
            self.cursor["pending_ack"] = [i for i in self.plan.pending if i not in done]
            newer = self._reread(batch)
            if newer:
                self._write(newer)
                self._result.newer += len(newer)
            self._checkpoint()

    def _still_queued(self, batch: list[int]) -> list[int]:
        query = (
            ListQuery(count=max(MAX_IN_LIST, len(batch)))
            .where(Condition("id", "IN", batch))
            .sorted_by("id")  # one page holds them all; sorted like every queue read
        )
        page = self.client.queue_orders(self.plan.queue_code, query)
        wanted = set(batch)
        return sorted({order_id(o) for o in page.orders} & wanted)

    def _reread(self, batch: list[int]) -> list[dict[str, Any]]:
        """Versions of just-acknowledged orders newer than the ones written.

        An update between our download and the acknowledgement may leave the
        queue with the acknowledgement (the pessimistic reading of docs/miva-api.md
        §6.3); any update after it re-enters the queue. So this one read, after
        the acknowledgement, closes the gap.
        """
        fetch = fetcher(self.client, self.base_query)
        return [o for o in fetch(batch) if self._changed(o)]

    # -- without acknowledgement ---------------------------------------------------

    def _run_no_ack(self) -> None:
        if self.cursor.get("in_flight"):
            self._recover("the previous run stopped during a download")
        downloader = self.download_client or self.client
        downloaded: Taken = Counter()  # downloaded by this run, by version
        failures = 0
        while True:
            if not self.cursor.get("in_flight"):
                # journal the download before it happens: if this process dies
                # before the page is written, the next run recovers first
                self.cursor["in_flight"] = True
                self._checkpoint()
            try:
                page = self._front(downloader)
                # the front is read whatever the order: a warning at most
                self._check_order(page, {})
                self.plan.activate()  # the queue answered: active from the next commit
            except (ApiError, AuthError):
                # refused before anything moved: nothing to recover
                self.cursor["in_flight"] = False
                self._checkpoint()
                raise
            except TransientError as err:
                failures += 1
                self._recover(
                    f"a download from queue {self.plan.queue_code!r} failed ({err})"
                )
                if failures >= MAX_DOWNLOAD_FAILURES:
                    raise TransientError(
                        f"{failures} downloads from queue {self.plan.queue_code!r} "
                        "failed (each one recovered); try later",
                        request=err.request,
                    ) from None
                self.sleep(BACKOFF * (2 ** (failures - 1)) if failures > 1 else 0.0)
                continue
            if not page.orders:
                self.cursor["in_flight"] = False
                self._drained()
                return
            if kept_after_taken_twice(downloaded, page.orders):
                raise ApiError(
                    f"queue {self.plan.queue_code!r} kept its orders after they were "
                    "downloaded: it is an acknowledgement queue; run without --no-ack "
                    "(nothing was lost: the orders are written)",
                    request=QUEUE_ORDERS,
                )
            downloaded.update({(order_id(o), version_key(o)) for o in page.orders})
            # downloaded orders left the queue: a held one is tracked by id instead
            fresh, _holding = self._admit(self._split(page.orders))
            if fresh:
                self._write(fresh)
            # in_flight stays set: the next download follows at once
            self._checkpoint()
            self._progress(page)

    def _recover(self, reason: str) -> None:
        """Write what a lost download moved to the received queue, or stop (exit 6)."""
        received = self.plan.received_queue
        size = self.base_query.count
        if received is None:
            self.cursor["in_flight"] = False  # nothing a later run could do either
            self._checkpoint()
            raise UnrecoveredOrdersError(
                f"{reason}. The store may have moved up to {size} orders out of queue "
                f"{self.plan.queue_code!r} without miva-sync receiving them, and their "
                "ids cannot be known without a received queue: pass --received-queue "
                "CODE (the queue the workflow moves downloaded orders to), or look "
                "for orders missing from the output in that queue in the Miva admin"
            )
        try:
            found = scan_received(
                self.client,
                received,
                self.base_query,
                self.plan.recovery_floor,
                self._changed,
            )
        except TransientError as err:
            raise UnrecoveredOrdersError(
                f"{reason}; reading the received queue {received!r} to recover it "
                f"failed too ({err}). The next run recovers first"
            ) from None
        if found:
            self._write(found)
            self._result.recovered += len(found)
            ids = ", ".join(str(order_id(o)) for o in found[:50])
            more = f" and {len(found) - 50} more" if len(found) > 50 else ""
            self._warn(
                f"{reason}; recovered {len(found)} orders from the received queue "
                f"{received!r}: {ids}{more}"
            )
        else:
            self.reporter.info(
                f"{reason}; the received queue {received!r} holds nothing unwritten, "
                "so nothing was lost"
            )
        self.cursor["in_flight"] = False
        self._checkpoint()

    # -- shared steps ----------------------------------------------------------------

    def _front(self, client: MivaClient, offset: int = 0) -> Page:
        # Offset 0: acknowledged (or, without ack, downloaded) orders leave the
        # queue, so a growing offset would skip orders. Only held orders, which
        # stay unacknowledged at the front, are stepped over, and that is safe
        # only while the front is the lowest ids: hence Sort id, never the
        # store's undocumented default order (docs/miva-api.md §6.1).
        page = client.queue_orders(
            self.plan.queue_code,
            self.base_query.sorted_by("id").page(self.base_query.count, offset),
        )
        if page.orders:
            self.cursor["delivered_at"] = int(self.clock())
        return page

    def _check_order(self, page: Page, stepped: dict[int, None]) -> None:
        """Did the store honour Sort id? Refuse a step over held orders if not.

        A read at Offset 0 takes the front whatever its order: an unsorted page
        costs nothing there, so it is only reported. A read at Offset N steps
        over held orders, which is safe only if they are the lowest ids in the
        queue. With Sort id honoured, the page is ascending and every
        held order is below its first id, on it (an order that entered the
        queue meanwhile pushed it along) or beyond a full page. Otherwise the
        rows stepped over may be unread orders: stop before using any row of
        the page (exit 5). Those orders stay queued: nothing is lost.
        """
        ids = [order_id(o) for o in page.orders]
        ascending = all(a < b for a, b in pairwise(ids))
        if stepped and ids:
            full = len(ids) >= self.base_query.count
            seen = set(ids)
            misplaced = [
                h
                for h in stepped
                if not (h < ids[0] or h in seen or (full and h > ids[-1]))
            ]
            if not ascending or self._unsorted or misplaced:
                did = (
                    f"answered held order {misplaced[0]} out of id order"
                    if ascending and not self._unsorted
                    else "answered a page out of id order"
                )
                raise UntrustedAnswerError(
                    f"queue {self.plan.queue_code!r}: the store ignored Sort id (it "
                    f"{did}), so stepping over {len(stepped)} held unpaid orders "
                    "could skip orders; nothing of that page was written or "
                    "acknowledged and its orders stay queued. Way out: a --page-size "
                    "larger than the queue (up to 1000), so that nothing is stepped "
                    "over, or pull without --require-payment (docs/miva-api.md §6.1)",
                    request=QUEUE_ORDERS,
                )
        if not ascending and not self._unsorted:
            self._unsorted = True
            self._alarm(
                f"queue {self.plan.queue_code!r}: the store ignored Sort id on "
                "QueueOrderList_Load_Query (a page came back out of id order). "
                "Reading the front of the queue does not depend on the order, so "
                "nothing is lost, but held unpaid orders (--require-payment) cannot "
                "be stepped over safely on such a store (docs/miva-api.md §6.1)"
            )

    def _admit(
        self, orders: list[dict[str, Any]]
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Split into orders to write now and unpaid ones to hold."""
        now = int(self.clock())
        fresh: list[dict[str, Any]] = []
        holding: list[dict[str, Any]] = []
        for order in orders:
            (fresh if self.held.admit(order, now) else holding).append(order)
        while self.held.warnings:
            self._warn(self.held.warnings.pop(0))
        return fresh, holding

    def _split(self, orders: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The orders to emit; re-delivered unchanged ones are counted, not emitted."""
        fresh = []
        for order in orders:
            if not self.emit_unchanged and not self._changed(order):
                self._result.unchanged += 1
                continue
            fresh.append(order)
        return fresh

    def _changed(self, order: dict[str, Any]) -> bool:
        """Not yet written in this version.

        The version is (id, dt_updated), or the content fingerprint on stores
        without dt_updated. dt_updated has whole seconds, so for orders this run
        wrote, a different fingerprint under the same dt_updated counts as a
        change too. The fingerprint leaves out the workflow module's own custom
        fields: an acknowledgement that rewrites them (the re-read right after
        it sees that) is bookkeeping, not an update (store/orders.py).
        """
        if order not in self.dedupe:
            return True
        written = self._written.get(order_id(order))
        return written is not None and written != fingerprint(order)

    def _write(self, orders: list[dict[str, Any]]) -> None:
        self.sink.write(orders)
        self._result.wrote(orders, self.dedupe.knows)
        for order in orders:
            self.dedupe.add(order)
            self._written[order_id(order)] = fingerprint(order)

    def _checkpoint(self, *, prune: bool = False) -> None:
        now = int(self.clock())
        if prune or not self._pruned:
            # once when the run starts and once when it ends: every entry this
            # run adds is protected until then, so pruning at each page would
            # walk the whole window for nothing (a cost that grew with the
            # square of the queue's length). Keeping an entry longer is safe.
            floor = None if self.plan.ack else self.plan.recovery_floor
            protected = {*self.plan.pending, *self._written, *self._replayed}
            self.dedupe.prune(queue_keep(now, floor, protected))
            self._pruned = True
        record = self.plan.record
        record["dedupe"] = self.dedupe.entries
        record["held"] = self.held.entries
        record["updated_at"] = iso(now)
        # durable data first, then state: never the other way round. The sink is
        # committed even when nothing new was written, because a database target
        # keeps its own, authoritative copy of the journal and the in-flight mark
        self.sink.commit(self.store_key, record)
        record["output"] = receipt(self.sink)
        self.state.put(self.store_key, record)
        self._orders_committed = self._result.emitted

    def _drained(self) -> None:
        self._result.drained = True
        self.cursor["drained_at"] = int(self.clock())
        self._checkpoint(prune=True)

    def _progress(self, page: Page) -> None:
        self._result.pages += 1
        done = self._result.emitted + self._result.unchanged
        self.reporter.progress(done, done + max(page.total_count - len(page.orders), 0))

    def _warn(self, message: str) -> None:
        self._result.warnings.append(message)
        self.reporter.warn(message)

    def _alarm(self, message: str) -> None:
        self._result.warnings.append(message)
        self.reporter.alarm(message)

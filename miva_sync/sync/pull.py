"""The pull loop: page -> dedupe -> sink -> durable commit -> checkpoint.

State never runs ahead of the data: in each commit (after every page, or
every COMMIT_INTERVAL where the target allows it) the sink commits first
(fsync, drained pipe, database transaction), and only then does the state
file move. The watermark never passes the signpost (the local clock at the
start of the run), so a future-dated order or a skewed store clock cannot
drag it forward.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, Protocol

from miva_sync.base.timespec import human_span, iso
from miva_sync.errors import ApiError, InterruptedRunError, UntrustedAnswerError
from miva_sync.sinks import identity
from miva_sync.sinks.base import Sink
from miva_sync.sinks.receipts import receipt, uncommitted
from miva_sync.state.file import StateStore
from miva_sync.state.record import PULL_MODES, DedupeEntry, LastRun, StateRecord
from miva_sync.store.client import LIST_ORDERS, MivaClient, Page, PendingPage
from miva_sync.store.orders import order_id
from miva_sync.store.query import Condition, ListQuery
from miva_sync.sync.dedupe import DedupeWindow, facts, keep_from
from miva_sync.sync.held import DEFAULT_HOLD_FOR, HeldOrders, fetcher
from miva_sync.sync.pager import Chunk, iter_chunks
from miva_sync.sync.plan import FUTURE_TOLERANCE, Plan
from miva_sync.sync.summary import RunSummary, Tally
from miva_sync.sync.writer import BackgroundWriter, InlineWriter

if TYPE_CHECKING:
    from miva_sync.sync.parallel import ParallelPager

# where a dedupe entry keeps each cursor field's value (id: the entry's key)
_ENTRY_FIELD = {"orderdate": 1, "dt_updated": 2}
LATE_FRACTION = 0.8  # a late order in the last fifth of the window: widen it
# When pages are committed (fsync or transaction, then the state file). A target
# where a page written but not committed is harmless after a crash (the sink's
# ``replay_safe``: a file appended to, a folder, a database) commits at most
# every COMMIT_INTERVAL: 3 fsyncs a page were a fifth of a pull's time. Others
# (stdout) commit every page, so a crash repeats at most one page there. On a
# slow disk, a commit that took SLOW_COMMIT or longer is followed by pages
# written without one for up to COMMIT_GROUPING times its duration (capped at
# MAX_COMMIT_GAP), so commits cost at most about a tenth of the run. Always
# safe: the state file moves only in a commit, after the fsync (or transaction)
# covering every page it counts (docs/design.md §6.3).
COMMIT_INTERVAL = 0.25
HANDOFF_INTERVAL = 0.0002  # seconds; see quick_handoffs
SLOW_COMMIT = 0.010
COMMIT_GROUPING = 9.0
MAX_COMMIT_GAP = 1.0


class Reporter(Protocol):
    def progress(self, done: int, total: int | None) -> None: ...

    def warn(self, message: str) -> None: ...


@dataclass
class PullRun:
    """Everything one pull needs; :meth:`run` does it."""

    client: MivaClient
    sink: Sink
    plan: Plan
    store_key: str
    state: StateStore | None  # None: bounded re-pull, nothing saved
    reporter: Reporter
    base_query: ListQuery
    emit_unchanged: bool = False
    clock: Callable[[], float] = time.time
    require_payment: bool = False
    hold_for: int = DEFAULT_HOLD_FOR
    # --workers: more than 1 splits a first pull or a bounded re-pull into
    # windows fetched concurrently, each worker with a client from make_client
    workers: int = 1
    make_client: Callable[[], MivaClient] | None = None
    monotonic: Callable[[], float] = time.monotonic
    _writer: InlineWriter | BackgroundWriter = field(
        default_factory=InlineWriter, init=False, repr=False
    )
    _commit_seconds: float = field(default=0.0, init=False, repr=False)
    _emitting: bool = field(default=False, init=False, repr=False)
    # set by run(): the run's dedupe window, held orders and signpost
    _dedupe: DedupeWindow = field(init=False, repr=False)
    _held: HeldOrders = field(init=False, repr=False)
    _signpost: int = field(default=0, init=False, repr=False)
    _commit_not_before: float = field(default=0.0, init=False, repr=False)
    _uncommitted: bool = field(default=False, init=False, repr=False)
    _uncommitted_wrote: bool = field(default=False, init=False, repr=False)
    # set by run() once it reads the store: the summary so far (partial_summary),
    # and the watermark the last durable commit saved
    _so_far: Callable[[], RunSummary] | None = field(
        default=None, init=False, repr=False
    )
    _committed: int | None = field(default=None, init=False, repr=False)
    # orders handed to the output, and those of them a finished commit covers
    # (what an interrupted run says it committed)
    _orders_written: int = field(default=0, init=False, repr=False)
    _orders_committed: int = field(default=0, init=False, repr=False)

    def lower_bound(self, signpost: int) -> int:
        """Where this run's query starts: the watermark minus lookback or overlap."""
        plan = self.plan
        if plan.watermark is None:
            return plan.start
        if plan.mode != "number":
            return max(plan.start, plan.watermark - plan.lookback)
        span = plan.overlap_span
        if span is None:
            return max(plan.start, plan.watermark - int(plan.overlap))
        lowest = self._lowest_id_since(signpost - span)
        return max(plan.start, min(plan.watermark, lowest or plan.watermark))

    def _lowest_id_since(self, when: int) -> int | None:
        query = (
            ListQuery(count=1).where(Condition("orderdate", "GE", when)).sorted_by("id")
        )
        rows = self.client.list_orders(query).orders
        return order_id(rows[0]) if rows else None

    def preview(self) -> dict[str, Any]:
        """The plan for --dry-run as machine values (app/preview.py renders them
        for people): the window, the conditions and columns sent, the page
        size and the store's count. Writes nothing."""
        signpost = int(self.clock())
        lo = self.lower_bound(signpost)
        conditions = [Condition(self.plan.field, "GE", lo)]
        if self.plan.hi is not None:
            conditions.append(Condition(self.plan.field, "LE", self.plan.hi))
        query = self.base_query
        for condition in conditions:
            query = query.where(condition)
        page = self._fetch(query.page(1).sorted_by(self.plan.field))
        return {
            "mode": self.plan.mode,
            "field": self.plan.field,
            "from": lo,
            "until": self.plan.hi,
            "watermark": self.plan.watermark,
            "conditions": [
                {"field": c.field, "operator": c.operator, "value": c.value}
                for c in conditions
            ],
            "filter": query.to_params().get("Filter"),
            "columns": list(self.base_query.columns),
            "page_size": self.base_query.count,
            "total_count": page.total_count,
        }

    def run(self) -> RunSummary:
        # a database target writes behind the pull (sync/writer.py); files inline
        background = getattr(self.sink, "write_behind", False)
        self._writer = BackgroundWriter() if background else InlineWriter()
        try:
            try:
                with quick_handoffs():
                    return self._run()
            finally:
                self._writer.close()  # the commits handed to it finish first
        except KeyboardInterrupt:
            raise InterruptedRunError.after(
                self._orders_committed, resumable=self.state is not None
            ) from None

    def _run(self) -> RunSummary:
        started = time.monotonic()
        requests_before = self.client.requests_sent
        retries_before = self.client.retries
        plan = self.plan
        signpost = self._signpost = int(self.clock())
        lo = self.lower_bound(signpost)
        result = Tally()
        watermark = plan.watermark
        dedupe = self._dedupe = DedupeWindow(plan.record.get("dedupe"))
        if self.state is not None:
            # a page a killed run wrote to this same file but never checkpointed
            for order in uncommitted(self.sink, plan.record.get("output")):
                dedupe.add(order)
        held = self._held = HeldOrders.from_record(
            plan.record, require_payment=self.require_payment, hold_for=self.hold_for
        )
        if self.state is not None:
            # the mode and the cursor's start claim nothing about data: save them
            # now, so a run killed before its first page can still be resumed;
            # with where the output file ends now, so its pages can be replayed
            # (the replayed orders go into the same write as the new receipt:
            # moving the receipt without them would forget they were written)
            plan.record["output"] = receipt(self.sink)
            plan.record["target"] = identity(self.sink)
            plan.record["dedupe"] = dedupe.entries
            self.state.put(self.store_key, plan.record)
        if self.state is not None and len(held):
            # orders held by earlier runs: emit those paid (or expired) since
            ready = held.recheck(fetcher(self.client, self.base_query), signpost)
            self._emit(ready, None, result)
            self._checkpoint(watermark, bool(ready))
        watermark_before = self._committed = plan.watermark
        window = (watermark_before - lo) if watermark_before is not None else 0
        total: int | None = None

        parallel = self._parallel_pager(lo)
        # what a run that fails from here on has done (pull --json reports it)
        self._so_far = lambda: self._summary(
            result,
            lo,
            watermark_before,
            self._committed,
            started,
            parallel,
            (requests_before, retries_before),
        )
        chunks: Generator[Chunk, None, None]
        if parallel is not None:
            chunks = parallel.chunks()
        else:
            chunks = iter_chunks(
                self._fetch,
                self.base_query,
                plan.field,
                lo,
                plan.hi,
                fetch_soon=self._fetch_soon,
            )
        chunks = explained(chunks, plan.mode)
        walked = 0  # the window's orders seen so far, held ones too: its total's part
        try:
            for chunk in chunks:
                # a verified page: the mode works, so the next commit makes it
                # the active one (issue 19: a run failing before that keeps the old)
                plan.activate()
                result.pages += 1
                walked += len(chunk.orders)
                total = chunk.total_count if chunk.total_count is not None else total
                fresh, learned = self._sift(
                    chunk.orders, watermark_before, window, result
                )
                self._emit(fresh, learned, result)
                watermark = self._advance(watermark, chunk.complete_below)
                self._checkpoint(watermark, bool(fresh), grouped=True)
                self.reporter.progress(walked, total)
                # let the page go before the next one is parsed: one parsed
                # page in memory at a time, not two (peak RSS)
                del chunk, fresh, learned
        except BaseException:
            # pages written but not yet committed (a slow disk groups commits):
            # commit them now, as the per-page commit would have. Not when a page
            # was cut off half-way (written, not yet in the dedupe window: the
            # next run replays it from the file), nor after the output failed
            # (the writer then refuses every later job).
            if self._uncommitted and not self._emitting:
                with contextlib.suppress(Exception):
                    self._flush(watermark)
            raise
        finally:
            # --workers' threads stop (and the switch interval comes back) now,
            # not whenever the traceback holding this frame is freed
            chunks.close()
        self._flush(watermark)
        self._writer.drain()

        summary = self._summary(
            result,
            lo,
            watermark_before,
            watermark,
            started,
            parallel,
            (requests_before, retries_before),
        )
        if self.state is not None:
            plan.record["output"] = receipt(self.sink)  # everything is committed
            plan.record["last_run"] = last_run(plan.mode, result, self.clock())
            self.state.put(self.store_key, plan.record)
        return summary

    def _summary(
        self,
        result: Tally,
        lo: int,
        watermark_before: int | None,
        watermark: int | None,
        started: float,
        parallel: ParallelPager | None,
        traffic_before: tuple[int, int],
    ) -> RunSummary:
        """The run's summary: counts and traffic so far, the cursor at ``watermark``."""
        result.held, result.released = len(self._held), self._held.released
        result.seconds = time.monotonic() - started
        result.requests = self.client.requests_sent - traffic_before[0]
        result.retries = self.client.retries - traffic_before[1]
        if parallel is not None:
            result.requests += parallel.requests
            result.retries += parallel.retries
        plan = self.plan
        return result.freeze(
            plan.mode,
            cursor_field=plan.field,
            watermark_before=watermark_before,
            watermark=watermark,
            lo=lo,
            hi=plan.hi,
            zone=plan.zone,
            saves_state=self.state is not None,
            store=self.store_key,
        )

    def partial_summary(self) -> RunSummary | None:
        """After a failed :meth:`run`: what it wrote and counted before it
        stopped, with the watermark its last durable commit saved (None: it
        failed before reading any page)."""
        return self._so_far() if self._so_far is not None else None

    def _sift(
        self,
        orders: list[dict[str, Any]],
        watermark_before: int | None,
        window: int,
        result: Tally,
    ) -> tuple[list[dict[str, Any]], list[tuple[str, DedupeEntry]]]:
        """A page's orders to write now, with their dedupe entries.

        One pass, each order's id, version and cursor values worked out once
        (dedupe.facts): this loop runs for every order of a pull.
        """
        fresh: list[dict[str, Any]] = []
        learned: list[tuple[str, DedupeEntry]] = []
        dedupe, held, signpost = self._dedupe, self._held, self._signpost
        skip_unchanged = not self.emit_unchanged
        # no held orders and none to hold: every order is admitted as it is
        admit_all = not held.require_payment and not len(held)
        position = _ENTRY_FIELD.get(self.plan.field)
        for order in orders:
            key, entry = facts(order)
            # dedupe is by version: an order updated while we page shows up
            # again later in this walk with a newer version and is emitted again
            if skip_unchanged and dedupe.seen(key, entry, order):
                result.unchanged += 1
                continue
            value = entry[position] if position is not None else int(key)
            # the pager refuses a page where any order lacks one
            assert isinstance(value, int)  # noqa: S101
            if value > signpost or (
                watermark_before is not None and value < watermark_before
            ):
                self._check_order(int(key), value, watermark_before, window, result)
            # a held order is tracked by id, so it never holds back the watermark
            if admit_all or held.admit(order, signpost):
                fresh.append(order)
                learned.append((key, entry))
        return fresh, learned

    def _emit(
        self,
        orders: list[dict[str, Any]],
        learned: list[tuple[str, DedupeEntry]] | None,
        result: Tally,
    ) -> None:
        """Write ``orders`` and add them to the dedupe window (``learned``:
        their entries, from :meth:`_sift`)."""
        self._emitting = True  # until the page is written and in the dedupe window
        if orders:
            self._writer.submit(partial(self.sink.write, orders))
            self._orders_written += len(orders)
        if learned is None:
            learned = [facts(order) for order in orders]
        entries = self._dedupe.entries
        known = sum(1 for key, _entry in learned if key in entries)
        result.emitted += len(learned)
        result.updated += known
        result.new += len(learned) - known
        entries.update(learned)
        self._emitting = False

    # -- steps -----------------------------------------------------------------

    def _parallel_pager(self, lo: int) -> ParallelPager | None:
        """--workers: only for a first pull or a bounded re-pull (a resume's window is small)."""
        if self.workers <= 1 or self.make_client is None:
            return None
        if self.plan.watermark is not None:
            return None
        # imported here: only --workers needs it (start-up and memory of a pull)
        from miva_sync.sync.parallel import ParallelPager

        return ParallelPager(
            make_client=self.make_client,
            fetch_with=self._fetch_with,
            probe=self._fetch,
            base=self.base_query,
            field=self.plan.field,
            lo=lo,
            hi=self.plan.hi,
            workers=self.workers,
        )

    def _fetch(self, query: ListQuery) -> Page:
        return self._fetch_with(self.client, query)

    def _fetch_with(self, client: MivaClient, query: ListQuery) -> Page:
        return self._explained(partial(client.list_orders, query))

    def _fetch_soon(self, query: ListQuery) -> _ExplainedPage:
        return _ExplainedPage(self.client.list_orders_soon(query), self._explained)

    def _explained(self, fetch: Callable[[], Page]) -> Page:
        try:
            return fetch()
        except ApiError as err:
            if self.plan.mode == "updated":
                raise ApiError(
                    f"{err}. The store may not support filtering on dt_updated (Miva "
                    "before 10.03): pull by date (--since without --updated) or from a "
                    "workflow queue (--queue CODE) instead",
                    code=err.code,
                    http_status=err.http_status,
                    request=err.request,
                ) from None
            raise

    def _advance(self, watermark: int | None, bound: int | None) -> int | None:
        if bound is None:
            return watermark
        if self.plan.mode != "number":
            bound = min(bound, self._signpost)
        return bound if watermark is None else max(watermark, bound)

    def _check_order(
        self,
        oid: int,
        value: int,
        watermark_before: int | None,
        window: int,
        result: Tally,
    ) -> None:
        """Warn of an order dated ahead of this machine's clock, or one that
        turned up late near the edge of the re-query window."""
        plan = self.plan
        signpost = self._signpost
        if plan.mode != "number" and value > signpost + FUTURE_TOLERANCE:
            self._warn(
                result,
                f"order {oid} has {plan.field} {iso(value)}, "
                f"{human_span(value - signpost)} ahead of this machine's clock; "
                "emitted, but it will not move the watermark",
            )
        if watermark_before is None or window <= 0 or value >= watermark_before:
            return
        if (
            watermark_before - value >= LATE_FRACTION * window
            and not self._dedupe.knows(oid)
        ):
            behind = (
                f"{watermark_before - value} order numbers"
                if plan.mode == "number"
                else human_span(watermark_before - value)
            )
            knob = "--overlap" if plan.mode == "number" else "--lookback"
            self._warn(
                result,
                f"order {oid} appeared late, {behind} behind the "
                f"watermark, near the edge of the re-query window: widen {knob}",
            )

    def _warn(self, result: Tally, message: str) -> None:
        result.warnings.append(message)
        self.reporter.warn(message)

    def _checkpoint(
        self,
        watermark: int | None,
        wrote: bool,
        *,
        grouped: bool = False,
    ) -> None:
        while self._held.warnings:
            self.reporter.warn(self._held.warnings.pop(0))
        if grouped and self.monotonic() < self._commit_not_before:
            # a slow disk: this page is written; the next commit covers it
            self._uncommitted = True
            self._uncommitted_wrote = self._uncommitted_wrote or wrote
            return
        self._commit(watermark, wrote or self._uncommitted_wrote)
        self._uncommitted = self._uncommitted_wrote = False
        # the last commit that finished (this one, unless the writer is behind)
        took = self._commit_seconds
        gap = min(took * COMMIT_GROUPING, MAX_COMMIT_GAP) if took >= SLOW_COMMIT else 0
        if getattr(self.sink, "replay_safe", False):
            gap = max(gap, COMMIT_INTERVAL)
        self._commit_not_before = self.monotonic() + gap

    def _flush(self, watermark: int | None) -> None:
        """Commit pages that a grouped commit has not covered yet."""
        if self._uncommitted:
            self._checkpoint(watermark, False)

    def _commit(self, watermark: int | None, wrote: bool) -> None:
        if self.state is None:  # bounded re-pull: output only
            if wrote:
                self._writer.submit(
                    partial(self._commit_job, None, self._orders_written)
                )
            return
        plan = self.plan
        if watermark is not None:
            self._dedupe.prune(self._keep(watermark))
        record = plan.record
        record["cursors"][plan.mode]["watermark"] = watermark
        record["dedupe"] = self._dedupe.entries
        record["held"] = self._held.entries
        record["updated_at"] = iso(self.clock())
        # a copy: this thread goes on changing the record while the writer saves it
        self._writer.submit(
            partial(self._commit_job, snapshot(record), self._orders_written)
        )

    def _commit_job(self, record: StateRecord | None, written: int = 0) -> None:
        """Make the written pages durable, then (with a record) move the state.

        ``written``: the orders handed to the output before this commit."""
        started = self.monotonic()
        # durable data first, then state: never the other way round
        self.sink.commit(self.store_key, record)
        if record is not None and self.state is not None:
            record["output"] = receipt(self.sink)  # where the committed data ends
            self.state.put(self.store_key, record)
            self._committed = record["cursors"][self.plan.mode].get("watermark")
        self._orders_committed = written
        self._commit_seconds = self.monotonic() - started

    def _keep(self, watermark: int) -> Callable[[int, DedupeEntry], bool]:
        plan = self.plan
        if plan.mode != "number":
            return keep_from(plan.field, watermark - plan.lookback)
        span = plan.overlap_span
        if span is None:
            return keep_from("id", watermark - int(plan.overlap))
        by_id = keep_from("id", self.lower_bound_floor)
        by_date = keep_from("orderdate", self._signpost - 2 * span)
        return lambda oid, entry: by_id(oid, entry) or by_date(oid, entry)

    @property
    def lower_bound_floor(self) -> int:
        return (
            self.plan.watermark if self.plan.watermark is not None else self.plan.start
        )


@dataclass(frozen=True)
class _ExplainedPage:
    """A page on its way whose errors :meth:`PullRun._explained` words."""

    pending: PendingPage
    explain: Callable[[Callable[[], Page]], Page]

    def content(self) -> bytes | None:
        return self.pending.content()

    def page(self) -> Page:
        return self.explain(self.pending.page)

    def discard(self) -> None:
        self.pending.discard()


# Where to go when a store's answers cannot be trusted for a mode (exit 5).
WAY_OUT = {
    "updated": "pull by order number (--from-order N) or from a workflow queue "
    "(--queue CODE) instead; 'miva-sync check' probes what the store supports",
    "date": "pull by order number (--from-order N) or from a workflow queue "
    "(--queue CODE) instead",
    "number": "pull from a workflow queue (--queue CODE) instead",
}


def explained(
    chunks: Generator[Chunk, None, None], mode: str
) -> Generator[Chunk, None, None]:
    """The chunks; a page the pager refused is reported with the mode and the
    way out (the pager knows only the field it walks)."""
    try:
        yield from chunks
    except UntrustedAnswerError as err:
        raise UntrustedAnswerError(
            f"{mode} mode: {err}. Nothing of that page was written and the saved "
            f"cursor covers only the pages before it; {WAY_OUT[mode]} "
            "(docs/miva-api.md §4.3)",
            code=err.code,
            # the pager is handed its fetch; every pull fetches with this one
            request=LIST_ORDERS,
        ) from None
    finally:
        chunks.close()


@contextlib.contextmanager
def quick_handoffs() -> Iterator[None]:
    """A shorter GIL switch interval while a pull runs.

    The next page is fetched by another thread (the client's courier, or
    --workers' threads) while this one parses and writes, which holds the GIL
    in long C calls. At CPython's default 5 ms the fetching thread waited that
    long to send its request or read its answer, and the overlap was lost
    (benchmarks/README.md: a fifth of a pull's time).
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, HANDOFF_INTERVAL))
    try:
        yield
    finally:
        sys.setswitchinterval(interval)


def snapshot(record: StateRecord) -> StateRecord:
    """A copy of a store's record that later changes to it cannot reach.

    Deep enough for how the pull changes a record: it sets its mode's cursor
    inside ``cursors`` (a queue cursor it never touches), and adds or removes
    whole entries of ``dedupe`` and ``held``.
    """
    copy = record.copy()
    cursors = copy["cursors"] = record["cursors"].copy()
    for mode in PULL_MODES:
        if mode in cursors:
            cursors[mode] = cursors[mode].copy()
    copy["dedupe"] = dict(record["dedupe"])
    copy["held"] = dict(record["held"])
    return copy


def last_run(mode: str, result: Tally, now: float) -> LastRun:
    """The ``last_run`` entry of a store's record (what ``state show`` reports)."""
    return {
        "finished_at": int(now),
        "mode": mode,
        "emitted": result.emitted,
        "unchanged": result.unchanged,
        "held": result.held,
        "released": result.released,
        "seconds": round(result.seconds, 3),
    }

"""Concurrency for pulls: ``--workers N`` backfills.

An order sync spends most of its wall time waiting for the store. For a large
backfill, :class:`ParallelPager` splits a first pull or a bounded re-pull into
windows of the cursor's value range, pages each window with the tie-safe pager
in its own thread and client, and hands the pages to the one writer (the
caller's thread) as they arrive; memory stays bounded by a few pages per
worker. The chunks it yields carry, as ``complete_below``, the bound of the
*contiguous completed prefix* of windows: every order below it has been handed
over, whatever the later windows did. The pull loop moves the cursor only to
that bound, so a crash resumes without gaps; orders already written from later
windows are in the dedupe window (their cursor is above the watermark, so it
keeps them) and are not written again.

Windows: ``[b0, b1-1], [b1, b2-1], …, [bk, hi]``. Values are whole numbers, so
the windows partition the range: an order (and a tie group sharing one second)
belongs to exactly one window. The boundaries are the cursor values found at
successive offsets of the sorted range, probed (one ``Count=1`` request per
window) a few windows ahead of the workers: by a thread of its own, and by
any worker that would otherwise wait for a window, so that probes go out side
by side when the workers start and near the end, where windows are small. The
boundaries are only hints for an even split: if orders move while we page
(updated mode), every order still falls into some window, and one updated
during the run shows up again with its newer version, as it does in a serial
pull.

A window is a whole number of pages less a few orders, so its last page is
short (no extra empty request ends it) yet nearly full; once the range's end
is near, windows shrink to the remaining orders' share per worker, so the
workers finish together instead of one paging a last big window alone.
"""

from __future__ import annotations

import contextlib
import functools
import queue
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from typing import Any

from miva_sync.store.client import MivaClient, Page
from miva_sync.store.orders import cursor_value
from miva_sync.store.query import Condition, ListQuery
from miva_sync.sync.pager import Chunk, iter_chunks

PAGES_PER_WINDOW = 8  # a window is ~8 pages: ~1/8 more (cheap, Count=1) requests
MIN_PAGES_PER_WINDOW = 2  # near the end: smaller windows, but the probes keep up
AHEAD_PER_WORKER = 2  # windows a worker may run ahead of the oldest unfinished one
_POLL = 0.2  # seconds between checks of the stop flag while blocked
SWITCH_PER_WORKER = 0.00025  # seconds of GIL switch interval per worker
MAX_SWITCH_INTERVAL = 0.005  # CPython's default

FetchWith = Callable[[MivaClient, ListQuery], Page]


# -- parallel windows -----------------------------------------------------------


@dataclass
class _Window:
    index: int
    lo: int
    hi: int | None  # None: open-ended (the last window of a first pull)
    done: bool = False
    best: int | None = None  # the highest complete_below its chunks reported


@dataclass
class _Splitter:
    """Cuts the range into windows (probing boundaries ahead) and hands them out in order.

    Probe ``k`` reads the cursor value at a planned offset; every offset after
    the first follows from the range's total, which the first probe brings. So
    probes can run at the same time and answer in any order: their values are
    folded into windows in offset order. The splitter's own thread keeps
    probing a few windows ahead; a worker that finds no window ready takes the
    next probe itself, with its own client, instead of waiting for that thread
    (at the start, all workers wait for the boundaries; near the end windows
    are small and one prober falls behind them).
    """

    probe: Callable[[ListQuery], Page]
    base: ListQuery
    column: str  # the cursor field
    lo: int
    hi: int | None
    workers: int
    limit: int  # windows made beyond the oldest unfinished one
    windows: list[_Window] = field(default_factory=list)
    exhausted: bool = False  # the last window has been made
    head: int = 0  # index of the oldest unfinished window
    done_bound: int | None = None  # the highest best of the windows before head
    claimed: int = 0  # windows handed to workers
    total: int | None = None  # the range's total_count, from the first probe
    _offsets: list[int] = field(default_factory=list)  # by probe, as planned
    _taken: int = 0  # probes handed out
    _folded: int = 0  # probes folded into windows, in order
    _found: dict[int, int | None] = field(default_factory=dict)  # k -> value
    _start: int | None = None  # where the next window begins
    _past_end: bool = False  # a planned offset reached the total: no more probes
    _lock: threading.Condition = field(default_factory=threading.Condition)

    def produce(self, stop: threading.Event) -> None:
        """Probe boundaries ahead of the workers (a thread of its own, so that
        in the steady state no worker waits for one)."""
        while True:
            with self._lock:
                taken = self._take()
                while not stop.is_set() and taken is None and not self.exhausted:
                    # bounded memory: the dedupe window holds what runs ahead
                    self._lock.wait(_POLL)
                    taken = self._take()
                if stop.is_set() or taken is None:
                    return
            self._run(taken, self.probe)  # a request: outside the lock

    def claim(
        self, stop: threading.Event, probe: Callable[[ListQuery], Page]
    ) -> _Window | None:
        """The next window, or None when the range is covered (or on stop).

        While none is ready, the caller probes the next boundary with
        ``probe`` (its own client) if one is due, rather than sit idle."""
        while True:
            with self._lock:
                while True:
                    if stop.is_set():
                        return None
                    if self.claimed < len(self.windows):
                        window = self.windows[self.claimed]
                        self.claimed += 1
                        return window
                    if self.exhausted:
                        return None
                    taken = self._take()
                    if taken is not None:
                        break
                    self._lock.wait(_POLL)
            self._run(taken, probe)

    def finished(self, window: _Window) -> None:
        with self._lock:
            window.done = True
            while self.head < len(self.windows) and self.windows[self.head].done:
                self.done_bound = _higher(self.done_bound, self.windows[self.head].best)
                self.head += 1
            self._lock.notify_all()

    def all_done(self) -> bool:
        with self._lock:
            return self.exhausted and self.head >= len(self.windows)

    def wake(self) -> None:
        with self._lock:
            self._lock.notify_all()

    def prefix_bound(self) -> int | None:
        """``complete_below`` of the contiguous completed prefix (None: nothing yet):
        the finished windows' and the oldest unfinished one's (kept as windows
        finish, not recomputed from the first window for every chunk)."""
        with self._lock:
            if self.head < len(self.windows):
                return _higher(self.done_bound, self.windows[self.head].best)
            return self.done_bound

    # -- probing (the caller holds the lock, but never during a request) -----------

    def _take(self) -> tuple[int, ListQuery] | None:
        """The next probe to send, as (k, query); None if none is due now."""
        k = self._taken
        if self.exhausted or self._past_end or (k > 0 and self.total is None):
            return None  # done, or the offsets wait for the first probe's total
        if len(self.windows) + (k - self._folded) >= self.head + self.limit:
            return None  # as many windows made or on their way as may run ahead
        if k == len(self._offsets):
            self._offsets.append((self._offsets[-1] if k else 0) + self._step(k))
        offset = self._offsets[k]
        self._taken += 1
        if self.total is not None and offset >= self.total:
            # past the range's end when it was counted: no request (the last
            # window is open up to hi, so an order added since is still read)
            self._past_end = True
            self._fold(k, None)
            return None
        query = self.base.where(Condition(self.column, "GE", self.lo))
        if self.hi is not None:
            query = query.where(Condition(self.column, "LE", self.hi))
        return k, query.page(1, offset).sorted_by(self.column).with_columns(())

    def _run(
        self, taken: tuple[int, ListQuery], probe: Callable[[ListQuery], Page]
    ) -> None:
        """Send probe ``k`` and fold its answer in (the lock is not held)."""
        k, query = taken
        page = probe(query)
        rows = page.orders
        value = cursor_value(rows[0], self.column) if rows else None
        with self._lock:
            if self.total is None:
                self.total = page.total_count
            self._fold(k, value)

    def _fold(self, k: int, value: int | None) -> None:
        """Record probe ``k``'s value (None: past the end); make the windows
        that the probes answered so far, in offset order, allow."""
        self._found[k] = value
        start = self.lo if self._start is None else self._start
        while not self.exhausted and self._folded in self._found:
            value = self._found.pop(self._folded)
            self._folded += 1
            if value is None or (self.hi is not None and value > self.hi):
                self.windows.append(_Window(len(self.windows), start, self.hi))
                self.exhausted = True
            elif value > start:
                self.windows.append(_Window(len(self.windows), start, value - 1))
                start = value
            # else one tie group (or an id below start) spans the step: the
            # next probe's value ends this window
        self._start = start
        self._lock.notify_all()

    def _step(self, k: int) -> int:
        """Orders in window ``k`` (before ties): whole pages less a margin.

        The margin covers the row each page of a time cursor reads again (the
        pager goes on from the page's last value, ``>=``) and a few ties, so
        the window's last page comes back short, ending the window, not empty.
        """
        size = self.base.count
        pages = PAGES_PER_WINDOW
        if self.total is not None and k:
            done = self._offsets[k - 1]
            share = -(-(self.total - done) // (self.workers * size))
            pages = max(MIN_PAGES_PER_WINDOW, min(PAGES_PER_WINDOW, share))
        return max(1, pages * size - pages - max(1, size // 10))


class ParallelPager:
    """Page ``lo <= field [<= hi]`` with ``workers`` threads; iterate for chunks.

    ``make_client`` gives each worker its own client (a ``requests.Session`` is
    not meant for concurrent use); ``probe`` (the caller's client) finds window
    boundaries, one call at a time, from a thread of its own. ``requests``
    counts the workers' requests (boundary probes a worker sent while waiting
    for a window included: ``probes``), ``retries`` their repeats after a
    transient failure.
    """

    def __init__(
        self,
        *,
        make_client: Callable[[], MivaClient],
        fetch_with: FetchWith,
        probe: Callable[[ListQuery], Page],
        base: ListQuery,
        field: str,
        lo: int,
        hi: int | None,
        workers: int,
    ) -> None:
        self.workers = max(1, workers)
        self.requests = 0
        self.retries = 0
        self.probes = 0  # of the requests, boundary probes a waiting worker sent
        self._make_client = make_client
        self._fetch_with = fetch_with
        self._base = base
        self._field = field
        self._splitter = _Splitter(
            probe,
            base,
            field,
            lo,
            hi,
            self.workers,
            limit=self.workers * AHEAD_PER_WORKER,
        )
        # at most about one page per worker waits for the writer
        self._results: queue.Queue[tuple[str, _Window | None, Any]] = queue.Queue(
            maxsize=self.workers
        )
        self._stop = threading.Event()
        self._count_lock = threading.Lock()

    def __iter__(self) -> Iterator[Chunk]:
        return self.chunks()

    def chunks(self) -> Generator[Chunk, None, None]:
        """The chunks, as the workers hand them over; close it to stop the workers."""
        threads = [
            threading.Thread(
                target=self._work, daemon=True, name=f"pull-worker-{n + 1}"
            )
            for n in range(self.workers)
        ]
        threads.append(
            threading.Thread(target=self._split, daemon=True, name="pull-splitter")
        )
        # The writer (this thread) releases the GIL for every write and then
        # queues behind workers parsing pages, and a worker whose answer has
        # come queues likewise: a short switch interval hands the GIL on sooner.
        # But every thread waiting for the GIL forces a switch each interval,
        # and with many workers those switches cost more CPU than the waits
        # they save (8 workers at 0.2 ms: twice the context switches of 4 and
        # 10% more CPU), while each wait costs less, many pages being in flight
        # meanwhile. So the interval grows with the workers: 1 ms for 4, 2 ms
        # for 8 (measured with benchmarks/bench_parallel.py).
        interval = sys.getswitchinterval()
        sys.setswitchinterval(
            min(MAX_SWITCH_INTERVAL, SWITCH_PER_WORKER * self.workers)
        )
        for thread in threads:
            thread.start()
        splitter = self._splitter
        sent_total = False
        bound: int | None = None  # the last complete_below handed over
        try:
            while not splitter.all_done():
                try:
                    kind, window, payload = self._results.get(timeout=_POLL)
                except queue.Empty:
                    continue
                if kind == "error":
                    raise payload
                assert window is not None  # noqa: S101 - chunks and ends name a window
                # the range's total (from the first probe) goes with the first chunk
                total = None if sent_total else splitter.total
                sent_total = True
                if kind == "chunk":
                    chunk: Chunk = payload
                    window.best = _higher(window.best, chunk.complete_below)
                    bound = splitter.prefix_bound()
                    yield Chunk(chunk.orders, bound, total)
                    del chunk, payload  # written: not kept while the next is awaited
                else:  # "done": the prefix may have grown without new orders
                    splitter.finished(window)
                    if splitter.prefix_bound() != bound:  # else nothing to commit
                        bound = splitter.prefix_bound()
                        yield Chunk([], bound, total)
        finally:
            sys.setswitchinterval(interval)
            self._stop.set()
            splitter.wake()
            for thread in threads:
                thread.join(timeout=_POLL * 2)

    def _split(self) -> None:
        try:
            self._splitter.produce(self._stop)
        except BaseException as exc:  # noqa: BLE001 - handed to the writer
            self._put(("error", None, exc))

    def _work(self) -> None:
        try:
            client = self._make_client()
        except BaseException as exc:  # noqa: BLE001 - handed to the writer
            self._put(("error", None, exc))
            return
        before, retried = client.requests_sent, client.retries
        fetch = functools.partial(self._fetch_with, client)
        probes = 0

        def probe(query: ListQuery) -> Page:
            nonlocal probes
            probes += 1
            return fetch(query)

        try:
            while not self._stop.is_set():
                window = self._splitter.claim(self._stop, probe)
                if window is None:
                    return
                for chunk in iter_chunks(
                    fetch, self._base, self._field, window.lo, window.hi
                ):
                    if not self._put(("chunk", window, chunk)):
                        return
                    # the page is the writer's now: not kept alive by this loop
                    # while the next one is fetched
                    del chunk
                if not self._put(("done", window, None)):
                    return
        except BaseException as exc:  # noqa: BLE001 - handed to the writer
            self._put(("error", None, exc))
        finally:
            with self._count_lock:
                self.requests += client.requests_sent - before
                self.retries += client.retries - retried
                self.probes += probes
            with contextlib.suppress(Exception):
                client.close()

    def _put(self, item: tuple[str, _Window | None, Any]) -> bool:
        """Hand an item to the writer; False once the writer has stopped."""
        while not self._stop.is_set():
            try:
                self._results.put(item, timeout=_POLL)
            except queue.Full:
                continue
            return True
        return False


def _higher(a: int | None, b: int | None) -> int | None:
    """The higher of two bounds, either of which may be unknown (None)."""
    if a is None:
        return b
    return a if b is None else max(a, b)

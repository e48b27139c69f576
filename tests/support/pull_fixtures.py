"""Stand-ins for the pull engine's tests: a store of fixed orders that answers
list queries (ties in random order, some answers slow), a client over it, and a
sink on a slow disk whose state records that it never runs ahead of the data."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from typing import Any

from miva_sync.store.client import Page
from miva_sync.store.query import ListQuery
from miva_sync.sync.plan import PullOptions, make_plan
from miva_sync.sync.pull import PullRun


class FakeStore:
    """Answers list queries over fixed orders; some windows answer slowly."""

    def __init__(self, orders: list[dict[str, Any]], seed: int) -> None:
        self.orders = orders
        self.rng = random.Random(seed)
        self.lock = threading.Lock()

    def list_orders(self, query: ListQuery) -> Page:
        rows = self.orders
        for (cond,) in query.groups:
            value = int(cond.value)
            op = {"GE": int.__ge__, "GT": int.__gt__, "LE": int.__le__,
                  "EQ": int.__eq__}[cond.operator]  # fmt: skip
            rows = [r for r in rows if op(r[cond.field], value)]
        field = (query.sort or "id").lstrip("-")
        with self.lock:
            shuffled = rows[:]
            self.rng.shuffle(shuffled)  # ties come back in random order
            delay = self.rng.choice([0, 0, 0.002, 0.01])
        rows = sorted(shuffled, key=lambda r: r[field])
        time.sleep(delay)
        page = rows[query.offset : query.offset + query.count]
        return Page(
            orders=[dict(r) for r in page], total_count=len(rows), start_offset=0
        )


class FakeClient:
    def __init__(self, store: FakeStore) -> None:
        self.store = store
        self.requests_sent = 0
        self.retries = 0

    def list_orders(self, query: ListQuery) -> Page:
        self.requests_sent += 1
        return self.store.list_orders(query)

    def list_orders_soon(self, query: ListQuery) -> FakePending:
        # sent when the pager asks for the page, so overrides of list_orders apply
        return FakePending(lambda: self.list_orders(query))


class FakePending:
    """A page "on its way" that is fetched when asked for; no bytes to peek at."""

    def __init__(self, fetch: Callable[[], Page]) -> None:
        self.page = fetch

    def content(self) -> bytes | None:
        return None

    def discard(self) -> None:
        return None

    def close(self) -> None:
        return None


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class SlowSink:
    """A sink on a slow disk: every commit takes ``seconds`` on the fake clock."""

    description = "slow"
    keeps_checkpoint = False

    def __init__(self, clock: Clock, seconds: float, log: list[Any]) -> None:
        self.clock, self.seconds, self.log = clock, seconds, log
        self.written: list[int] = []
        self.durable: list[int] = []

    def write(self, orders: list[dict[str, Any]]) -> None:
        self.written += [o["id"] for o in orders]
        self.clock.now += 0.002  # writing a page
        self.log.append("write")

    def commit(self, store_key: str, checkpoint: dict[str, Any] | None) -> None:
        self.clock.now += self.seconds
        self.durable = list(self.written)
        self.log.append("commit")

    def load_checkpoint(self, store_key: str) -> None:
        return None

    def close(self) -> None:
        return None


class RecordingState:
    def __init__(self, sink: SlowSink, log: list[Any]) -> None:
        self.sink, self.log = sink, log
        self.puts: list[int | None] = []

    def put(self, key: str, record: dict[str, Any]) -> None:
        watermark = record["cursors"]["date"]["watermark"]
        if watermark is not None:
            # state never runs ahead of the data: everything below it is durable
            below = {o["id"] for o in ORDERS if o["orderdate"] < watermark}
            assert below <= set(self.sink.durable), "state ahead of the data"
        self.puts.append(watermark)
        self.log.append("put")


class Quiet:
    def progress(self, done: int, total: int | None) -> None:
        return None

    def warn(self, message: str) -> None:
        return None


ORDERS = [{"id": i, "orderdate": 1000 + i // 3} for i in range(1, 301)]


def make_run(
    seconds: float, client: Any = None
) -> tuple[PullRun, SlowSink, RecordingState, list[Any]]:
    clock, log = Clock(), []
    sink = SlowSink(clock, seconds, log)
    state = RecordingState(sink, log)
    run = PullRun(
        client or FakeClient(FakeStore(ORDERS, 1)),  # type: ignore[arg-type]
        sink,
        make_plan(None, PullOptions(since=1000)),
        "k",
        state,  # type: ignore[arg-type]
        Quiet(),
        ListQuery(count=10),
        clock=lambda: 5000.0,
        monotonic=clock,
    )
    return run, sink, state, log

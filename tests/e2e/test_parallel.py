"""--workers: the same orders as one worker, a cursor that never passes a gap, crash-safe."""

from __future__ import annotations

import json
import random
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from miva_sync.store.client import Page
from miva_sync.store.query import ListQuery
from miva_sync.sync.pager import Chunk
from miva_sync.sync.parallel import ParallelPager
from tests.support.helpers import (
    saved_record,
)
from tests.support.pull_fixtures import FakeClient, FakeStore

PAGE = "10"  # windows of ~75 orders: the sandbox's bursts (160 and 40 orders
# sharing one second) straddle window boundaries and fill whole pages


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=700, seed=5, tie_order="random") as sb:
        yield sb


def pull(
    run: Any, sandbox: Sandbox, home: Path, out: Path, *args: str
) -> tuple[list[dict[str, Any]], str]:
    env = {**sandbox.env(), "MIVA_SYNC_HOME": str(home)}
    result = run(
        ["pull", *args, "--page-size", PAGE, "-o", str(out), "--no-progress"], env=env
    )
    assert result.exit_code == 0, result.stderr
    return [json.loads(line) for line in out.read_text().splitlines()], result.stderr


@pytest.mark.parametrize(
    ("mode", "start"),
    [("--since", "since"), ("--since", "updated"), ("--from-order", "id")],
)
def test_parallel_pull_emits_the_same_orders_as_one_worker(
    run: Any, sandbox: Sandbox, tmp_path: Path, mode: str, start: str
) -> None:
    orders = sandbox.store.orders_snapshot()
    if start == "id":
        args = [mode, str(min(o["id"] for o in orders) + 5)]
    else:
        args = [mode, str(sandbox.store.now() - 400 * 86400)]
        if start == "updated":
            args.append("--updated")
    one, _ = pull(run, sandbox, tmp_path / "h1", tmp_path / "one.jsonl", *args)
    four, err = pull(
        run, sandbox, tmp_path / "h4", tmp_path / "four.jsonl", *args, "--workers", "4"
    )
    ids = [o["id"] for o in four]
    assert len(ids) == len(set(ids)), "an order was written twice"
    # the same objects (as written lines), whatever the order of the lines
    assert sorted(map(json.dumps, four)) == sorted(map(json.dumps, one))
    assert len(one) > 300
    # the cursor ends where the one-worker pull's does
    mode_name = {"since": "date", "updated": "updated", "id": "number"}[start]
    one_cursor = saved_record(tmp_path / "h1")["cursors"][mode_name]["watermark"]
    four_cursor = saved_record(tmp_path / "h4")["cursors"][mode_name]["watermark"]
    assert four_cursor == one_cursor is not None
    assert " requests " in err


def test_parallel_pull_reads_tie_groups_split_across_windows(
    run: Any, tmp_path: Path
) -> None:
    # one burst of 160 orders in one second, ties in random order, windows of ~75
    with Sandbox(orders=400, seed=8, tie_order="random", burst_size=160) as sb:
        since = sb.store.now() - 400 * 86400
        expected = {
            o["id"] for o in sb.store.orders_snapshot() if o["orderdate"] >= since
        }
        got, _ = pull(
            run, sb, tmp_path / "h", tmp_path / "o.jsonl", "--since", str(since),
            "--workers", "3",
        )  # fmt: skip
    assert sorted(o["id"] for o in got) == sorted(expected)


def test_parallel_bounded_repull_leaves_state_alone(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    now = sandbox.store.now()
    since, until = now - 400 * 86400, now - 2 * 86400
    got, _ = pull(
        run, sandbox, tmp_path / "h", tmp_path / "o.jsonl", "--since", str(since),
        "--until", str(until), "--workers", "4",
    )  # fmt: skip
    expected = {
        o["id"]
        for o in sandbox.store.orders_snapshot()
        if since <= o["orderdate"] <= until
    }
    assert sorted(o["id"] for o in got) == sorted(expected)
    assert not (tmp_path / "h" / "state.json").exists()


def test_parallel_resume_after_a_first_parallel_pull_finds_only_new_orders(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "h"
    since = str(sandbox.store.now() - 400 * 86400)
    pull(run, sandbox, home, tmp_path / "a.jsonl", "--since", since, "--workers", "4")
    added = sandbox.store.add_order()
    again, _ = pull(run, sandbox, home, tmp_path / "b.jsonl", "--workers", "4")
    assert [o["id"] for o in again] == [added["id"]]


# -- the pager alone: the cursor only covers the contiguous completed prefix ------


def fake_pager(
    store: FakeStore,
    *,
    count: int,
    lo: int,
    workers: int,
    worker: type = FakeClient,
    prober: FakeClient | None = None,
) -> ParallelPager:
    """A pager over ``store``'s orders by orderdate from ``lo``, open-ended; each
    worker thread pages through a ``worker`` client, the splitter's thread
    probes through ``prober`` (the caller's client)."""
    return ParallelPager(
        make_client=lambda: worker(store),
        fetch_with=lambda client, query: client.list_orders(query),
        probe=(prober or FakeClient(store)).list_orders,
        base=ListQuery(count=count),
        field="orderdate",
        lo=lo,
        hi=None,
        workers=workers,
    )


@pytest.mark.parametrize("seed", range(6))
def test_parallel_pager_bound_never_passes_an_unfinished_window(seed: int) -> None:
    rng = random.Random(seed)
    orders, when = [], 1000
    for oid in range(1, 400):
        when += rng.choice([0, 0, 0, 1, 2, 30])  # many ties, some long gaps
        orders.append({"id": oid, "orderdate": when})
    store = FakeStore(orders, seed)
    pager = fake_pager(store, count=7, lo=1000, workers=4)
    seen: set[int] = set()
    bound = None
    for chunk in pager:
        assert isinstance(chunk, Chunk)
        seen.update(o["id"] for o in chunk.orders)
        if chunk.complete_below is not None:
            assert bound is None or chunk.complete_below >= bound
            bound = chunk.complete_below
            missing = [
                o for o in orders if o["orderdate"] < bound and o["id"] not in seen
            ]
            assert not missing, f"bound {bound} passed order {missing[0]}"
    assert seen == {o["id"] for o in orders}
    assert bound == orders[-1]["orderdate"]
    assert pager.requests > 0


def test_parallel_pager_windows_are_page_aligned_and_shrink_near_the_end() -> None:
    """Windows of whole pages less a margin (the last page is short but nearly
    full), until the rest is less than a full window per worker: then about a
    worker's share of it, at least two pages, so the workers finish together."""
    orders = [{"id": oid, "orderdate": 1000 + oid} for oid in range(1, 4001)]
    store = FakeStore(orders, 1)
    pager = fake_pager(store, count=50, lo=1001, workers=4)
    seen = [o["id"] for chunk in pager for o in chunk.orders]
    assert sorted(seen) == [o["id"] for o in orders]  # each order exactly once
    windows = pager._splitter.windows
    sizes = [w.hi - w.lo + 1 for w in windows[:-1]]  # the last is open-ended
    assert sizes[:3] == [8 * 50 - 8 - 5] * 3  # 8 pages less a margin
    assert sizes == sorted(sizes, reverse=True)
    assert min(sizes) == 2 * 50 - 2 - 5

    def requests_for(orders: int) -> int:
        """Pages the keyset pager reads for a window (a full page goes on from
        its last value, reading that row again)."""
        return 1 if orders < 50 else (orders - 50) // 49 + 2

    # every window ends on its short last page: no extra (empty) request
    assert all(requests_for(size) == -(-size // 50) for size in sizes)
    last = len(orders) - sum(sizes)
    # (the workers' requests: pages, and probes sent while waiting for a window)
    pages = pager.requests - pager.probes
    assert pages == sum(requests_for(size) for size in [*sizes, last])


def test_parallel_pager_probes_side_by_side_while_workers_wait() -> None:
    """Workers waiting for a window probe the next boundaries themselves, so
    probes go out together (at the start every worker waits; one prober would
    start the eighth worker eight probes late)."""
    orders = [{"id": oid, "orderdate": 1000 + oid} for oid in range(1, 2001)]
    store = FakeStore(orders, 2)
    probes = threading.Condition()
    state = {"done": 0, "out": 0, "most": 0}

    class Counting(FakeClient):
        def list_orders(self, query: ListQuery) -> Page:
            if query.count != 1:  # a page, not a boundary probe
                return super().list_orders(query)
            with probes:
                state["out"] += 1
                state["most"] = max(state["most"], state["out"])
                probes.notify_all()
                if state["done"] == 1:
                    # the first probe after the one that counts the range: hold
                    # it until another is out (one prober at a time never is)
                    probes.wait_for(lambda: state["most"] >= 2, timeout=10)
            try:
                return super().list_orders(query)
            finally:
                with probes:
                    state["out"] -= 1
                    state["done"] += 1

    pager = fake_pager(
        store, count=20, lo=1001, workers=4, worker=Counting, prober=Counting(store)
    )
    seen = [o["id"] for chunk in pager for o in chunk.orders]
    assert sorted(seen) == [o["id"] for o in orders]  # each order exactly once
    assert state["most"] >= 2
    assert pager.probes > 0  # sent by workers, with their own clients


def test_parallel_pager_sends_no_probe_past_the_counted_end() -> None:
    """The first probe counts the range; a boundary planned beyond that count
    ends the windows without a request (the last window stays open, so an
    order added meanwhile is still read)."""
    orders = [{"id": oid, "orderdate": 1000 + oid} for oid in range(1, 1001)]
    store = FakeStore(orders, 3)
    prober = FakeClient(store)
    pager = fake_pager(store, count=25, lo=1001, workers=3, prober=prober)
    seen = [o["id"] for chunk in pager for o in chunk.orders]
    assert sorted(seen) == [o["id"] for o in orders]
    windows = pager._splitter.windows
    assert windows[-1].hi is None
    # one probe per boundary between windows, none that finds nothing
    assert prober.requests_sent + pager.probes == len(windows) - 1


@pytest.mark.parametrize(
    ("workers", "interval"), [(2, 0.0005), (8, 0.002), (40, 0.005)]
)
def test_parallel_pager_switch_interval_grows_with_the_workers(
    workers: int, interval: float
) -> None:
    """Each thread waiting for the GIL forces a switch every interval: with
    many workers a longer one saves more CPU than their waits cost."""
    store = FakeStore([{"id": i, "orderdate": i} for i in range(1, 200)], 1)
    before = sys.getswitchinterval()
    pager = fake_pager(store, count=10, lo=0, workers=workers)
    during = {sys.getswitchinterval() for _chunk in pager}
    assert len(during) == 1
    assert during.pop() == pytest.approx(interval)
    assert sys.getswitchinterval() == before


def test_parallel_pager_hands_a_worker_error_to_the_writer() -> None:
    class Broken(FakeClient):
        def list_orders(self, query: ListQuery) -> Page:
            raise RuntimeError("store on fire")

    store = FakeStore([{"id": i, "orderdate": i} for i in range(1, 100)], 1)
    pager = fake_pager(store, count=5, lo=0, workers=2, worker=Broken)
    with pytest.raises(RuntimeError, match="store on fire"):
        list(pager)


# -- crash safety in a real process ------------------------------------------------

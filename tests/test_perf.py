"""Performance features that must not loosen the contract: grouped commits, start-up."""

from __future__ import annotations

from typing import Any

import pytest

from miva_sync.errors import TransientError
from miva_sync.query import ListQuery
from miva_sync.sync.plan import PullOptions, make_plan
from miva_sync.sync.pull import PullRun
from tests.test_parallel import FakeClient, FakeStore


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


def test_pull_commits_every_page_on_a_fast_disk() -> None:
    run, _sink, _state, log = make_run(0.001)
    result = run.run()
    assert result.emitted == len(ORDERS)
    assert log.count("commit") == log.count("write")  # one per page


def test_pull_groups_commits_on_a_slow_disk_without_running_ahead() -> None:
    run, sink, state, log = make_run(0.05)
    result = run.run()
    assert result.emitted == len(ORDERS)
    assert 1 < log.count("commit") < log.count("write")
    # every state write comes right after the commit that covers it
    for n, entry in enumerate(log):
        if entry == "put" and n > 0:  # (the first put, the mode, claims no data)
            assert log[n - 1] in ("commit", "put")
    assert sink.durable == sink.written
    assert state.puts[-1] == ORDERS[-1]["orderdate"]


def test_pull_commits_grouped_pages_before_a_fetch_error_surfaces() -> None:
    class FailsLater(FakeClient):
        def list_orders(self, query: ListQuery) -> Any:
            if self.requests_sent >= 12:
                raise TransientError("store gone")
            return super().list_orders(query)

    run, sink, _state, log = make_run(0.05, FailsLater(FakeStore(ORDERS, 2)))
    with pytest.raises(TransientError):
        run.run()
    assert sink.durable == sink.written  # nothing written is left uncommitted
    assert log[-1] == "put"


def test_cli_pull_help_shows_workers(run: Any) -> None:
    # start-up imports are checked for every command in tests/test_cli_basics.py
    result = run(["pull", "--help"])
    assert result.exit_code == 0
    assert "--workers" in result.stdout


def test_pull_collects_garbage_less_often_and_restores_the_setting() -> None:
    import gc

    from miva_sync.runner import GC_YOUNG_THRESHOLD, fewer_collections

    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold()[0] >= GC_YOUNG_THRESHOLD
        assert gc.get_threshold()[1:] == before[1:]
        raise RuntimeError("a failed pull")
    assert gc.get_threshold() == before

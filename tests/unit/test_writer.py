"""Write-behind (sync/writer.py): a database target's writes run in a thread behind
the pull, without loosening the contract: in order, state never ahead of the
data, nothing after a failure."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from miva_sync.errors import OutputError
from miva_sync.store.query import ListQuery
from miva_sync.sync.writer import BackgroundWriter, InlineWriter
from tests.support.pull_fixtures import (
    ORDERS,
    Clock,
    FakeClient,
    FakeStore,
    Quiet,
    SlowSink,
    make_run,
)


def test_background_writer_runs_jobs_in_order_off_the_callers_thread() -> None:
    done: list[tuple[int, str]] = []
    writer = BackgroundWriter()
    for n in range(50):
        writer.submit(lambda n=n: done.append((n, threading.current_thread().name)))
    writer.drain()
    writer.close()
    assert [n for n, _ in done] == list(range(50))
    assert {name for _, name in done} == {"output-writer"}


def test_background_writer_runs_nothing_after_a_failure_and_raises_it() -> None:
    ran: list[int] = []
    writer = BackgroundWriter()

    def fail() -> None:
        raise OutputError("disk full")

    writer.submit(lambda: ran.append(1))
    writer.submit(fail)
    writer.submit(lambda: ran.append(3))  # queued before the failure was seen
    with pytest.raises(OutputError, match="disk full"):
        writer.drain()
    with pytest.raises(OutputError, match="disk full"):
        writer.submit(lambda: ran.append(4))
    writer.close()
    assert ran == [1]


def test_inline_writer_keeps_the_same_rule() -> None:
    ran: list[int] = []
    writer = InlineWriter()
    with pytest.raises(KeyboardInterrupt):
        writer.submit(lambda: (ran.append(1), (_ for _ in ()).throw(KeyboardInterrupt)))
    with pytest.raises(KeyboardInterrupt):
        writer.submit(lambda: ran.append(2))  # a commit after it is refused
    assert ran == [1]


@pytest.mark.parametrize("behind", [False, True])
@pytest.mark.parametrize("where", ["in the write", "after the write"])
def test_pull_cut_off_mid_page_commits_nothing_more(
    behind: bool, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: Ctrl-C as a page reached the file (before its orders
    were all in the dedupe window) was followed by the error path's commit of
    the grouped pages, moving the file's receipt past a page the dedupe window
    did not hold: the next run would have emitted it again.

    "after the write" (the page handed to the output, not yet in the dedupe
    window) only the pull's _emitting guard stops; "in the write" (cut off
    inside the sink) is stopped by that guard and, as well, by the writer
    refusing every job after a failed one: either alone passes it, removing
    both fails it.
    """
    from miva_sync.errors import InterruptedRunError
    from miva_sync.sync import writer as writers

    run, sink, _state, log = make_run(0.05)  # a slow disk: commits are grouped
    if behind:
        background(sink)
    write = sink.write
    pages = 0

    def write_then_cut(orders: list[dict[str, Any]]) -> None:
        write(orders)
        if log.count("write") == 5 and where == "in the write":
            raise KeyboardInterrupt

    def cut_after_handing_over(submit: Any) -> Any:
        def submit_then_cut(self: Any, job: Any) -> None:
            nonlocal pages
            submit(self, job)
            if getattr(job, "func", None) is write_then_cut:
                pages += 1
                if pages == 5 and where == "after the write":
                    raise KeyboardInterrupt

        return submit_then_cut

    sink.write = write_then_cut
    for kind in (writers.InlineWriter, writers.BackgroundWriter):
        monkeypatch.setattr(kind, "submit", cut_after_handing_over(kind.submit))
    # the engine reports the cut as an interrupted run, saying what it committed
    with pytest.raises(InterruptedRunError, match="written and committed"):
        run.run()
    fifth = [n for n, entry in enumerate(log) if entry == "write"][4]
    assert "commit" in log[:fifth]  # grouping left pages uncommitted ...
    assert log[fifth - 1] == "write"  # (the page before is not committed yet)
    assert "commit" not in log[fifth:]  # ... and nothing committed after the cut


def test_background_writer_keeps_at_most_a_few_jobs_waiting() -> None:
    release = threading.Event()
    writer = BackgroundWriter(depth=2)
    writer.submit(release.wait)  # running
    writer.submit(lambda: None)
    writer.submit(lambda: None)  # the queue is full now
    blocked = threading.Thread(target=writer.submit, args=(lambda: None,))
    blocked.start()
    blocked.join(0.2)
    assert blocked.is_alive(), "a full queue must make the pull wait"
    release.set()
    blocked.join(5)
    assert not blocked.is_alive()
    writer.drain()
    writer.close()


def background(sink: Any, delay: float = 0.0) -> None:
    """Make the test sink a write-behind one whose commits take real time."""
    sink.write_behind = True
    if delay:
        commit = sink.commit

        def slow_commit(*args: Any) -> None:
            time.sleep(delay)
            commit(*args)

        sink.commit = slow_commit


def test_pull_writing_behind_never_saves_state_ahead_of_the_data() -> None:
    # the state double asserts, on every put, that each order below the saved
    # watermark is durable; slow commits let the pull's thread run ahead
    run, sink, state, _log = make_run(0.0)
    background(sink, delay=0.003)
    writes = []
    write = sink.write

    def record_thread(orders: list[dict[str, Any]]) -> None:
        writes.append(threading.current_thread().name)
        write(orders)

    sink.write = record_thread
    result = run.run()
    assert result.emitted == len(ORDERS)
    assert set(writes) == {"output-writer"}
    assert sink.durable == sink.written
    assert sorted(sink.written) == [o["id"] for o in ORDERS]
    assert state.puts[-1] == ORDERS[-1]["orderdate"]
    # each save holds the cursor of its own commit, not a later one (None: the
    # first page's commit, before the next page's count vouched for its bound)
    saved = [w for w in state.puts[1:] if w is not None]
    assert saved == sorted(saved)
    assert None not in state.puts[state.puts.index(saved[0]) :]


def test_pull_writing_behind_stops_at_a_failed_write() -> None:
    run, sink, state, log = make_run(0.0)
    background(sink)
    write = sink.write
    calls = []

    def fail_on_third_page(orders: list[dict[str, Any]]) -> None:
        calls.append(len(orders))
        if len(calls) == 3:
            raise OutputError("disk full")
        write(orders)

    sink.write = fail_on_third_page
    with pytest.raises(OutputError, match="disk full"):
        run.run()
    assert len(calls) == 3  # nothing was written after the failure
    # nor committed: the pages before it, each with its commit and state save
    assert log == ["put"] + ["write", "commit", "put"] * 2
    assert state.puts[-1] is not None


def test_pull_with_workers_stops_them_when_the_output_fails() -> None:
    """Found in review: when the loop ended with an error, the --workers
    generator stayed open until the traceback was freed: worker threads ran on
    and the process kept the shortened GIL switch interval."""
    import sys

    from miva_sync.sync.plan import PullOptions, make_plan
    from miva_sync.sync.pull import PullRun

    store = FakeStore(ORDERS, 3)
    log: list[Any] = []
    sink = SlowSink(Clock(), 0.0, log)
    write = sink.write

    def fails_on_the_third(orders: list[dict[str, Any]]) -> None:
        if log.count("write") == 2:
            raise OutputError("disk full")
        write(orders)

    sink.write = fails_on_the_third  # type: ignore[method-assign]
    run = PullRun(
        FakeClient(store),  # type: ignore[arg-type]
        sink,
        make_plan(None, PullOptions(since=1000)),
        "k",
        None,
        Quiet(),
        ListQuery(count=10),
        workers=3,
        make_client=lambda: FakeClient(store),  # type: ignore[arg-type,return-value]
    )
    interval = sys.getswitchinterval()
    with pytest.raises(OutputError, match="disk full"):
        run.run()
    assert sys.getswitchinterval() == interval
    workers = [t for t in threading.enumerate() if t.name.startswith("pull-")]
    for thread in workers:
        thread.join(5)  # they see the stop flag within one poll
    assert not [t for t in workers if t.is_alive()]

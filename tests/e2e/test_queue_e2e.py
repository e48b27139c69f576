"""Queue mode end to end against the sandbox, in-process.

The promise under test (docs/design.md §2, §5.9): an acknowledgement is sent only for
orders already durably written; a failed acknowledgement loses nothing and
emits nothing twice; an order updated between download and acknowledgement
ends up in the output in its newest version; a no-ack queue drains completely
and a lost download is recovered or reported.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import DEFAULT_QUEUE, RECEIVED_QUEUE, RequestLogEntry, Sandbox
from miva_sync.sandbox.quirks import NO_QUIRKS, Quirks
from miva_sync.state.file import StateStore
from tests.support.helpers import Puller, read_orders

Orders = list[dict[str, Any]]
LOAD = "QueueOrderList_Load_Query"
ACK = "OrderList_Acknowledge"


@pytest.fixture
def sandbox(request: pytest.FixtureRequest) -> Iterator[Sandbox]:
    # a test may ask for an unfriendly store: parametrize("sandbox", [Quirks(...)],
    # indirect=True)
    quirks = getattr(request, "param", NO_QUIRKS)
    with Sandbox(orders=230, seed=17, tie_order="random", quirks=quirks) as sb:
        yield sb


@pytest.fixture
def pull(run: Any, sandbox: Sandbox, tmp_path: Path) -> Puller:
    return Puller(run, sandbox, tmp_path / "out.jsonl")


def queue(*args: str) -> list[str]:
    return ["--queue", DEFAULT_QUEUE, *args]


def assert_each_version_once(orders: Orders) -> None:
    repeats = [
        v
        for v, n in Counter((o["id"], o.get("dt_updated")) for o in orders).items()
        if n > 1
    ]
    assert not repeats, f"emitted twice: {repeats[:5]}"


def assert_latest_versions(orders: Orders, sandbox: Sandbox) -> None:
    newest = {o["id"]: o for o in orders}  # the last line of an id wins
    for order in sandbox.store.orders_snapshot():
        written = newest[order["id"]]
        assert written["status"] == order["status"], order["id"]
        if "dt_updated" in written:  # absent on stores before 10.03
            assert written["dt_updated"] == order["dt_updated"], order["id"]


def acks(sandbox: Sandbox) -> list[RequestLogEntry]:
    return [e for e in sandbox.requests if e.module_function == ACK]


def state_cursor(home: Path) -> dict[str, Any]:
    stores = StateStore(home / "state.json").all()
    (record,) = stores.values()
    cursor: dict[str, Any] = record["cursors"]["queue"]
    return cursor


# -- with acknowledgement ---------------------------------------------------------


@pytest.mark.parametrize("page_size", ["40", "250"])
def test_queue_ack_only_acknowledges_ids_already_in_the_output(
    pull: Puller, sandbox: Sandbox, page_size: str
) -> None:
    problems: list[str] = []

    def at_ack(n: int, entry: RequestLogEntry) -> None:
        # runs before the store's answer leaves: the client is still waiting
        if entry.module_function != ACK:
            return
        ids = entry.body["Order_Ids"]
        on_disk = {o["id"] for o in read_orders(pull.out)}
        if len(ids) > 100:
            problems.append(f"request {n}: {len(ids)} ids in one acknowledgement")
        missing = set(ids) - on_disk
        if missing:
            problems.append(f"request {n}: acknowledged before written: {missing}")

    sandbox.on_request(at_ack)
    everything = {o["id"] for o in sandbox.store.orders_snapshot()}
    stderr = pull(*queue("--page-size", page_size))
    assert problems == []
    assert sorted(o["id"] for o in pull.orders) == sorted(everything)
    assert sandbox.store.queue_ids(DEFAULT_QUEUE) == []
    assert sum(len(e.body["Order_Ids"]) for e in acks(sandbox)) == len(everything)
    assert max(len(e.body["Order_Ids"]) for e in acks(sandbox)) <= 100
    loads = [e.body for e in sandbox.requests if e.module_function == LOAD]
    assert all(body["Offset"] == 0 for body in loads)
    assert "230 orders emitted" in stderr and "230 acknowledged" in stderr


def test_queue_ack_refused_exits_5_then_next_run_loses_and_repeats_nothing(
    pull: Puller,
    sandbox: Sandbox,
    monkeypatch: pytest.MonkeyPatch,
    isolated_home: Path,
) -> None:
    store = sandbox.store
    with monkeypatch.context() as patch:
        patch.setattr(store, "acknowledge", lambda ids: 0)
        stderr = pull(*queue("--page-size", "50"), expect=5)
    assert "processed: 0" in stderr and "still queued" in stderr
    assert len(pull.orders) == 50  # the first page is written, nothing acknowledged
    assert len(store.queue_ids(DEFAULT_QUEUE)) == 230
    assert state_cursor(isolated_home)["pending_ack"] == [o["id"] for o in pull.orders]
    pull()  # a bare pull resumes queue mode: journal first, then the rest
    assert_each_version_once(pull.orders)
    assert {o["id"] for o in pull.orders} == {o["id"] for o in store.orders_snapshot()}
    assert store.queue_ids(DEFAULT_QUEUE) == []
    assert state_cursor(isolated_home)["pending_ack"] == []


def test_queue_ack_unreachable_exits_6_and_the_journal_is_acknowledged_next_run(
    pull: Puller, sandbox: Sandbox
) -> None:
    # the 2nd request is the first acknowledgement: the gateway fails it
    sandbox.after_request(1, lambda store: sandbox.faults.inject("503"))
    pull(*queue("--page-size", "60"), expect=6, MIVA_SYNC_RETRY_BUDGET="0")
    assert len(pull.orders) == 60
    sandbox.clear_log()
    stderr = pull()
    assert "acknowledging 60 orders an earlier run wrote" in stderr
    assert acks(sandbox)[0].body["Order_Ids"] == [o["id"] for o in pull.orders[:60]]
    assert_each_version_once(pull.orders)
    assert len(pull.orders) == 230
    assert sandbox.store.queue_ids(DEFAULT_QUEUE) == []


# a store that refuses to acknowledge orders no longer waiting in a queue
@pytest.mark.parametrize(
    "sandbox", [Quirks(strict_ack=True)], indirect=True, ids=["strict-ack"]
)
def test_queue_processed_0_on_a_retried_ack_rechecks_the_queue(
    pull: Puller, sandbox: Sandbox
) -> None:
    store = sandbox.store
    assert store.quirks.strict_ack
    # the first acknowledgement is processed, but its answer is lost: the
    # client retries it and the store now says processed: 0
    sandbox.after_request(1, lambda s: sandbox.faults.inject("reset", processed=True))
    stderr = pull(*queue("--page-size", "100"))
    assert "an earlier attempt was acknowledged" in stderr
    assert [e.fault for e in acks(sandbox)][:2] == ["reset", None]
    assert sorted(o["id"] for o in pull.orders) == [
        o["id"] for o in store.orders_snapshot()
    ]
    assert store.queue_ids(DEFAULT_QUEUE) == []


@pytest.mark.parametrize("dt_updated", [True, False], ids=["dt_updated", "content"])
def test_queue_order_updated_between_download_and_ack_is_written_in_its_newest_version(
    run: Any, tmp_path: Path, dt_updated: bool
) -> None:
    with Sandbox(orders=120, seed=5, supports_dt_updated=dt_updated) as sb:
        out = tmp_path / "o.jsonl"
        touched: list[int] = []

        def update_first_page(store: Any) -> None:
            # after the first page is served, before the client acknowledges it
            for oid in store.queue_ids(DEFAULT_QUEUE)[:3]:
                store.update_order(oid, status=400)
                touched.append(oid)

        sb.after_request(1, update_first_page)
        args = ["pull", *queue("--page-size", "30"), "-o", str(out)]
        result = run(args, env=sb.env())
        assert result.exit_code == 0, result.stderr
        # the store's acknowledgement took the updated orders out of the queue
        assert sb.store.queue_ids(DEFAULT_QUEUE) == []
        assert "3 newer after acknowledgement" in result.stderr
        orders = read_orders(out)
        assert_latest_versions(orders, sb)
        assert {o["id"] for o in orders if o["status"] == 400} == set(touched)


@pytest.mark.parametrize("ack", [True, False], ids=["ack", "no-ack"])
def test_queue_order_updated_again_in_the_second_it_left_is_taken_once_more(
    run: Any, tmp_path: Path, ack: bool
) -> None:
    """dt_updated has whole seconds: an order updated in the same second it
    was acknowledged (or downloaded) comes back in the version it left with.
    That is not a store keeping acknowledged orders (exit 5): its new content
    is written and it is taken out of the queue once more. Found by the chaos
    suite (seed 23, queue into SQLite)."""
    with Sandbox(orders=40, seed=8) as sb:
        code = DEFAULT_QUEUE if ack else "fast"
        if not ack:
            sb.store.create_queue("fast", ack=False)
        out = tmp_path / "o.jsonl"
        again: list[int] = []

        def update_in_the_same_second(n: int, entry: RequestLogEntry) -> None:
            # the first acknowledgement, or the first download, has just
            # taken the page out of the queue; its answer has not left yet
            left = entry.module_function == (ACK if ack else LOAD)
            if again or not left:
                return
            oid = entry.body["Order_Ids"][0] if ack else min(sb.store.ids())
            order = sb.store.order(oid)
            sb.store.update_order(oid, dt_updated=order["dt_updated"], status=500)
            again.append(oid)

        sb.on_request(update_in_the_same_second)
        flags = ["--queue", code] + ([] if ack else ["--no-ack"])
        result = run(
            ["pull", *flags, "--page-size", "100", "-o", str(out)], env=sb.env()
        )
        assert result.exit_code == 0, result.stderr
        assert again and sb.store.queue_ids(code) == []
        newest = {o["id"]: o for o in read_orders(out)}
        assert newest[again[0]]["status"] == 500
        assert set(newest) == set(sb.store.ids())


def test_queue_redelivered_unchanged_orders_are_acknowledged_not_emitted(
    pull: Puller, sandbox: Sandbox
) -> None:
    pull(*queue())
    first = len(pull.orders)
    store = sandbox.store
    again = store.queue_ids(RECEIVED_QUEUE)[:7]
    for oid in again:
        store.enqueue(oid)  # back in the queue, unchanged
    updated = store.update_order(again[0], status=300)
    sandbox.clear_log()
    stderr = pull()
    assert "1 orders emitted, 6 unchanged skipped" in stderr
    assert pull.orders[first:] == [updated]
    assert sorted(i for e in acks(sandbox) for i in e.body["Order_Ids"]) == sorted(
        again
    )
    assert store.queue_ids(DEFAULT_QUEUE) == []
    assert_each_version_once(pull.orders)


def test_queue_without_dt_updated_emits_an_updated_order_again(
    run: Any, tmp_path: Path
) -> None:
    with Sandbox(orders=60, seed=9, supports_dt_updated=False) as sb:
        puller = Puller(run, sb, tmp_path / "o.jsonl")
        puller(*queue())
        assert len(puller.orders) == 60
        assert "dt_updated" not in puller.orders[0]
        store = sb.store
        changed, same = store.queue_ids(RECEIVED_QUEUE)[:2]
        store.update_order(changed, status=300)  # re-enters the queue, changed
        store.enqueue(same)  # re-enters the queue, unchanged
        stderr = puller()
        assert "1 orders emitted, 1 unchanged skipped" in stderr
        assert [o["id"] for o in puller.orders[60:]] == [changed]
        assert puller.orders[60]["status"] == 300
        assert store.queue_ids(DEFAULT_QUEUE) == []


def test_queue_that_keeps_acknowledged_orders_stops_with_exit_5(
    pull: Puller, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sandbox.store, "acknowledge", lambda ids: 1)  # moves nothing
    stderr = pull(*queue("--page-size", "100"), expect=5)
    assert "still in queue" in stderr
    assert_each_version_once(pull.orders)


def test_queue_dry_run_shows_the_count_and_acknowledges_nothing(
    run: Any, sandbox: Sandbox, tmp_path: Path, isolated_home: Path
) -> None:
    out = tmp_path / "o.jsonl"
    result = run(["pull", *queue("--dry-run"), "-o", str(out)], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    assert "total_count  230" in result.stderr
    assert not out.exists()
    assert not (isolated_home / "state.json").exists()
    assert acks(sandbox) == []
    assert len(sandbox.store.queue_ids(DEFAULT_QUEUE)) == 230


def test_queue_mode_resumes_on_a_bare_pull_and_holds_the_lock(
    pull: Puller, sandbox: Sandbox, isolated_home: Path
) -> None:
    pull(*queue("--page-size", "100"))
    sandbox.store.add_order()
    (key,) = StateStore(isolated_home / "state.json").all()
    with StateStore(isolated_home / "state.json").run_lock(key):
        stderr = pull(expect=7)
    assert "holds the lock" in stderr
    stderr = pull()
    assert "1 orders emitted" in stderr
    assert len(pull.orders) == 231


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--no-ack"], "--no-ack goes with --queue"),
        ([*queue(), "--since", "2h"], "does not go with --since"),
        ([*queue(), "--received-queue", RECEIVED_QUEUE], "goes with --no-ack"),
        ([*queue(), "--no-ack", "--dry-run"], "any download moves the orders"),
        (["--queue", " "], "needs the store's queue code"),
    ],
)
def test_queue_refuses_flags_that_do_not_go_together(
    run: Any, sandbox: Sandbox, args: list[str], message: str
) -> None:
    result = run(["pull", *args], env=sandbox.env())
    assert result.exit_code == 2
    assert message in result.stderr
    assert sandbox.requests == []


# -- without acknowledgement ------------------------------------------------------


def no_ack(*args: str) -> list[str]:
    return ["--queue", "fast", "--no-ack", *args]


def test_queue_no_ack_drains_a_queue_of_many_pages(
    pull: Puller, sandbox: Sandbox
) -> None:
    sandbox.store.create_queue("fast", ack=False)
    stderr = pull(*no_ack("--page-size", "20"))
    assert sorted(o["id"] for o in pull.orders) == [
        o["id"] for o in sandbox.store.orders_snapshot()
    ]
    assert sandbox.store.queue_ids("fast") == []
    loads = [e.body for e in sandbox.requests if e.module_function == LOAD]
    assert len(loads) == 13 and all(body["Offset"] == 0 for body in loads)
    assert acks(sandbox) == []
    assert "drained" in stderr


def test_queue_no_ack_on_an_acknowledgement_queue_stops_with_exit_5(
    pull: Puller, sandbox: Sandbox
) -> None:
    stderr = pull("--queue", DEFAULT_QUEUE, "--no-ack", expect=5)
    assert "run without --no-ack" in stderr
    assert_each_version_once(pull.orders)


@pytest.mark.parametrize(
    ("fault", "options"),
    [("truncate", {}), ("reset", {"processed": True}), ("502", {})],
)
def test_queue_no_ack_lost_download_is_recovered_from_the_received_queue(
    pull: Puller, sandbox: Sandbox, fault: str, options: dict[str, Any]
) -> None:
    store = sandbox.store
    store.create_queue("fast", ack=False)
    args = no_ack("--received-queue", RECEIVED_QUEUE, "--page-size", "20")
    pull(*args)  # drains: every order is now in the received queue
    before = len(pull.orders)
    new = [store.add_order()["id"] for _ in range(45)]
    updated = [store.update_order(oid, status=500)["id"] for oid in (new[0], 1005)]
    # the second download of the next run: the store acts, the answer is lost
    n = sandbox.request_count
    sandbox.after_request(n + 1, lambda s: sandbox.faults.inject(fault, **options))
    stderr = pull("--page-size", "20")  # a bare pull: resumes the no-ack queue
    later = pull.orders[before:]
    assert_each_version_once(pull.orders)
    assert {o["id"] for o in later} == {*new, *updated}
    assert_latest_versions(pull.orders, sandbox)
    assert store.queue_ids("fast") == []
    lost = fault != "502"  # a gateway 502 here comes before the store acted
    assert ("recovered 20 orders from the received queue" in stderr) == lost
    if not lost:
        assert "nothing was lost" in stderr


def test_queue_no_ack_lost_download_without_received_queue_exits_6(
    pull: Puller, sandbox: Sandbox
) -> None:
    sandbox.store.create_queue("fast", ack=False)
    sandbox.after_request(1, lambda s: sandbox.faults.inject("truncate"))
    stderr = pull(*no_ack("--page-size", "20"), expect=6)
    assert "up to 20 orders" in stderr and "--received-queue" in stderr
    assert len(pull.orders) == 20  # the first page; the second one was lost


def test_queue_no_ack_interrupted_run_recovers_first(
    pull: Puller,
    sandbox: Sandbox,
    isolated_home: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from miva_sync.errors import OutputError
    from miva_sync.sinks.jsonl import FileSink

    store = sandbox.store
    store.create_queue("fast", ack=False)
    calls = {"n": 0}
    real_write = FileSink.write

    def failing_write(self: FileSink, orders: Orders) -> None:
        calls["n"] += 1
        if calls["n"] == 3:  # the third page was downloaded (moved), not written
            raise OutputError("disk full")
        real_write(self, orders)

    args = no_ack("--received-queue", RECEIVED_QUEUE, "--page-size", "25")
    with monkeypatch.context() as patch:
        patch.setattr(FileSink, "write", failing_write)
        pull(*args, expect=8)
    assert len(pull.orders) == 50
    assert state_cursor(isolated_home)["in_flight"] is True
    stderr = pull()
    assert "previous run stopped during a download" in stderr
    assert "recovered 25 orders" in stderr
    assert sorted(o["id"] for o in pull.orders) == [
        o["id"] for o in store.orders_snapshot()
    ]


def test_queue_database_target_keeps_the_journal_in_step_with_its_rows(
    run: Any, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sqlite3

    db = tmp_path / "o.db"
    target = f"sqlite:///{db}"
    with monkeypatch.context() as patch:
        patch.setattr(sandbox.store, "acknowledge", lambda ids: 0)
        result = run(
            ["pull", *queue("--page-size", "50"), "-o", target], env=sandbox.env()
        )
        assert result.exit_code == 5, result.stderr

    def cursor() -> dict[str, Any]:
        with sqlite3.connect(db) as conn:
            (text,) = conn.execute("SELECT record FROM sync_state").fetchone()
        found: dict[str, Any] = json.loads(text)["cursors"]["queue"]
        return found

    assert len(cursor()["pending_ack"]) == 50  # the rows' own copy of the journal
    result = run(["pull", "-o", target], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    assert cursor()["pending_ack"] == [] and cursor()["drained_at"]
    with sqlite3.connect(db) as conn:
        (count,) = conn.execute("SELECT count(*) FROM orders").fetchone()
    assert count == 230
    assert sandbox.store.queue_ids(DEFAULT_QUEUE) == []


def test_queue_run_prunes_its_dedupe_window_when_it_starts_and_when_it_drains(
    pull: Puller, sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not at every checkpoint: each prune walks the whole window, and every
    entry the run adds stays protected until it ends, so pruning per page only
    made a long queue cost the square of its length (benchmarks/README.md)."""
    from miva_sync.sync.dedupe import DedupeWindow

    sizes: list[int] = []
    prune = DedupeWindow.prune

    def counted(self: DedupeWindow, keep: Any) -> None:
        sizes.append(len(self.entries))
        prune(self, keep)

    monkeypatch.setattr(DedupeWindow, "prune", counted)
    pull(*queue("--page-size", "40"))  # 6 pages, two checkpoints each
    assert len(pull.orders) == 230
    assert sandbox.store.queue_ids(DEFAULT_QUEUE) == []
    # the first page's checkpoint, then the drained queue's
    assert sizes == [40, 230]

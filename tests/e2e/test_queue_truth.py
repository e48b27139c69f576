"""Queue mode against stores that differ from the sandbox's defaults (issue 18, 4 and 5).

Queue reads send ``Sort: id``; a store that ignores it is harmless at the front
of the queue (a warning that -q does not silence) but makes stepping over held
orders unsafe (exit 5, nothing of that page used, nothing lost). A queue code
that answers nothing forever (a mistyped code may answer an empty list with
``success: 1``) is flagged on every pull, even under -q, and by
``state show --max-age``. All through the real CLI against an in-process sandbox.
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
from miva_sync.sync.held import is_unpaid
from tests.support.helpers import Puller

Orders = list[dict[str, Any]]
LOAD = "QueueOrderList_Load_Query"
UNSORTED = Quirks(unsorted_queue=True)
IGNORED_SORT = "ignored Sort id"
NEVER = "has delivered no order"


def loads(sandbox: Sandbox) -> list[RequestLogEntry]:
    return [e for e in sandbox.requests if e.module_function == LOAD]


def assert_each_version_once(orders: Orders) -> None:
    counts = Counter((o["id"], o.get("dt_updated")) for o in orders)
    assert not [v for v, n in counts.items() if n > 1]


def unpaid_ids(sandbox: Sandbox) -> set[int]:
    return {o["id"] for o in sandbox.store.orders_snapshot() if is_unpaid(o)}


def all_ids(sandbox: Sandbox) -> set[int]:
    return {o["id"] for o in sandbox.store.orders_snapshot()}


@pytest.fixture
def unsorted() -> Iterator[Sandbox]:
    with Sandbox(orders=150, seed=23, quirks=UNSORTED) as sb:
        yield sb


# -- finding 4: queue paging sends Sort id, and checks it where it matters --------


def test_every_queue_read_sends_sort_id(run: Any, tmp_path: Path) -> None:
    with Sandbox(orders=90, seed=4) as sb:  # unpaid orders among the lowest ids
        sb.store.create_queue("fast", ack=False)
        armed: list[bool] = []

        def lose_next_download(n: int, entry: RequestLogEntry) -> None:
            if armed and entry.module_function == LOAD:
                armed.clear()
                sb.faults.inject("truncate")  # the store acts, the answer is cut

        sb.on_request(lose_next_download)
        pull = Puller(run, sb, tmp_path / "out.jsonl")
        pull("--queue", DEFAULT_QUEUE, "--dry-run")
        # an acknowledgement queue, several pages, held orders stepped over
        pull("--queue", DEFAULT_QUEUE, "--require-payment", "--page-size", "20")
        # a no-ack queue; then its second download is lost and the received
        # queue is read to recover it
        args = ["--queue", "fast", "--no-ack", "--received-queue", RECEIVED_QUEUE]
        pull(*args, "--page-size", "20")
        for _ in range(30):
            sb.store.add_order()
        armed.append(True)
        assert "from the received queue" in pull("--page-size", "20")
        reads = loads(sb)
        codes = {e.body["Queue_Code"] for e in reads}
        assert codes == {DEFAULT_QUEUE, "fast", RECEIVED_QUEUE}
        assert any(e.body["Offset"] > 0 for e in reads)  # a step over held orders
        assert [e.body.get("Sort") for e in reads] == ["id"] * len(reads)


def test_store_ignoring_sort_with_held_orders_stops_with_exit_5_and_loses_nothing(
    run: Any, unsorted: Sandbox, tmp_path: Path
) -> None:
    store = unsorted.store
    unpaid = unpaid_ids(unsorted)
    pull = Puller(run, unsorted, tmp_path / "out.jsonl")
    args = ("--queue", DEFAULT_QUEUE, "--require-payment", "--page-size", "25")
    stderr = pull(*args, expect=5)
    # one line: what the store did and the way out
    (line,) = [x for x in stderr.splitlines() if "stepping over" in x]
    assert IGNORED_SORT in line and "--page-size larger than the queue" in line
    assert "Traceback" not in stderr
    # nothing of the refused page was written without being acknowledged, and
    # nothing acknowledged is missing from the output: written == left the queue
    queued = set(store.queue_ids(DEFAULT_QUEUE))
    assert pull.ids.isdisjoint(queued)
    assert pull.ids | queued == all_ids(unsorted)
    assert pull.ids.isdisjoint(unpaid)
    # the same store, now honouring Sort: the next runs get everything
    store.quirks = NO_QUIRKS
    assert IGNORED_SORT not in pull("--require-payment")
    assert set(store.queue_ids(DEFAULT_QUEUE)) == unpaid
    pull()  # payment no longer required: the held orders are released
    assert pull.ids == all_ids(unsorted)
    assert store.queue_ids(DEFAULT_QUEUE) == []
    assert_each_version_once(pull.orders)


def test_store_ignoring_sort_without_held_orders_warns_under_q_and_loses_nothing(
    run: Any, unsorted: Sandbox, tmp_path: Path
) -> None:
    pull = Puller(run, unsorted, tmp_path / "out.jsonl")
    stderr = pull("-q", "--queue", DEFAULT_QUEUE, "--page-size", "25")
    assert stderr.count(IGNORED_SORT) == 1  # once per run, not once per page
    assert "nothing is lost" in stderr
    assert pull.ids == all_ids(unsorted)
    assert unsorted.store.queue_ids(DEFAULT_QUEUE) == []
    assert_each_version_once(pull.orders)


def test_store_ignoring_sort_in_the_received_queue_refuses_the_scan_then_recovers(
    run: Any, unsorted: Sandbox, tmp_path: Path
) -> None:
    store = unsorted.store
    store.create_queue("fast", ack=False)
    pull = Puller(run, unsorted, tmp_path / "out.jsonl")
    args = ["--queue", "fast", "--no-ack", "--received-queue", RECEIVED_QUEUE]
    pull(*args, "--page-size", "20")  # drains: everything is in the received queue
    new = [store.add_order()["id"] for _ in range(30)]
    # the first download of the next run: the store moves the orders, the answer
    # is cut off; the received queue is now far bigger than one page
    unsorted.after_request(
        unsorted.request_count + 1, lambda s: unsorted.faults.inject("truncate")
    )
    stderr = pull("--page-size", "20", expect=5)
    assert f"received queue {RECEIVED_QUEUE!r} answered a page out of id" in stderr
    store.quirks = NO_QUIRKS
    stderr = pull("--page-size", "20")
    assert "recovered 10 orders" in stderr  # the lost second download
    assert pull.ids == all_ids(unsorted) and set(new) <= pull.ids
    assert_each_version_once(pull.orders)


def test_well_behaved_store_steps_over_held_orders_without_a_false_alarm(
    run: Any, tmp_path: Path
) -> None:
    with Sandbox(orders=150, seed=23) as sb:  # unpaid: 1000, 1014, ..., 1159
        unpaid = unpaid_ids(sb)
        top = max(all_ids(sb) - unpaid)
        reentered: list[int] = []

        def reenter(n: int, entry: RequestLogEntry) -> None:
            # an acknowledged low id is updated and re-enters the queue in
            # front of the held orders: once mid-run (it pushes a held order
            # onto the next page), once after the last acknowledgement (the
            # next page is nothing but a held order, pushed along)
            mid = entry.module_function == LOAD and len(loads(sb)) == 2
            last = entry.module_function == "OrderList_Acknowledge" and (
                top in entry.body["Order_Ids"]
            )
            if mid or last:
                low = min(set(sb.store.queue_ids(RECEIVED_QUEUE)) - set(reentered))
                sb.store.update_order(low, status=400)
                reentered.append(low)

        sb.on_request(reenter)
        pull = Puller(run, sb, tmp_path / "out.jsonl")
        args = ("--queue", DEFAULT_QUEUE, "--require-payment", "--page-size", "25")
        stderr = pull(*args)
        assert IGNORED_SORT not in stderr and len(reentered) == 2
        assert any(e.body["Offset"] > 0 for e in loads(sb))
        assert pull.ids == all_ids(sb) - unpaid
        # the re-entered orders wait for the next run, in front of the held ones
        assert set(sb.store.queue_ids(DEFAULT_QUEUE)) <= unpaid | set(reentered)
        pull("--require-payment")
        assert set(sb.store.queue_ids(DEFAULT_QUEUE)) == unpaid
        assert {o["id"] for o in pull.orders if o["status"] == 400} == set(reentered)


# -- finding 5: a queue code that never delivers is flagged where cron sees it -----


def test_unknown_queue_answering_empty_is_flagged_under_q_and_by_state_show(
    run: Any, tmp_path: Path, isolated_home: Path
) -> None:
    quirks = Quirks(unknown_queue_empty=True)
    with Sandbox(orders=40, seed=8, quirks=quirks) as sb:
        pull = Puller(run, sb, tmp_path / "out.jsonl")
        typo = DEFAULT_QUEUE.upper()  # codes are case-sensitive
        for _ in range(2):  # every run says so, not just the first
            stderr = pull("-q", "--queue", typo)
            assert NEVER in stderr and repr(typo) in stderr
            assert f"check --queue {typo}" in stderr
        assert pull.orders == []
        env = sb.env()

        def show(max_age: str) -> Any:
            return run(["state", "show", "--max-age", max_age], env=env)

        assert show("2h").exit_code == 0  # first run just now
        # the runs kept coming (last_run is fresh) but the queue delivered
        # nothing for three hours: a state file with an older first run
        state = StateStore(isolated_home / "state.json")
        (key,) = state.all()
        record = state.get(key)
        assert record is not None and record["last_run"]
        record["cursors"]["queue"]["first_run_at"] -= 3 * 3600
        state.put(key, record)
        stale = show("2h")
        assert stale.exit_code == 9, stale.stderr
        assert f"queue {typo!r}" in stale.stderr and NEVER in stale.stderr
        assert show("1d").exit_code == 0
        # the right code delivers: no warning, and the alarm clears
        stderr = pull("-q", "--queue", DEFAULT_QUEUE)
        assert NEVER not in stderr and len(pull.orders) == 40
        assert show("2h").exit_code == 0


def test_queue_that_delivered_long_ago_and_nothing_since_alarms(
    run: Any, tmp_path: Path, isolated_home: Path
) -> None:
    with Sandbox(orders=30, seed=9) as sb:
        pull = Puller(run, sb, tmp_path / "out.jsonl")
        pull("--queue", DEFAULT_QUEUE)
        assert NEVER not in pull("-q")  # empty now, but it has delivered before
        state = StateStore(isolated_home / "state.json")
        (key,) = state.all()
        record = state.get(key)
        assert record is not None
        record["cursors"]["queue"]["delivered_at"] -= 5 * 3600
        state.put(key, record)
        result = run(["state", "show", "--max-age", "2h"], env=sb.env())
        assert result.exit_code == 9
        assert "last delivered an order 5h" in result.stderr
        shown = run(["state", "show", "--json"], env=sb.env())
        cursor = json.loads(shown.stdout)["cursors"]["queue"]
        assert cursor["silent_seconds"] >= 5 * 3600 and cursor["delivered_at_iso"]


def test_state_files_without_the_delivery_record_stay_valid(
    run: Any, tmp_path: Path, isolated_home: Path
) -> None:
    with Sandbox(orders=30, seed=9) as sb:
        pull = Puller(run, sb, tmp_path / "out.jsonl")
        pull("--queue", DEFAULT_QUEUE)
        state = StateStore(isolated_home / "state.json")
        (key,) = state.all()
        record = state.get(key)
        assert record is not None
        for fact in ("first_run_at", "delivered_at"):
            del record["cursors"]["queue"][fact]  # as an older version wrote it
        state.put(key, record)
        assert run(["state", "show", "--max-age", "2h"], env=sb.env()).exit_code == 0
        pull()  # resumes; the clock starts now
        record = state.get(key)
        assert record is not None
        assert isinstance(record["cursors"]["queue"]["first_run_at"], int)
        record["cursors"]["queue"]["delivered_at"] = "yesterday"
        path = isolated_home / "state.json"
        document = json.loads(path.read_text())
        document["stores"][key] = record
        path.write_text(json.dumps(document))  # StateStore refuses to save it
        broken = run(["state", "show"], env=sb.env())
        assert broken.exit_code == 3

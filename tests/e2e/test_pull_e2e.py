"""Pull end to end against the sandbox (random tie order), in-process for the logic.

Each scenario pulls repeatedly into fresh output files with store activity in
between and checks the promise: every order the mode covers arrives, in its
latest version, and nothing is emitted twice unless it changed.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox

Orders = list[dict[str, Any]]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=600, seed=11, tie_order="random") as sb:
        yield sb


class Puller:
    """Runs ``miva-sync pull`` in-process into a fresh file each time."""

    def __init__(self, run: Any, sandbox: Sandbox, folder: Path) -> None:
        self.run, self.sandbox, self.folder = run, sandbox, folder
        self.outputs: list[Orders] = []

    def __call__(self, *args: str, expect: int = 0) -> Orders:
        out = self.folder / f"run{len(self.outputs)}.jsonl"
        result = self.run(
            ["pull", *args, "-o", str(out), "--no-progress"], env=self.sandbox.env()
        )
        assert result.exit_code == expect, result.stderr
        self.last_stderr = result.stderr
        orders = (
            [json.loads(line) for line in out.read_text().splitlines()]
            if out.exists()
            else []
        )
        self.outputs.append(orders)
        return orders

    @property
    def everything(self) -> Orders:
        return [o for run in self.outputs for o in run]


@pytest.fixture
def puller(run: Any, sandbox: Sandbox, tmp_path: Path) -> Puller:
    return Puller(run, sandbox, tmp_path)


def versions(orders: Orders) -> list[tuple[int, Any]]:
    return [(o["id"], o.get("dt_updated")) for o in orders]


def assert_no_unchanged_repeats(orders: Orders) -> None:
    seen = versions(orders)
    assert len(seen) == len(set(seen)), "an unchanged order was emitted twice"


def latest(orders: Orders) -> dict[int, Any]:
    best: dict[int, Any] = {}
    for order in orders:
        best[order["id"]] = max(best.get(order["id"], 0), order["dt_updated"])
    return best


def test_pull_date_mode_resumes_completely(puller: Puller, sandbox: Sandbox) -> None:
    store = sandbox.store
    start = store.now() - 30 * 86400
    first = puller("--since", str(start), "--page-size", "25")
    expected = {o["id"] for o in store.orders_snapshot() if o["orderdate"] >= start}
    assert {o["id"] for o in first} == expected
    # activity between runs: new orders, a late-visible admin order behind the
    # watermark (within the lookback), a late order number revealed
    new = [store.add_order()["id"] for _ in range(5)]
    behind = store.add_order(orderdate=store.now() - 600)["id"]
    revealed = store.hidden_ids()[0]
    store.reveal(revealed)
    second = puller()
    assert set(new) | {behind, revealed} <= {o["id"] for o in second}
    third = puller()
    assert third == []
    everything = puller.everything
    assert_no_unchanged_repeats(everything)
    final = {o["id"] for o in store.orders_snapshot() if o["orderdate"] >= start}
    assert {o["id"] for o in everything} == final


def test_pull_output_lines_are_the_store_objects(
    puller: Puller, sandbox: Sandbox
) -> None:
    orders = puller("--since", "30d", "--page-size", "50")
    by_id = {o["id"]: o for o in sandbox.store.orders_snapshot()}
    sample = orders[:20]
    assert sample
    for order in sample:
        assert "items" in order and "customer" in order
        assert "payment_data" not in json.dumps(order)
        assert all(
            order[k] == by_id[order["id"]][k]
            for k in ("id", "orderdate", "total", "dt_updated")
        )


def test_pull_updated_mode_catches_updates_made_while_paging(
    puller: Puller, sandbox: Sandbox
) -> None:
    store = sandbox.store
    start = store.now() - 90 * 86400
    ids = sorted(o["id"] for o in store.orders_snapshot())
    touched: list[int] = []

    def update_some(_store: Any) -> None:
        for oid in (ids[3], ids[len(ids) // 2], ids[-2]):
            store.update_order(oid, status=200)
            touched.append(oid)

    sandbox.after_request(3, update_some)
    puller("--since", str(start), "--updated", "--page-size", "40")
    store.update_order(ids[10], status=300)
    puller()
    puller()
    everything = puller.everything
    assert_no_unchanged_repeats(everything)
    want = {
        o["id"]: o["dt_updated"]
        for o in store.orders_snapshot()
        if o["dt_updated"] >= start
    }
    assert latest(everything) == want
    assert touched


def test_pull_ties_larger_than_a_page_are_read_completely(
    puller: Puller, sandbox: Sandbox
) -> None:
    store = sandbox.store
    burst = max(store.bursts, key=len)
    assert len(burst) > 30
    orders = puller("--since", "90d", "--page-size", "10")
    got = [o["id"] for o in orders]
    assert set(burst) <= set(got)
    assert len(got) == len(set(got))
    assert set(got) == {
        o["id"]
        for o in store.orders_snapshot()
        if o["orderdate"] >= store.now() - 90 * 86400
    }


@pytest.mark.parametrize("tie_order", ["id", "id-desc", "random"])
def test_pull_is_complete_under_every_tie_order(
    run: Any, tmp_path: Path, tie_order: str
) -> None:
    with Sandbox(orders=300, seed=5, tie_order=tie_order) as sb:
        out = tmp_path / "o.jsonl"
        result = run(
            ["pull", "--since", "90d", "--updated", "--page-size", "7", "-o", str(out)],
            env=sb.env(),
        )
        assert result.exit_code == 0, result.stderr
        got = [json.loads(line)["id"] for line in out.read_text().splitlines()]
        assert sorted(got) == sorted(o["id"] for o in sb.store.orders_snapshot())


def test_pull_number_mode_catches_late_numbers_within_overlap(
    puller: Puller, sandbox: Sandbox
) -> None:
    store = sandbox.store
    low = min(o["id"] for o in store.orders_snapshot())
    puller("--from-order", str(low), "--overlap", "30", "--page-size", "50")
    hidden = [
        h
        for h in store.hidden_ids()
        if h > max(o["id"] for o in store.orders_snapshot()) - 30
    ]
    new = [store.add_order()["id"] for _ in range(3)]
    for h in hidden:
        store.reveal(h)
    second = puller()
    assert set(new) | set(hidden) <= {o["id"] for o in second}
    everything = puller.everything
    assert_no_unchanged_repeats(everything)
    assert {o["id"] for o in everything} == {
        o["id"] for o in store.orders_snapshot() if o["id"] >= low
    }


def test_pull_number_mode_warns_when_late_order_is_deep_in_overlap(
    puller: Puller, sandbox: Sandbox
) -> None:
    store = sandbox.store
    top = max(o["id"] for o in store.orders_snapshot())
    late_number = free_number(sandbox, top - 100, top - 5)
    overlap = top - late_number + 1  # the late order lands in the last fifth of it
    puller("--from-order", str(top - 100), "--overlap", str(overlap))
    late = store.add_order(id=late_number)["id"]
    orders = puller()
    assert late in {o["id"] for o in orders}
    assert "appeared late" in puller.last_stderr and "--overlap" in puller.last_stderr


def free_number(sandbox: Sandbox, low: int, high: int) -> int:
    taken = {o["id"] for o in sandbox.store.orders_snapshot()} | set(
        sandbox.store.hidden_ids()
    )
    free = sorted(set(range(low, high)) - taken)
    assert free, "the sandbox left no skipped number in that range"
    return free[0]


def test_pull_number_mode_overlap_as_a_span(puller: Puller, sandbox: Sandbox) -> None:
    store = sandbox.store
    top = max(o["id"] for o in store.orders_snapshot())
    puller("--from-order", str(top - 100), "--overlap", "45m")
    # a number reserved long ago (far below the top), completed just now:
    # a count overlap of 30 would miss it, a 45-minute span does not
    late = store.add_order(id=free_number(sandbox, top - 100, top - 40))["id"]
    second = puller()
    assert late in {o["id"] for o in second}
    assert_no_unchanged_repeats(puller.everything)


def test_pull_future_dated_order_never_becomes_the_watermark(
    puller: Puller, sandbox: Sandbox, isolated_home: Path
) -> None:
    store = sandbox.store
    future = store.add_order(orderdate=store.now() + 86400)["id"]
    orders = puller("--since", "1d")
    assert future in {o["id"] for o in orders}
    assert "ahead of this machine's clock" in puller.last_stderr
    state = json.loads((isolated_home / "state.json").read_text())
    (record,) = state["stores"].values()
    watermark = record["cursors"]["date"]["watermark"]
    assert watermark <= store.now()
    assert puller() == []  # re-read through the lookback, deduped


def test_pull_emit_unchanged_disables_dedupe(puller: Puller, sandbox: Sandbox) -> None:
    first = puller("--since", "2d")
    again = puller("--emit-unchanged")
    assert first
    assert {o["id"] for o in first} & {o["id"] for o in again}


def test_pull_bounded_repull_leaves_state_alone(
    puller: Puller, sandbox: Sandbox, isolated_home: Path
) -> None:
    store = sandbox.store
    puller("--since", "30d")
    before = (isolated_home / "state.json").read_bytes()
    low = store.now() - 20 * 86400
    high = store.now() - 10 * 86400
    window = puller("--since", str(low), "--until", str(high))
    assert {o["id"] for o in window} == {
        o["id"] for o in store.orders_snapshot() if low <= o["orderdate"] <= high
    }
    assert (isolated_home / "state.json").read_bytes() == before


def test_pull_dry_run_and_bounded_repull_take_no_run_lock(
    puller: Puller, sandbox: Sandbox, isolated_home: Path
) -> None:
    """docs/design.md §6.2: only a run that moves the cursor takes the store's lock;
    a look (--dry-run) and a bounded re-pull (--until) run beside it."""
    from miva_sync.state.file import StateStore

    key = f"{sandbox.url}#{sandbox.store_code}"
    with StateStore(isolated_home / "state.json").run_lock(key):
        puller("--since", "30d", expect=7)  # moves the cursor: waits its turn
        puller("--since", "30d", "--dry-run")
        assert puller("--since", "30d", "--until", str(sandbox.store.now()))


def test_pull_dry_run_prints_plan_and_writes_nothing(
    run: Any, sandbox: Sandbox, tmp_path: Path, isolated_home: Path
) -> None:
    out = tmp_path / "o.jsonl"
    result = run(
        ["pull", "--since", "7d", "--dry-run", "-o", str(out)], env=sandbox.env()
    )
    assert result.exit_code == 0, result.stderr
    assert "total_count" in result.stderr and "orderdate" in result.stderr
    assert result.stdout == ""
    assert not out.exists()
    assert not (isolated_home / "state.json").exists()


def test_pull_to_stdout_is_jsonl_only(run: Any, sandbox: Sandbox) -> None:
    result = run(["pull", "--since", "3d"], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines
    assert all(json.loads(line)["id"] for line in lines)
    assert "orders emitted" in result.stderr


def test_pull_bare_without_state_is_exit_2(run: Any, sandbox: Sandbox) -> None:
    result = run(["pull"], env=sandbox.env())
    assert result.exit_code == 2
    assert "--since" in result.stderr


def test_pull_updated_mode_on_old_store_points_to_other_modes(
    run: Any, tmp_path: Path
) -> None:
    with Sandbox(orders=20, seed=2, supports_dt_updated=False) as sb:
        result = run(["pull", "--since", "7d", "--updated"], env=sb.env())
    assert result.exit_code == 5
    assert "--queue" in result.stderr and "10.03" in result.stderr


def test_pull_without_dt_updated_dedupes_by_content(run: Any, tmp_path: Path) -> None:
    with Sandbox(orders=80, seed=3, supports_dt_updated=False) as sb:
        env = sb.env()
        first = run(
            ["pull", "--since", "90d", "-o", str(tmp_path / "a.jsonl")], env=env
        )
        again = run(["pull", "-o", str(tmp_path / "b.jsonl")], env=env)
        assert first.exit_code == again.exit_code == 0, first.stderr + again.stderr
        assert (
            not (tmp_path / "b.jsonl").exists()
            or (tmp_path / "b.jsonl").read_text() == ""
        )

"""Page verification through the real CLI (issue 18, findings 1-2).

Each sandbox store has the quirk of one finding (miva_sync/sandbox/quirks.py):
the pull stops with one error line and leaves no gap below the cursor, and an
honest store still pulls everything. The pager's checks one at a time are in
tests/unit/test_pager_verify.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from miva_sync.sandbox import Sandbox
from miva_sync.sandbox.quirks import Quirks
from tests.support.helpers import read_jsonl, saved_record


def pull(run: Any, sb: Sandbox, out: Path, *args: str) -> Any:
    return run(["pull", *args, "-o", str(out), "--no-progress"], env=sb.env())


def assert_one_error_line(stderr: str, *needles: str) -> None:
    errors = [line for line in stderr.splitlines() if "error" in line]
    assert len(errors) == 1, stderr
    assert "Traceback" not in stderr
    for needle in needles:
        assert needle in errors[0], errors[0]


def test_cli_updated_mode_on_a_store_that_ignores_the_dt_updated_sort(
    run: Any, tmp_path: Path, isolated_home: Path
) -> None:
    """Finding 1: pages come back by id; the tool must stop, not skip orders."""
    quirks = Quirks(ignore_sort=frozenset({"dt_updated"}))
    with Sandbox(orders=300, seed=3, quirks=quirks) as sb:
        # orders updated after later ones were placed: id order is not dt_updated order
        for oid in sb.store.ids()[:40:3]:
            sb.store.update_order(oid, status=100)
        out = tmp_path / "o.jsonl"
        result = pull(run, sb, out, "--since", "30d", "--updated", "--page-size", "25")
        assert result.exit_code == 5, result.stderr
        assert_one_error_line(
            result.stderr, "updated mode", "dt_updated", "--from-order", "--queue"
        )
        assert_no_gap_below_the_cursor(sb, out, isolated_home, "updated")


def test_cli_a_sorted_looking_page_that_skipped_orders(
    run: Any, tmp_path: Path, isolated_home: Path
) -> None:
    """Finding 1, the subtle case: every page is in order, yet orders were skipped."""
    quirks = Quirks(ignore_sort=frozenset({"dt_updated"}))
    with Sandbox(orders=0, seed=3, quirks=quirks) as sb:
        now = sb.now()
        steps = [10, 20, 30, 40, 50, 60, 15, 70, 80, 90]  # the 7th is out of line
        for step in steps:
            sb.store.add_order(dt_updated=now - 1000 + step)
        out = tmp_path / "o.jsonl"
        result = pull(run, sb, out, "--since", "1d", "--updated", "--page-size", "3")
        assert result.exit_code == 5, result.stderr
        assert_one_error_line(result.stderr, "updated mode", "skipped orders")
        assert_no_gap_below_the_cursor(sb, out, isolated_home, "updated")


def test_cli_date_mode_on_a_store_that_ignores_the_orderdate_sort(
    run: Any, tmp_path: Path, isolated_home: Path
) -> None:
    quirks = Quirks(ignore_sort=frozenset({"orderdate"}))
    with Sandbox(orders=400, seed=8, late_numbers=20, quirks=quirks) as sb:
        out = tmp_path / "o.jsonl"
        result = pull(run, sb, out, "--since", "30d", "--page-size", "50")
        assert result.exit_code == 5, result.stderr
        assert_one_error_line(result.stderr, "date mode", "orderdate", "--from-order")
        assert_no_gap_below_the_cursor(sb, out, isolated_home, "date")


def test_cli_updated_mode_on_a_store_without_dt_updated_that_ignores_the_filter(
    run: Any, tmp_path: Path, isolated_home: Path
) -> None:
    """Finding 2: rows without dt_updated used to end the run after one page, exit 0."""
    quirks = Quirks(lenient_fields=True)
    with Sandbox(orders=300, seed=4, supports_dt_updated=False, quirks=quirks) as sb:
        out = tmp_path / "o.jsonl"
        result = pull(run, sb, out, "--since", "30d", "--updated", "--page-size", "50")
        assert result.exit_code == 5, result.stderr
        assert_one_error_line(
            result.stderr, "updated mode", "without a usable dt_updated", "--queue"
        )
        assert not out.exists() or read_jsonl(out) == []
        # a later run in a mode the store supports gets every order
        result = pull(run, sb, out, "--from-order", "0", "--page-size", "50")
        assert result.exit_code == 0, result.stderr
        assert {o["id"] for o in read_jsonl(out)} == set(sb.store.ids())


def test_cli_an_honest_store_still_pulls_everything(run: Any, tmp_path: Path) -> None:
    """The checks cost no false alarms: the default sandbox, random tie order."""
    with Sandbox(orders=400, seed=9, burst_size=120) as sb:
        for oid in sb.store.ids()[:60:4]:
            sb.store.update_order(oid, status=200)
        out = tmp_path / "o.jsonl"
        result = pull(run, sb, out, "--since", "30d", "--updated", "--page-size", "40")
        assert result.exit_code == 0, result.stderr
        start = sb.now() - 30 * 86400
        want = {o["id"] for o in sb.store.orders_snapshot() if o["dt_updated"] >= start}
        assert {o["id"] for o in read_jsonl(out)} == want


def assert_no_gap_below_the_cursor(
    sb: Sandbox, out: Path, home: Path, mode: str
) -> None:
    """Whatever the failed run saved, no order below its cursor is missing."""
    written = {o["id"] for o in read_jsonl(out)} if out.exists() else set()
    if not (home / "state.json").exists():
        return  # nothing saved: nothing to be ahead of
    record = saved_record(home)  # a broken state file fails the test
    cursor = (record.get("cursors") or {}).get(mode) or {}
    watermark = cursor.get("watermark")
    if watermark is None:
        return
    field = "dt_updated" if mode == "updated" else "orderdate"
    start = cursor["start"]
    behind = {
        o["id"] for o in sb.store.orders_snapshot() if start <= o[field] < watermark
    }
    assert behind <= written, (
        f"orders below the cursor never written: {behind - written}"
    )

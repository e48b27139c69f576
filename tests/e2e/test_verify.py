"""``miva-sync verify``: exactly the missing, stale and extra ids, exit 9, and a repair.

End to end: the real CLI pulls from a sandbox store into a real target, the
test then breaks the target (rows deleted, an older version edited in) or the
store (an order hidden during the pull, changed or deleted behind the tool's
back), and verify must name exactly those ids.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result

from miva_sync.config import load_settings
from miva_sync.sandbox import Sandbox
from miva_sync.state.file import StateStore
from tests.support.targets import SINCE, db_orders, dir_orders, jsonl_latest

KINDS = ("jsonl", "dir", "sqlite")


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=150, seed=13, tie_order="random") as sb:
        yield sb


@dataclass
class Target:
    """An output of one kind, and the ways a test damages it."""

    kind: str
    path: Path

    @property
    def spec(self) -> str:
        if self.kind == "dir":
            return f"{self.path}/"
        if self.kind == "sqlite":
            return f"sqlite:///{self.path}"
        return str(self.path)

    def orders(self) -> dict[int, dict[str, Any]]:
        """What the target holds, newest version of each order."""
        if self.kind == "dir":
            return dir_orders(self.path)
        if self.kind == "sqlite":
            return db_orders(self.path)
        return jsonl_latest([self.path])

    def drop(self, *ids: int) -> None:
        """Delete these orders from the target."""
        if self.kind == "dir":
            for oid in ids:
                (self.path / f"{oid}.json").unlink()
        elif self.kind == "sqlite":
            with sqlite3.connect(self.path) as conn:
                for oid in ids:
                    conn.execute("DELETE FROM order_items WHERE order_id = ?", (oid,))
                    conn.execute("DELETE FROM orders WHERE id = ?", (oid,))
        else:
            self._rewrite(lambda o: None if o["id"] in ids else o)

    def age(self, oid: int, seconds: int = 3600) -> None:
        """Replace the target's copy of ``oid`` with an older version."""

        def older(order: dict[str, Any]) -> dict[str, Any]:
            return {**order, "dt_updated": order["dt_updated"] - seconds, "status": 1}

        if self.kind == "dir":
            file = self.path / f"{oid}.json"
            file.write_text(json.dumps(older(json.loads(file.read_text()))) + "\n")
        elif self.kind == "sqlite":
            with sqlite3.connect(self.path) as conn:
                (text,) = conn.execute(
                    "SELECT order_json FROM orders WHERE id = ?", (oid,)
                ).fetchone()
                aged = older(json.loads(text))
                conn.execute(
                    "UPDATE orders SET dt_updated = ?, order_json = ? WHERE id = ?",
                    (aged["dt_updated"], json.dumps(aged), oid),
                )
        else:
            self._rewrite(lambda o: older(o) if o["id"] == oid else o)

    def _rewrite(self, change: Any) -> None:
        kept = []
        for line in self.path.read_text().splitlines():
            order = change(json.loads(line))
            if order is not None:
                kept.append(json.dumps(order) + "\n")
        self.path.write_text("".join(kept))


def target_of(kind: str, tmp_path: Path) -> Target:
    names = {"jsonl": "orders.jsonl", "dir": "orders", "sqlite": "orders.db"}
    return Target(kind, tmp_path / names[kind])


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest, tmp_path: Path) -> Target:
    return target_of(request.param, tmp_path)


def pull(run: Any, sb: Sandbox, target: Target, *args: str) -> Result:
    result = run(["pull", *args, "-o", target.spec], env=sb.env())
    assert result.exit_code == 0, result.stderr
    return result


def verify(
    run: Any, sb: Sandbox, target: Target, *args: str, expect: int
) -> dict[str, Any]:
    """Run verify --json; check its exit code; the report."""
    if "--from-order" not in args and "--since" not in args:
        args = ("--since", SINCE, *args)
    result = run(["verify", *args, "-o", target.spec, "--json"], env=sb.env())
    assert result.exit_code == expect, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    report["stderr"] = result.stderr
    return report


def ids_of(sb: Sandbox, *positions: int) -> list[int]:
    snapshot = sb.store.orders_snapshot()
    return sorted(snapshot[p]["id"] for p in positions)


def day_of(when: int) -> str:
    import time

    return time.strftime("%Y-%m-%d", time.gmtime(when))


# -- the gaps ---------------------------------------------------------------------


def test_verify_complete_target_exits_0(
    run: Any, sandbox: Sandbox, target: Target
) -> None:
    pull(run, sandbox, target, "--since", SINCE)
    report = verify(run, sandbox, target, expect=0)
    assert report["complete"] is True
    assert (report["missing"], report["stale"], report["extra"]) == ([], [], [])
    assert report["store_orders"] == len(sandbox.store) == report["target_orders"]
    assert sum(d["store"] for d in report["days"]) == len(sandbox.store)


def test_verify_reports_deleted_rows_and_repair_restores_them(
    run: Any, sandbox: Sandbox, target: Target, isolated_home: Path
) -> None:
    fresh = [sandbox.store.add_order()["id"] for _ in range(2)]
    pull(run, sandbox, target, "--since", SINCE)
    gone = sorted([*ids_of(sandbox, 3, 40, 41), *fresh])
    pulled = target.orders()
    target.drop(*gone)

    report = verify(run, sandbox, target, expect=9)
    assert report["missing"] == gone
    assert report["stale"] == [] and report["extra"] == []
    assert "5 missing" in report["stderr"]

    # a resumed pull cannot fill the gap: the old rows are behind its cursor
    # and the fresh ones still sit in its dedupe window
    pull(run, sandbox, target)
    assert verify(run, sandbox, target, expect=9)["missing"] == gone

    state = StateStore(isolated_home / "state.json").all()
    repaired = verify(run, sandbox, target, "--repair", expect=0)
    assert repaired["repaired"] == gone
    assert repaired["missing"] == [] and repaired["complete"] is True
    # exactly the objects a pull writes, and the cursor never moved
    now = target.orders()
    assert {oid: now[oid] for oid in gone} == {oid: pulled[oid] for oid in gone}
    assert StateStore(isolated_home / "state.json").all() == state
    assert verify(run, sandbox, target, expect=0)["complete"] is True


def test_verify_older_version_is_stale_in_updated_mode_only(
    run: Any, sandbox: Sandbox, target: Target
) -> None:
    pull(run, sandbox, target, "--since", SINCE, "--updated")
    (oid,) = ids_of(sandbox, 77)
    target.age(oid)

    strict = verify(run, sandbox, target, "--updated", expect=9)
    assert strict["stale"] == [oid] and strict["missing"] == []
    assert strict["stale_counts"] is True
    # date mode never re-pulls updates: reported apart, still complete
    lenient = verify(run, sandbox, target, expect=0)
    assert lenient["stale"] == [oid] and lenient["stale_counts"] is False
    assert "older version" in lenient["stderr"]

    fixed = verify(run, sandbox, target, "--updated", "--repair", expect=0)
    assert fixed["repaired"] == [oid]
    now, store = target.orders()[oid], sandbox.store.order(oid)
    assert (now["dt_updated"], now["status"]) == (store["dt_updated"], store["status"])
    assert verify(run, sandbox, target, "--updated", expect=0)["stale"] == []


def test_verify_finds_an_order_never_pulled_and_its_day(
    run: Any, sandbox: Sandbox, target: Target
) -> None:
    (oid,) = ids_of(sandbox, 60)
    sandbox.store.hide(oid)  # invisible while the pull runs...
    pull(run, sandbox, target, "--since", SINCE)
    sandbox.store.unhide(oid)  # ...and back, unchanged: the pull's cursor is past it
    pull(run, sandbox, target)  # a resumed pull does not see it either

    report = verify(run, sandbox, target, expect=9)
    assert report["missing"] == [oid]
    day = day_of(sandbox.store.order(oid)["orderdate"])
    gaps = [d for d in report["days"] if d["missing"]]
    assert [(d["day"], d["missing"]) for d in gaps] == [(day, 1)]
    table = run(["verify", "--since", SINCE, "-o", target.spec], env=sandbox.env())
    assert table.exit_code == 9 and table.stdout == ""
    assert day in table.stderr and "missing" in table.stderr

    assert verify(run, sandbox, target, "--repair", expect=0)["repaired"] == [oid]
    assert verify(run, sandbox, target, expect=0)["missing"] == []


def test_verify_change_behind_the_tools_back_is_stale(
    run: Any, sandbox: Sandbox, target: Target
) -> None:
    pull(run, sandbox, target, "--since", SINCE)
    (oid,) = ids_of(sandbox, 90)
    before = sandbox.store.order(oid)
    sandbox.store.set_silently(oid, status=300, dt_updated=sandbox.now() - 5)
    pull(run, sandbox, target)  # date mode: an old order's update is not re-pulled

    assert verify(run, sandbox, target, expect=0)["stale"] == [oid]
    assert verify(run, sandbox, target, "--updated", expect=9)["stale"] == [oid]
    assert target.orders()[oid]["dt_updated"] == before["dt_updated"]
    verify(run, sandbox, target, "--updated", "--repair", expect=0)
    assert target.orders()[oid]["status"] == 300


def test_verify_reports_orders_the_store_deleted_as_extra(
    run: Any, sandbox: Sandbox, target: Target
) -> None:
    pull(run, sandbox, target, "--since", SINCE)
    gone = ids_of(sandbox, 10, 11)
    for oid in gone:
        sandbox.store.delete(oid)

    report = verify(run, sandbox, target, expect=0)  # more, not less: complete
    assert report["extra"] == gone
    assert report["missing"] == [] and report["stale"] == []
    assert "no longer in the store" in report["stderr"]
    repaired = verify(run, sandbox, target, "--repair", expect=0)
    assert repaired["repaired"] == [] and repaired["extra"] == gone
    assert set(gone) <= set(target.orders())  # the target's history is kept


def test_verify_an_order_that_moved_out_of_the_range_is_not_extra(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    target = target_of("jsonl", tmp_path)
    pull(run, sandbox, target, "--since", SINCE, "--updated")
    (oid,) = ids_of(sandbox, 33)
    # updated after verify's range ends (it ends at its start): the target's
    # copy is in the range, the store's is not, and the order still exists
    sandbox.store.set_silently(oid, dt_updated=sandbox.now() + 3600)
    report = verify(run, sandbox, target, "--updated", expect=0)
    assert report["extra"] == [] and report["stale"] == []
    assert report["store_orders"] == len(sandbox.store) - 1


def test_verify_number_mode(run: Any, sandbox: Sandbox, tmp_path: Path) -> None:
    target = target_of("sqlite", tmp_path)
    start = ids_of(sandbox, 50)[0]
    pull(run, sandbox, target, "--from-order", str(start))
    gone = ids_of(sandbox, 49, 50, 149)  # 49 is below the range: not missing
    target.drop(*gone)
    base = ("--from-order", str(start))
    assert verify(run, sandbox, target, *base, expect=9)["missing"] == gone[1:]
    bounded = verify(run, sandbox, target, *base, "--to-order", str(gone[1]), expect=9)
    assert bounded["missing"] == [gone[1]]
    assert (
        verify(run, sandbox, target, *base, "--repair", expect=0)["repaired"]
        == (gone[1:])
    )
    assert verify(run, sandbox, target, *base, expect=0)["missing"] == []


def test_verify_until_bounds_the_range(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    target = target_of("jsonl", tmp_path)
    pull(run, sandbox, target, "--since", SINCE)
    snapshot = sorted(sandbox.store.orders_snapshot(), key=lambda o: o["orderdate"])
    early, late = snapshot[10], snapshot[-10]
    target.drop(early["id"], late["id"])
    until = str(early["orderdate"])
    report = verify(run, sandbox, target, "--until", until, expect=9)
    assert report["missing"] == [early["id"]] and report["to"] == early["orderdate"]
    assert report["store_orders"] == sum(
        1 for o in snapshot if o["orderdate"] <= early["orderdate"]
    )


def test_verify_held_orders_are_not_missing(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    target = target_of("sqlite", tmp_path)
    pull(run, sandbox, target, "--since", SINCE, "--require-payment")
    unpaid = sorted(
        o["id"]
        for o in sandbox.store.orders_snapshot()
        if not o["payments"] and o["pay_status"] == 0
    )
    assert unpaid and not set(unpaid) & set(target.orders())
    report = verify(run, sandbox, target, expect=0)
    assert report["held"] == unpaid and report["missing"] == []
    assert verify(run, sandbox, target, "--repair", expect=0)["repaired"] == []


def test_verify_a_database_target_goes_by_its_own_held_orders(
    run: Any, sandbox: Sandbox, tmp_path: Path, isolated_home: Path
) -> None:
    """The database's cursor is authoritative for it (docs/design.md §6.4): an order
    the state file calls held, but the database never held, is missing."""
    target = target_of("sqlite", tmp_path)
    pull(run, sandbox, target, "--since", SINCE, "--require-payment")
    gone = sorted(target.orders())[3]
    target.drop(gone)
    state = StateStore(isolated_home / "state.json")
    ((key, record),) = state.all().items()
    record["held"][str(gone)] = {"since": sandbox.store.now(), "orderdate": 0}
    state.put(key, record)
    report = verify(run, sandbox, target, expect=9)
    assert report["missing"] == [gone] and gone not in report["held"]


# -- cost, lock, errors -------------------------------------------------------------


def test_verify_costs_one_list_call_per_1000_orders(run: Any, tmp_path: Path) -> None:
    target = target_of("jsonl", tmp_path)
    with Sandbox(orders=2500, seed=17, tie_order="random") as sb:
        pull(run, sb, target, "--since", SINCE, "--page-size", "1000")
        sb.clear_log()
        report = verify(run, sb, target, expect=0)
        lists = [r for r in sb.requests if r.function == "OrderList_Load_Query"]
    pages = math.ceil(2500 / 1000)
    assert pages <= len(lists) <= pages + 2
    assert report["requests"] == len(sb.requests) == len(lists)
    for request in lists:  # large pages of base columns only
        assert request.body["Count"] == 1000
        names = [f["name"] for f in request.body.get("Filter", [])]
        assert "ondemandcolumns" not in names


def test_verify_repair_takes_the_run_lock(
    run: Any, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = target_of("jsonl", tmp_path)
    pull(run, sandbox, target, "--since", SINCE)
    target.drop(*ids_of(sandbox, 5))
    for name, value in sandbox.env().items():
        monkeypatch.setenv(name, value)
    settings = load_settings({})
    with StateStore(settings.state_path()).run_lock(settings.store_key):
        locked = run(["verify", "--since", SINCE, "-o", target.spec, "--repair"])
        assert locked.exit_code == 7, locked.stderr
        assert "lock" in locked.stderr
        # a plain verify only reads: no lock
        assert run(["verify", "--since", SINCE, "-o", target.spec]).exit_code == 9
    assert verify(run, sandbox, target, "--repair", expect=0)["repaired"]


def test_verify_stdout_cannot_be_verified(run: Any, sandbox: Sandbox) -> None:
    result = run(["verify", "--since", SINCE, "-o", "-"], env=sandbox.env())
    assert result.exit_code == 2
    assert "stdout cannot be read back" in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--since", "7d", "--from-order", "5"],
        ["--since", "2026-01-02", "--until", "2026-01-01"],
        ["--from-order", "5", "--updated"],
        ["--since", "7d", "--to-order", "9"],
    ],
)
def test_verify_bad_ranges_are_usage_errors(
    run: Any, sandbox: Sandbox, tmp_path: Path, args: list[str]
) -> None:
    (tmp_path / "o.jsonl").write_text("")
    result = run(["verify", *args, "-o", str(tmp_path / "o.jsonl")], env=sandbox.env())
    assert result.exit_code == 2, result.stderr


@pytest.mark.parametrize("kind", ["missing-file", "missing-db", "not-a-db", "no-dir"])
def test_verify_unreadable_target_exits_8(
    run: Any, sandbox: Sandbox, tmp_path: Path, kind: str
) -> None:
    (tmp_path / "notes.db").write_text("not a database, just some text\n" * 20)
    spec = {
        "missing-file": str(tmp_path / "nothing.jsonl"),
        "missing-db": f"sqlite:///{tmp_path / 'nothing.db'}",
        "not-a-db": f"sqlite:///{tmp_path / 'notes.db'}",
        "no-dir": f"{tmp_path / 'nothing'}/",
    }[kind]
    for extra in ([], ["--repair"]):
        result = run(
            ["verify", "--since", SINCE, "-o", spec, *extra], env=sandbox.env()
        )
        assert result.exit_code == 8, result.stderr
    assert not (tmp_path / "nothing.db").exists()  # never created by a check
    assert not (tmp_path / "nothing").exists()
    if kind != "not-a-db":  # a target that is not there costs no request
        assert sandbox.request_count == 0

"""Held unpaid orders (--require-payment) in every mode, and --ids re-sends."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from miva_sync.state.file import StateStore
from miva_sync.sync.held import is_unpaid
from tests.support.helpers import held_ids, read_jsonl, wait_for


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=120, seed=61) as sb:
        yield sb


class Pulls:
    """In-process pulls into fresh files; every emitted line is kept."""

    def __init__(self, run: Any, sandbox: Sandbox, folder: Path) -> None:
        self.run, self.sandbox, self.folder = run, sandbox, folder
        self.emitted: list[dict[str, Any]] = []
        self.count = 0

    def __call__(self, *args: str) -> list[dict[str, Any]]:
        out = self.folder / f"p{self.count}.jsonl"
        self.count += 1
        result = self.run(["pull", *args, "-o", str(out)], env=self.sandbox.env())
        assert result.exit_code == 0, result.stderr
        self.stderr = result.stderr
        orders = read_jsonl(out)
        self.emitted += orders
        return orders

    def times_emitted(self, oid: int) -> int:
        return sum(1 for o in self.emitted if o["id"] == oid)


@pytest.fixture
def pulls(run: Any, sandbox: Sandbox, tmp_path: Path) -> Pulls:
    return Pulls(run, sandbox, tmp_path)


START_ARGS = {
    "date": ("--since", "1d"),
    "updated": ("--since", "1d", "--updated"),
    "number": ("--from-order", "1000"),
    "queue": ("--queue", "new_updated_orders"),
}


@pytest.mark.parametrize("mode", list(START_ARGS))
def test_held_admin_order_is_emitted_once_after_payment(
    mode: str, pulls: Pulls, sandbox: Sandbox, isolated_home: Path
) -> None:
    store = sandbox.store
    pulls(*START_ARGS[mode], "--require-payment")
    admin = store.add_order(kind="admin")["id"]
    paid_card = store.add_order(kind="card")["id"]
    second = pulls("--require-payment")
    assert paid_card in {o["id"] for o in second}
    assert admin not in {o["id"] for o in pulls.emitted}
    assert admin in held_ids(isolated_home)
    assert re.search(r"\d+ held unpaid", pulls.stderr)
    pulls("--require-payment")  # still unpaid: still held, not emitted
    assert pulls.times_emitted(admin) == 0
    store.pay(admin)
    released = pulls("--require-payment")
    emitted = [o for o in released if o["id"] == admin]
    assert len(emitted) == 1 and emitted[0]["payments"]
    assert "released" in pulls.stderr
    pulls("--require-payment")
    pulls("--require-payment")
    assert pulls.times_emitted(admin) == 1
    assert admin not in held_ids(isolated_home)
    if mode == "queue":
        assert admin not in store.queue_ids(
            "new_updated_orders"
        )  # acknowledged once paid


def test_held_order_in_queue_is_not_acknowledged(
    pulls: Pulls, sandbox: Sandbox
) -> None:
    store = sandbox.store
    admin = store.add_order(kind="admin")["id"]
    pulls("--queue", "new_updated_orders", "--require-payment", "--page-size", "25")
    queued = set(store.queue_ids("new_updated_orders"))
    unpaid = {o["id"] for o in store.orders_snapshot() if is_unpaid(o)}
    assert admin in unpaid
    assert queued == unpaid  # everything else was written and acknowledged
    assert not queued & {o["id"] for o in pulls.emitted}
    assert admin not in {o["id"] for o in pulls.emitted}


def test_held_unpaid_check_order_is_emitted_when_the_hold_expires(
    pulls: Pulls, sandbox: Sandbox, isolated_home: Path
) -> None:
    pulls("--since", "1d", "--require-payment")
    check = sandbox.store.add_order(kind="check")["id"]
    pulls("--require-payment", "--hold-for", "24h")
    assert check in held_ids(isolated_home)
    # a day passes: age the hold in the saved state rather than waiting
    state = StateStore(isolated_home / "state.json")
    ((key, record),) = state.all().items()
    record["held"][str(check)]["since"] -= 2 * 86400
    state.put(key, record)
    expired = pulls("--require-payment", "--hold-for", "24h")
    assert [o["id"] for o in expired].count(check) == 1
    assert "still unpaid after the 24 h hold" in pulls.stderr
    assert check not in held_ids(isolated_home)


def test_held_orders_are_released_when_payment_is_no_longer_required(
    pulls: Pulls, sandbox: Sandbox, isolated_home: Path
) -> None:
    pulls("--since", "1d", "--require-payment")
    admin = sandbox.store.add_order(kind="admin")["id"]
    pulls("--require-payment")
    assert admin in held_ids(isolated_home)
    released = pulls()  # the flag dropped: nothing may stay hidden
    assert admin in {o["id"] for o in released}
    assert held_ids(isolated_home) == set()


def test_held_through_listen(tmp_path: Path) -> None:
    from tests.support.targets import read_target
    from tests.support.webhook import SECRET, Receiver

    with Sandbox(orders=20, seed=63) as sb:
        env = {**sb.env(), "MIVA_SYNC_HOLD_RECHECK": "0.2"}
        receiver = Receiver(str(tmp_path / "w.jsonl"), tmp_path / "home", env=env,
                            args=("--require-payment",))  # fmt: skip
        try:
            admin = sb.store.add_order(kind="admin")
            answer = receiver.post(admin)
            assert answer.status_code == 200 and answer.json()["result"] == "held"
            assert read_target("jsonl", str(tmp_path / "w.jsonl")) == {}
            # the receiver restarts: the hold is remembered
            receiver.stop()
            receiver = Receiver(str(tmp_path / "w.jsonl"), tmp_path / "home", env=env,
                                args=("--require-payment",))  # fmt: skip
            assert admin["id"] in held_ids(tmp_path / "home")
            paid = sb.store.pay(admin["id"])
            # no webhook for the payment: the periodic re-check releases it
            wait_for(
                lambda: admin["id"] in read_target("jsonl", str(tmp_path / "w.jsonl")),
                "the held order to be released",
                timeout=20,
            )
            assert read_target("jsonl", str(tmp_path / "w.jsonl"))[admin["id"]] == paid
            # a later delivery of the same paid version is a repeat, not a new write
            assert receiver.post(paid).json()["result"] == "unchanged"
            lines = (tmp_path / "w.jsonl").read_text().splitlines()
            assert [json.loads(line)["id"] for line in lines].count(admin["id"]) == 1
        finally:
            code, _out, err = receiver.stop()
        assert code == 0
        assert SECRET not in err


def test_resend_ids_writes_exactly_those_and_leaves_the_cursor(
    run: Any, sandbox: Sandbox, tmp_path: Path, isolated_home: Path
) -> None:
    env = sandbox.env()
    assert (
        run(
            ["pull", "--since", "90d", "-o", str(tmp_path / "a.jsonl")], env=env
        ).exit_code
        == 0
    )
    before = (isolated_home / "state.json").read_bytes()
    ids = sorted(o["id"] for o in sandbox.store.orders_snapshot())[5:8]
    out = tmp_path / "again.jsonl"
    result = run(["pull", "--ids", ",".join(map(str, ids)), "-o", str(out)], env=env)
    assert result.exit_code == 0, result.stderr
    assert [o["id"] for o in read_jsonl(out)] == ids
    assert (isolated_home / "state.json").read_bytes() == before
    # from a file, into a database, with an unknown id reported (exit 2)
    id_file = tmp_path / "ids.txt"
    id_file.write_text(f"{ids[0]}\n999999\n{ids[1]}\n")
    db = tmp_path / "r.db"
    result = run(["pull", "--ids-from", str(id_file), "-o", f"sqlite:///{db}"], env=env)
    assert result.exit_code == 2
    assert "999999" in result.stderr
    import sqlite3

    with sqlite3.connect(db) as conn:
        assert sorted(r[0] for r in conn.execute("SELECT id FROM orders")) == ids[:2]
    assert (isolated_home / "state.json").read_bytes() == before


@pytest.mark.parametrize(
    "bad", [["--ids", "12,abc"], ["--ids", ""], ["--ids", "5", "--since", "1d"]]
)
def test_resend_bad_ids_are_usage_errors(
    run: Any, sandbox: Sandbox, bad: list[str]
) -> None:
    result = run(["pull", *bad], env=sandbox.env())
    assert result.exit_code == 2
    assert "--ids" in result.stderr


def test_resend_an_answer_without_ids_is_exit_5_not_a_traceback(
    run: Any, api: Any, store_env: dict[str, str]
) -> None:
    """Found in review: --ids indexed the store's answer with o["id"]."""
    from tests.support.fakes import STORE_URL

    api.post(
        STORE_URL,
        json={"success": 1, "data": {"total_count": 1, "start_offset": 0,
                                     "data": [{"order_id": 5, "dt_updated": 1}]}},
    )  # fmt: skip
    result = run(["pull", "--ids", "5", "-o", "-"])
    assert result.exit_code == 5, result.stderr
    assert "id is not a number" in result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""

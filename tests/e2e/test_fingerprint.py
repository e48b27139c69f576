"""The content fingerprint: acknowledgement bookkeeping is not a change (issue 18, finding 3).

The default columns ask for ``CustomField_Values:*``, which includes the
``orderworkflow`` module's own queue flags. A store that rewrites them when an
order is acknowledged (the sandbox's ``ack-rewrites-order`` quirk) must never
make miva-sync emit an order a second time: not in the queue's re-read after
the acknowledgement, not in later pulls of stores without ``dt_updated``, not
in the webhook receiver. Dedupe entries saved by releases before the
fingerprint must keep matching after an upgrade.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import DEFAULT_QUEUE, RECEIVED_QUEUE, Sandbox, Store
from miva_sync.sandbox.quirks import Quirks
from miva_sync.state.file import StateStore
from miva_sync.store.orders import fingerprint, version_key
from miva_sync.sync.dedupe import DedupeWindow
from tests.support import webhook
from tests.support.helpers import read_orders
from tests.support.webhook import Receiver

ACK_REWRITES = Quirks(ack_rewrites_order=True)
FINGERPRINT = re.compile(r"h[0-9a-f]{24}")
Orders = list[dict[str, Any]]
receivers = webhook.receivers


def old_release_hash(order: dict[str, Any]) -> str:
    """The content hash as releases before the fingerprint saved it: a frozen
    copy of their ``version_key``, so this test does not lean on the code under
    test to write an "old" state file."""
    volatile = {"dt_login", "order_cnt", "order_avg", "formatted_order_avg",
                "order_tot", "formatted_order_tot", "note_count", "credit",
                "formatted_credit"}  # fmt: skip
    content = dict(order)
    if isinstance(content.get("customer"), dict):
        content["customer"] = {
            k: v for k, v in content["customer"].items() if k not in volatile
        }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "h" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def with_workflow_flags(order: dict[str, Any], **flags: str) -> dict[str, Any]:
    custom = {**order.get("CustomField_Values", {}), "orderworkflow": flags}
    return {**order, "CustomField_Values": custom}


def acknowledge_all(store: Store) -> list[int]:
    """Another integration (or the workflow) acknowledges every order."""
    ids = store.ids()
    assert store.acknowledge(ids) == 1
    return ids


def assert_quirk_fired(out_orders: Orders, store: Store) -> None:
    """The test means something only if the store really rewrote the orders:
    each was first emitted without the flags, and the store has them now."""
    now = {o["id"]: o for o in store.orders_snapshot()}
    first: dict[int, dict[str, Any]] = {}
    for order in out_orders:
        first.setdefault(order["id"], order)
    assert all("orderworkflow" not in o["CustomField_Values"] for o in first.values())
    assert all("orderworkflow" in now[oid]["CustomField_Values"] for oid in first)


# -- the fingerprint itself ---------------------------------------------------------


@pytest.fixture(scope="module")
def order() -> dict[str, Any]:
    with Sandbox(orders=5, seed=4) as sb:
        found = next(o for o in sb.store.orders_snapshot() if o["customer"])
    return json.loads(json.dumps(found))  # as a client parses it


def test_fingerprint_leaves_out_bookkeeping_and_volatile_fields(
    order: dict[str, Any],
) -> None:
    base = fingerprint(order)
    assert FINGERPRINT.fullmatch(base)
    customer = order["customer"]
    same = [
        with_workflow_flags(order, new_updated_orders="0", order_received="1"),
        with_workflow_flags(order),
        {**order, "dt_updated": order["dt_updated"] + 60},
        {k: v for k, v in order.items() if k != "dt_updated"},
        {**order, "customer": {**customer, "dt_login": 1, "dt_pwchg": 2}},
        {**order, "customer": {**customer, "order_cnt": 9, "order_tot": 1.5}},
        dict(reversed(order.items())),  # key order is no content
    ]
    assert [fingerprint(o) for o in same] == [base] * len(same)
    custom = order["CustomField_Values"]
    changed = [
        {**order, "status": order["status"] + 1},
        {**order, "items": order["items"][:-1]},
        {**order, "CustomField_Values": {**custom, "customfields": {"po_number": "x"}}},
        {**order, "CustomField_Values": {**custom, "othermodule": {"flag": "1"}}},
        {**order, "customer": {**customer, "ship_city": "Elsewhere"}},
    ]
    prints = [fingerprint(o) for o in changed]
    assert base not in prints and len(set(prints)) == len(prints)


def test_version_key_is_dt_updated_else_the_fingerprint(order: dict[str, Any]) -> None:
    assert version_key(order) == order["dt_updated"]
    without = {k: v for k, v in order.items() if k != "dt_updated"}
    assert version_key(without) == fingerprint(order)
    assert version_key(with_workflow_flags(without, q="1")) == fingerprint(order)


def test_dedupe_entry_of_an_older_release_still_matches_and_is_migrated(
    order: dict[str, Any],
) -> None:
    bare = {k: v for k, v in order.items() if k != "dt_updated"}
    key = str(bare["id"])
    window = DedupeWindow({key: [old_release_hash(bare), bare["orderdate"], None]})
    before = window.entries[key]
    assert bare in window
    assert window.entries[key] == [fingerprint(bare), bare["orderdate"], None]
    assert before[0] == old_release_hash(bare)  # replaced, not changed in place
    # saved before an acknowledgement wrote the workflow flags: still the same
    window = DedupeWindow({key: [old_release_hash(bare), bare["orderdate"], None]})
    assert with_workflow_flags(bare, q="0") in window
    # a real change is still a change
    window = DedupeWindow({key: [old_release_hash(bare), bare["orderdate"], None]})
    assert {**bare, "status": bare["status"] + 1} not in window
    assert window.entries[key][0] == old_release_hash(bare)


# -- queue mode, through the CLI ----------------------------------------------------


@pytest.mark.parametrize("dt_updated", [True, False], ids=["dt_updated", "content"])
def test_queue_ack_that_rewrites_workflow_fields_emits_no_order_twice(
    run: Any, tmp_path: Path, dt_updated: bool
) -> None:
    with Sandbox(
        orders=120, seed=5, supports_dt_updated=dt_updated, quirks=ACK_REWRITES
    ) as sb:
        store, out = sb.store, tmp_path / "o.jsonl"
        touched: list[int] = []

        def update_first_page(store: Store) -> None:
            # after the first page is served, before it is acknowledged: a real
            # change, which the re-read after the acknowledgement must still see
            for oid in store.queue_ids(DEFAULT_QUEUE)[:3]:
                store.update_order(oid, status=400)
                touched.append(oid)

        sb.after_request(1, update_first_page)
        args = ["pull", "--queue", DEFAULT_QUEUE, "--page-size", "30", "-o", str(out)]
        first = run(args, env=sb.env())
        assert first.exit_code == 0, first.stderr
        assert "123 orders emitted" in first.stderr
        assert "3 newer after acknowledgement" in first.stderr
        orders = read_orders(out)
        counts = Counter(o["id"] for o in orders)
        assert {i for i, n in counts.items() if n > 1} == set(touched)
        assert max(counts.values()) == 2
        assert_quirk_fired(orders, store)
        assert store.queue_ids(DEFAULT_QUEUE) == []

        # next run: acknowledged orders come back unchanged (moved back by hand),
        # one with a real update; their ack rewrites the flags once more
        # (not the orders updated above: same second, same dt_updated; a known limit)
        again = [i for i in store.queue_ids(RECEIVED_QUEUE) if i not in touched][:8]
        for oid in again:
            store.enqueue(oid)
        store.update_order(again[0], status=300)
        second = run(["pull", "-o", str(out)], env=sb.env())
        assert second.exit_code == 0, second.stderr
        assert "1 orders emitted, 7 unchanged skipped" in second.stderr
        assert "0 newer after acknowledgement" in second.stderr
        assert [o["id"] for o in read_orders(out)[len(orders) :]] == [again[0]]


# -- date and number mode on a store without dt_updated ---------------------------


@pytest.mark.parametrize("mode", ["date", "number"])
def test_pulls_without_dt_updated_after_acks_emit_nothing_twice(
    run: Any, tmp_path: Path, mode: str
) -> None:
    with Sandbox(
        orders=80, seed=9, supports_dt_updated=False, quirks=ACK_REWRITES
    ) as sb:
        store, out = sb.store, tmp_path / "o.jsonl"
        start = (
            ["--since", "90d", "--lookback", "90d"]
            if mode == "date"
            else ["--from-order", str(store.ids()[0]), "--overlap", "1000"]
        )
        first = run(["pull", *start, "-o", str(out)], env=sb.env())
        assert first.exit_code == 0, first.stderr
        emitted = read_orders(out)
        assert len(emitted) == 80 and "dt_updated" not in emitted[0]
        acknowledge_all(store)
        assert_quirk_fired(emitted, store)
        for _ in range(2):
            again = run(["pull", "-o", str(out)], env=sb.env())
            assert again.exit_code == 0, again.stderr
            assert "0 orders emitted, 80 unchanged skipped" in again.stderr
        changed = store.update_order(emitted[5]["id"], status=300)
        last = run(["pull", "-o", str(out)], env=sb.env())
        assert "1 orders emitted, 79 unchanged skipped" in last.stderr
        assert [o["id"] for o in read_orders(out)] == [o["id"] for o in emitted] + [
            changed["id"]
        ]


# -- state written by an older release ----------------------------------------------


@pytest.mark.parametrize("target", ["jsonl", "sqlite"])
def test_old_format_hashes_in_saved_state_cause_no_re_emission(
    run: Any, tmp_path: Path, isolated_home: Path, target: str
) -> None:
    out = tmp_path / "o.jsonl"
    db = tmp_path / "o.db"
    where = str(out) if target == "jsonl" else f"sqlite:///{db}"
    with Sandbox(
        orders=60, seed=11, supports_dt_updated=False, quirks=ACK_REWRITES
    ) as sb:
        first = run(["pull", "--since", "90d", "--lookback", "90d", "-o", where],
                    env=sb.env())  # fmt: skip
        assert first.exit_code == 0, first.stderr
        if target == "jsonl":
            emitted = read_orders(out)
        else:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT order_json FROM orders ORDER BY id")
                emitted = [json.loads(r[0]) for r in rows]
        assert len(emitted) == 60
        old = {str(o["id"]): old_release_hash(o) for o in emitted}
        # the serialisations agree on plain ASCII orders; names like "Zoë" and
        # the customer's dt_pwchg make these hashes differ from the new ones
        assert sum(old[str(o["id"])] != fingerprint(o) for o in emitted) >= 20

        # the saved state as an older release wrote it: its hashes, same shape
        state = StateStore(isolated_home / "state.json")
        ((key, record),) = state.all().items()
        for oid, entry in record["dedupe"].items():
            entry[0] = old[oid]
        state.put(key, record)
        if target == "sqlite":  # the database's own copy is authoritative there
            with sqlite3.connect(db) as conn:
                (saved,) = conn.execute("SELECT record FROM sync_state").fetchone()
                copy = json.loads(saved)
                for oid, entry in copy["dedupe"].items():
                    entry[0] = old[oid]
                conn.execute("UPDATE sync_state SET record = ?", (json.dumps(copy),))

        # half the orders acknowledged since: the old hash predates their flags
        assert sb.store.acknowledge(sb.store.ids()[::2]) == 1
        upgraded = run(["pull", "-o", where], env=sb.env())
        assert upgraded.exit_code == 0, upgraded.stderr
        assert "0 orders emitted, 60 unchanged skipped" in upgraded.stderr
        if target == "jsonl":
            assert len(read_orders(out)) == 60
            # migrated as they were seen: the next run compares new to new
            ((_, record),) = state.all().items()
            assert {e[0] for e in record["dedupe"].values()} == {
                fingerprint(o) for o in emitted
            }


# -- the webhook receiver -----------------------------------------------------------


def test_webhook_comparison_ignores_the_workflow_fields(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    with Sandbox(
        orders=20, seed=42, supports_dt_updated=False, quirks=ACK_REWRITES
    ) as sb:
        # with a store connection: a delivery without dt_updated is re-read by
        # id, and after the acknowledgement the re-read carries the flags
        receiver = Receiver(tmp_path / "w.jsonl", tmp_path / "home", env=sb.env())
        receivers.append(receiver)
        first, second = sb.store.ids()[:2]
        assert receiver.deliver({"id": first, "status": 100}) == "written"
        assert sb.store.acknowledge([first]) == 1
        assert receiver.deliver({"id": first, "status": 100}) == "unchanged"
        receiver.stop()
        written = read_orders(tmp_path / "w.jsonl")
        assert [o["id"] for o in written] == [first]
        assert "orderworkflow" not in written[0]["CustomField_Values"]
        assert "orderworkflow" in sb.store.orders_snapshot()[0]["CustomField_Values"]

    # without a store connection: the delivery itself is compared
    receiver = Receiver(tmp_path / "x.jsonl", tmp_path / "home2")
    receivers.append(receiver)
    order = {"id": second, "orderdate": 100, "status": 100, "items": [],
             "CustomField_Values": {"customfields": {"po_number": "PO-1"}}}  # fmt: skip
    flagged = with_workflow_flags(order, new_updated_orders="0")
    answers = [
        receiver.deliver(order),
        receiver.deliver(flagged),
        receiver.deliver({**flagged, "status": 200}),
    ]
    assert answers == ["written", "unchanged", "written"]

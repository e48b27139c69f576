"""What the chaos suites share: a seeded trial, a busy store, and each mode's contract.

A trial is one mode, one output kind and one seed; ``check_contract`` reads
what its target holds after the last clean run and checks the mode's promise:
nothing emitted twice unchanged, nothing lost, nothing stale.
"""

from __future__ import annotations

import json
import random
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.helpers import read_jsonl
from tests.support.targets import newest

MODES = ("date", "updated", "number", "queue")
OUTPUTS = ("jsonl", "dir", "sqlite")
QUEUE = "new_updated_orders"


@dataclass
class Trial:
    mode: str
    output: str
    seed: int
    folder: Path
    rng: random.Random = field(init=False)
    runs: int = 0

    def __post_init__(self) -> None:
        self.rng = random.Random(f"chaos:{self.mode}:{self.output}:{self.seed}")

    def target(self) -> str:
        if self.output == "dir":
            return f"{self.folder / 'out'}/"
        if self.output == "sqlite":
            return f"sqlite:///{self.folder / 'out.db'}"
        # one file appended by every run, as cron does: a crash's page is replayed
        # from its tail, so even a stream target gets no duplicates
        return str(self.folder / "out.jsonl")

    def start_args(self, store_now: int, low_id: int) -> list[str]:
        if self.mode == "date":
            return ["--since", str(store_now - 90 * 86400)]
        if self.mode == "updated":
            return ["--since", str(store_now - 90 * 86400), "--updated"]
        if self.mode == "number":
            # an overlap wide enough that every late number is inside it
            return ["--from-order", str(low_id), "--overlap", "2000"]
        return ["--queue", QUEUE]


def store_activity(store: Any, rng: random.Random) -> None:
    """Things a busy store does: new, late, admin, updated, burst orders."""
    ids = store.ids()
    for _ in range(rng.randint(1, 6)):
        roll = rng.random()
        if roll < 0.3:
            store.add_order(kind=rng.choice(["card", "paypal", "admin", "check"]))
        elif roll < 0.45:  # visible late, behind the watermark (within the lookback)
            store.add_order(orderdate=store.now() - rng.randint(0, 600))
        elif roll < 0.55 and store.hidden_ids():
            store.reveal(rng.choice(store.hidden_ids()))
        elif roll < 0.8:
            store.update_order(rng.choice(ids), status=rng.choice([100, 200, 300]))
        elif roll < 0.9:  # a burst sharing one second
            when = store.now()
            for _ in range(rng.randint(5, 40)):
                store.add_order(orderdate=when)
        else:
            try:
                store.pay(rng.choice(ids))
            except ValueError:
                pass  # not an unpaid admin order


def newest_in_target(
    trial: Trial,
) -> tuple[dict[int, dict[str, Any]], list[tuple[int, Any]]]:
    """The newest version of each order the target holds, and every emission."""
    emitted: list[dict[str, Any]] = []
    if trial.output == "jsonl":
        emitted = read_jsonl(trial.folder / "out.jsonl")
    elif trial.output == "dir":
        emitted = [
            json.loads(p.read_text()) for p in (trial.folder / "out").glob("*.json")
        ]
    else:
        with sqlite3.connect(trial.folder / "out.db") as conn:
            rows = conn.execute("SELECT id, order_json FROM orders").fetchall()
        emitted = [json.loads(text) for _, text in rows]
        assert len({oid for oid, _ in rows}) == len(rows)
    # an emission is the whole object: the same (id, dt_updated) with other
    # content is an update within one second, emitted again on purpose
    return newest(emitted), [(o["id"], json.dumps(o, sort_keys=True)) for o in emitted]


def check_contract(trial: Trial, store: Any, start: list[str]) -> None:
    snapshot = {o["id"]: o for o in store.orders_snapshot()}
    held, emissions = newest_in_target(trial)
    # nothing emitted twice unchanged
    repeated = sorted(oid for (oid, _), n in Counter(emissions).items() if n > 1)
    assert not repeated, f"emitted twice unchanged: {repeated[:10]}"
    if trial.mode == "date":
        since = int(start[1])
        wanted = {oid for oid, o in snapshot.items() if o["orderdate"] >= since}
        assert wanted <= set(held), f"lost: {sorted(wanted - set(held))[:10]}"
        return
    if trial.mode == "updated":
        since = int(start[1])
        wanted = {oid for oid, o in snapshot.items() if o["dt_updated"] >= since}
    elif trial.mode == "number":
        wanted = {oid for oid in snapshot if oid >= int(start[1])}
    else:
        wanted = set(snapshot)  # every order passed through the queue
        assert store.queue_ids(QUEUE) == []
    missing = wanted - set(held)
    assert not missing, f"lost: {sorted(missing)[:10]}"
    stale = [
        oid for oid in wanted if held[oid]["dt_updated"] != snapshot[oid]["dt_updated"]
    ]
    assert not stale, f"stale: {stale[:10]}"

"""``--workers`` in real processes killed part-way: the resume leaves no gap."""

from __future__ import annotations

import random
from pathlib import Path

from miva_sync.sandbox import Sandbox
from tests.support.helpers import (
    cli_env,
    pull_killed_repeatedly,
)


def test_parallel_pull_killed_mid_way_resumes_without_gaps(tmp_path: Path) -> None:
    with Sandbox(orders=900, seed=31, tie_order="random", latency_ms=30) as sb:
        home = tmp_path / "home"
        env = cli_env(sb, home)
        since = sb.store.now() - 400 * 86400
        expected = {
            o["id"] for o in sb.store.orders_snapshot() if o["orderdate"] >= since
        }
        rng = random.Random(77)
        received = pull_killed_repeatedly(
            ["pull", "--page-size", "10", "--workers", "4"],
            env,
            tmp_path,
            since=since,
            attempts=3,
            lines=lambda: rng.randint(50, 250),
            after=lambda: rng.uniform(0, 0.05),
        )
    assert received >= expected

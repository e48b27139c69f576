"""Held unpaid orders survive real pull processes killed with -9, and restarts."""

from __future__ import annotations

from pathlib import Path

from miva_sync.sandbox import Sandbox
from tests.support.helpers import (
    cli_env,
    held_ids,
    kill_part_way,
    read_jsonl,
    run_cli,
)


def test_held_orders_survive_kill_9_and_restarts(tmp_path: Path) -> None:
    with Sandbox(orders=300, seed=62, latency_ms=40) as sb:
        home = tmp_path / "home"
        env = cli_env(sb, home)
        run_cli(
            "pull",
            "--since",
            "1d",
            "--require-payment",
            "-o",
            str(tmp_path / "a.jsonl"),
            env=env,
        )
        admin = sb.store.add_order(kind="admin")["id"]
        run_cli("pull", "--require-payment", "-o", str(tmp_path / "b.jsonl"), env=env)
        assert admin in held_ids(home)
        # a long run (the whole window again), killed part-way: the held order
        # must still be held afterwards
        long_run = ["pull", "--since", "90d", "--full-refresh", "--require-payment",
                    "--page-size", "10", "-o", str(tmp_path / "c.jsonl")]  # fmt: skip
        status = kill_part_way(long_run, env, tmp_path / "c.jsonl", lines=20)
        assert status == -9, "the run finished before the kill"
        assert admin in held_ids(home)
        sb.store.pay(admin)
        run_cli("pull", "--require-payment", "-o", str(tmp_path / "d.jsonl"), env=env)
        everything = [
            o["id"] for p in sorted(tmp_path.glob("*.jsonl")) for o in read_jsonl(p)
        ]
        assert everything.count(admin) == 1
        assert admin not in held_ids(home)

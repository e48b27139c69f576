"""The webhook receiver as a process: kill -9 right after a 2xx, and pulls
running beside it into one SQLite target."""

from __future__ import annotations

import sqlite3
import subprocess
import time
from pathlib import Path

from miva_sync.sandbox import Sandbox
from tests.support import webhook
from tests.support.helpers import CLI, cli_env, run_cli
from tests.support.targets import read_target
from tests.support.webhook import Receiver, targets

receivers = webhook.receivers


def test_webhook_kill_9_right_after_a_2xx_never_loses_the_order(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    for kind, target in targets(tmp_path).items():
        receiver = Receiver(target, tmp_path / f"home-{kind}")
        receivers.append(receiver)
        order = {"id": 77, "orderdate": 5, "dt_updated": 6, "status": 100, "items": []}
        assert receiver.post(order).status_code == 200
        receiver.proc.kill()  # SIGKILL: no chance to flush anything
        receiver.proc.wait(10)
        assert read_target(kind, target) == {77: order}, kind


def test_webhook_receiver_and_pull_share_one_sqlite_target(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    db = tmp_path / "shared.db"
    target = f"sqlite:///{db}"
    home = tmp_path / "home"
    receiver = Receiver(target, home)
    receivers.append(receiver)
    with Sandbox(orders=150, seed=43, webhook_url=receiver.url, latency_ms=5) as sb:
        env = cli_env(sb, home)
        pulls = [
            subprocess.Popen(
                [
                    *CLI,
                    "pull",
                    "--since",
                    "90d",
                    "--updated",
                    "--page-size",
                    "10",
                    "-o",
                    target,
                ],
                env=env,
                stderr=subprocess.PIPE,
                text=True,
            )
        ]
        ids = sorted(o["id"] for o in sb.store.orders_snapshot())
        for round_ in range(3):
            for oid in ids[round_ * 20 : round_ * 20 + 20]:
                sb.store.update_order(oid, status=200 + round_)
            sb.store.add_order()
            time.sleep(0.2)
            pulls.append(
                subprocess.Popen(
                    [*CLI, "pull", "--wait", "-o", target],
                    env=env,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        codes = [p.wait(120) for p in pulls]
        errors = [p.stderr.read() for p in pulls if p.stderr]
        assert codes == [0] * len(pulls), errors
        assert sb.webhook is not None
        sb.webhook.drain()
        run_cli("pull", "-o", target, env=env)
        snapshot = {o["id"]: o for o in sb.store.orders_snapshot()}
    held = read_target("sqlite", target)
    assert set(held) == set(snapshot)
    assert all(
        held[oid]["dt_updated"] == snapshot[oid]["dt_updated"] for oid in snapshot
    )
    with sqlite3.connect(db) as conn:
        sources = {s for (s,) in conn.execute("SELECT DISTINCT source FROM orders")}
    assert sources == {"pull", "webhook"}

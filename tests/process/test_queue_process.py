"""Queue mode in real subprocesses: kill -9 between the durable write and the ack."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import DEFAULT_QUEUE, RequestLogEntry, Sandbox
from miva_sync.state.file import StateStore

CLI = [sys.executable, "-m", "miva_sync"]
LOAD = "QueueOrderList_Load_Query"
ACK = "OrderList_Acknowledge"


def env_for(sandbox: Sandbox, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    return {**env, **sandbox.env(), "MIVA_SYNC_HOME": str(home)}


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_bytes().splitlines()]


@pytest.mark.parametrize(
    "store_acted", [False, True], ids=["before-the-store-acts", "after-the-store-acts"]
)
def test_queue_kill_9_between_write_and_ack_loses_nothing_and_repeats_nothing(
    tmp_path: Path, store_acted: bool
) -> None:
    with Sandbox(orders=150, seed=23) as sb:
        home = tmp_path / "home"
        env = env_for(sb, home)
        out = tmp_path / "out.jsonl"
        pid: list[int] = []
        loads = Counter[str]()
        killed = threading.Event()

        def kill_at_second_ack(n: int, entry: RequestLogEntry) -> None:
            if entry.module_function == LOAD:
                loads["n"] += 1
                if loads["n"] == 2:
                    # the next request is this page's acknowledgement: it is
                    # cut off, either before or after the store handles it
                    sb.faults.inject("reset", processed=store_acted)
            elif (
                entry.module_function == ACK
                and loads["n"] == 2
                and pid
                and not killed.is_set()
            ):
                os.kill(pid[0], signal.SIGKILL)  # before the store's answer leaves
                killed.set()

        sb.on_request(kill_at_second_ack)
        args = ["pull", "--queue", DEFAULT_QUEUE, "--page-size", "40", "-o", str(out)]
        proc = subprocess.Popen([*CLI, *args], env=env, stderr=subprocess.PIPE)
        pid.append(proc.pid)
        assert proc.wait(60) == -signal.SIGKILL
        assert killed.is_set()
        written = [o["id"] for o in read_jsonl(out)]
        assert len(written) == 80  # two pages durably written, one acknowledged
        (record,) = StateStore(home / "state.json").all().values()
        assert record["cursors"]["queue"]["pending_ack"] == written[40:]
        queued = set(sb.store.queue_ids(DEFAULT_QUEUE))
        assert bool(queued & set(written[40:])) is not store_acted

        done = subprocess.run(
            [*CLI, "pull", "-o", str(out)],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert "acknowledging 40 orders an earlier run wrote" in done.stderr
        final = [o["id"] for o in read_jsonl(out)]
        assert len(final) == len(set(final)), "an order was emitted twice"
        assert sorted(final) == [o["id"] for o in sb.store.orders_snapshot()]
        assert sb.store.queue_ids(DEFAULT_QUEUE) == []

"""``pull --json`` in a real process: where the summary object goes on the real
standard streams, and what a signalled run reports (issue 21, docs/design.md §4.4)."""

from __future__ import annotations

import json
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.helpers import (
    CLI_CTRL_C,
    Gate,
    cli_env,
    read_jsonl,
    run_cli,
    saved_record,
    wait_for,
)
from tests.support.schemas import valid


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=300, seed=9, tie_order="id") as sb:
        yield sb


def test_pull_json_goes_to_stderr_last_when_stdout_carries_the_orders(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = cli_env(sandbox, tmp_path / "home")
    done = run_cli("pull", "--since", "30d", "--page-size", "100", "--json", env=env)
    orders = [json.loads(line) for line in done.stdout.splitlines()]
    assert orders and all("id" in order and "mode" not in order for order in orders)
    last = done.stderr.splitlines()[-1]
    summary = valid("run-summary", json.loads(last))
    assert summary["emitted"] == len(orders) and summary["exit_status"] == 0


def test_pull_json_into_a_file_is_the_only_stdout(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = cli_env(sandbox, tmp_path / "home")
    out = tmp_path / "orders.jsonl"
    done = run_cli("pull", "--since", "30d", "-o", str(out), "--json", env=env)
    (line,) = done.stdout.splitlines()
    summary = valid("run-summary", json.loads(line))
    assert summary["emitted"] == len(read_jsonl(out)) > 0


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM])
def test_pull_json_of_a_signalled_run_says_130_and_the_committed_cursor(
    sandbox: Sandbox, tmp_path: Path, sent: signal.Signals
) -> None:
    home = tmp_path / "home"
    env = cli_env(sandbox, home)
    out = tmp_path / "orders.jsonl"
    since = str(sandbox.store.now() - 90 * 86400)
    gate = Gate(sandbox, 4)  # the pull is held mid-run, pages behind it committed
    proc = subprocess.Popen(
        [*CLI_CTRL_C, "pull", "--since", since, "--page-size", "10", "-o", str(out),
         "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        wait_for(gate.entered.is_set, "the pull's fourth request")
        proc.send_signal(sent)
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        gate.open()
    assert proc.returncode == 130, stderr
    (line,) = stdout.splitlines()
    summary = valid("run-summary", json.loads(line))
    assert summary["exit_status"] == 130 and summary["emitted"] > 0
    committed = saved_record(home)["cursors"]["date"]["watermark"]
    assert summary["watermark"] == committed is not None
    assert "interrupted" in stderr.splitlines()[-1]

"""``pull --json`` in a real process: where the summary object goes on the real
standard streams, and what a signalled run reports (issue 21, docs/design.md §4.4)."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.helpers import (
    CLI_CTRL_C,
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
    tmp_path: Path, sent: signal.Signals
) -> None:
    """Signalled once a watermark is committed, while the next request is held.

    The sandbox answers each page after 300 ms, so the pull (30 pages) lasts
    long enough for commits to happen while it runs (they are grouped, at
    least 250 ms apart); the first request that arrives after the state file
    holds a watermark is held until the signal, whatever the timing. Holding
    the fourth request was not enough: three quick pages fit in one grouped
    commit, so the state held no watermark yet (every time, checked), and the
    test relied on the commit an interrupt makes, which is rightly skipped when
    the signal lands while a page is being written (it failed so on CI).
    """
    home = tmp_path / "home"
    out = tmp_path / "orders.jsonl"
    held, release = threading.Event(), threading.Event()

    def hold_once_a_watermark_is_committed(n: int, entry: object) -> None:
        if not held.is_set() and _committed_watermark(home) is not None:
            held.set()
            release.wait(60)

    with Sandbox(orders=300, seed=9, tie_order="id", latency_ms=300) as sandbox:
        sandbox.on_request(hold_once_a_watermark_is_committed)
        since = str(sandbox.store.now() - 90 * 86400)
        proc = subprocess.Popen(
            [*CLI_CTRL_C, "pull", "--since", since, "--page-size", "10", "-o",
             str(out), "--json"],
            env=cli_env(sandbox, home),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        try:
            wait_for(held.is_set, "a request after the first committed watermark")
            proc.send_signal(sent)
            stdout, stderr = proc.communicate(timeout=30)
        finally:
            release.set()
    assert proc.returncode == 130, stderr
    (line,) = stdout.splitlines()
    summary = valid("run-summary", json.loads(line))
    assert summary["exit_status"] == 130 and summary["emitted"] > 0
    committed = saved_record(home)["cursors"]["date"]["watermark"]
    assert summary["watermark"] == committed is not None
    assert "interrupted" in stderr.splitlines()[-1]


def _committed_watermark(home: Path) -> int | None:
    """The date cursor's watermark in ``home``'s state file (replaced whole,
    never edited: a reader sees the old file or the new one), if any."""
    try:
        record = saved_record(home)
    except (OSError, ValueError, KeyError):
        return None
    value = record.get("cursors", {}).get("date", {}).get("watermark")
    return value if isinstance(value, int) else None

"""The real CLI in subprocesses: kill -9, closed pipes, two runs at once, faults, SIGTERM."""

from __future__ import annotations

import fcntl
import json
import random
import select
import signal
import subprocess
import sys
import termios
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.helpers import (
    CLI,
    assert_state_valid,
    cli_env,
    pull_killed_repeatedly,
    read_jsonl,
    run_cli,
    wait_for,
)


@pytest.fixture
def slow_sandbox() -> Iterator[Sandbox]:
    # latency so that a run takes long enough to be killed part-way through
    with Sandbox(orders=400, seed=21, tie_order="random", latency_ms=40) as sb:
        yield sb


def pipe_is_full(reader: IO[bytes]) -> bool:
    """No room left in the pipe for another write of up to PIPE_BUF bytes."""
    capacity = fcntl.fcntl(reader.fileno(), fcntl.F_GETPIPE_SZ)
    pending = fcntl.ioctl(reader.fileno(), termios.FIONREAD, b"\0\0\0\0")
    return int.from_bytes(pending, sys.byteorder) > capacity - select.PIPE_BUF


def expected_ids(sandbox: Sandbox, since: int) -> set[int]:
    return {o["id"] for o in sandbox.store.orders_snapshot() if o["orderdate"] >= since}


def test_pull_survives_kill_9_at_random_points(
    slow_sandbox: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = cli_env(slow_sandbox, home)
    since = slow_sandbox.store.now() - 90 * 86400
    rng = random.Random(1234)

    def between(attempt: int) -> None:
        assert_state_valid(home)
        if attempt == 2:  # the store moves on between runs
            for _ in range(3):
                slow_sandbox.store.add_order()

    received = pull_killed_repeatedly(
        ["pull", "--page-size", "20"],
        env,
        tmp_path,
        since=since,
        attempts=6,
        # after a page or two, at a random point of the next one
        lines=lambda: rng.randint(1, 30),
        after=lambda: rng.uniform(0, 0.06),
        between=between,
    )
    assert received >= expected_ids(slow_sandbox, since)


def test_pull_killed_while_blocked_on_a_full_pipe_loses_nothing(
    slow_sandbox: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = cli_env(slow_sandbox, home)
    since = slow_sandbox.store.now() - 90 * 86400
    # nobody reads this pipe: it fills up and the pull blocks writing
    proc = subprocess.Popen(
        [*CLI, "pull", "--since", str(since)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    wait_for(lambda: pipe_is_full(proc.stdout), "the pull to fill the pipe")
    proc.kill()
    proc.wait(10)
    assert proc.stdout is not None
    proc.stdout.close()  # what sat in the pipe was never taken by a reader
    assert_state_valid(home)
    out = tmp_path / "after.jsonl"
    run_cli("pull", "-o", str(out), env=env)
    assert {o["id"] for o in read_jsonl(out)} >= expected_ids(slow_sandbox, since)


def test_pull_into_closed_pipe_exits_8_and_commits_nothing_untaken(
    tmp_path: Path,
) -> None:
    with Sandbox(orders=300, seed=4) as sb:
        home = tmp_path / "home"
        env = cli_env(sb, home)
        since = sb.store.now() - 90 * 86400
        shell = f'{" ".join(CLI)} pull --since {since} | head -3; echo "exit=${{PIPESTATUS[0]}}" >&2'
        done = subprocess.run(
            ["bash", "-c", shell], env=env, capture_output=True, text=True, timeout=60
        )
        taken = {json.loads(line)["id"] for line in done.stdout.splitlines()}
        assert len(taken) == 3
        assert "exit=8" in done.stderr
        errors = [
            line for line in done.stderr.splitlines() if not line.startswith("exit=")
        ]
        assert errors == ["miva-sync: error: stdout was closed by its reader"]
        out = tmp_path / "rest.jsonl"
        run_cli("pull", "-o", str(out), env=env)
        assert taken | {o["id"] for o in read_jsonl(out)} >= expected_ids(sb, since)


def test_pull_two_runs_at_once_one_waits_or_exits_7(
    slow_sandbox: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = cli_env(slow_sandbox, home)
    since = slow_sandbox.store.now() - 90 * 86400
    first = tmp_path / "a.jsonl"
    run_cli(
        "pull", "--since", str(since), "--page-size", "200", "-o", str(first), env=env
    )
    for _ in range(30):
        slow_sandbox.store.add_order()
    outs = [tmp_path / "b.jsonl", tmp_path / "c.jsonl"]
    procs = [
        subprocess.Popen(
            [*CLI, "pull", "--page-size", "5", "-o", str(o)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for o in outs
    ]
    codes = sorted(p.wait(120) for p in procs)
    stderr = "".join(p.stderr.read() for p in procs if p.stderr)
    assert codes == [0, 7], stderr
    assert "holds the lock" in stderr
    # with --wait both runs finish, one after the other, without duplicates
    for _ in range(10):
        slow_sandbox.store.add_order()
    outs = [tmp_path / "d.jsonl", tmp_path / "e.jsonl"]
    procs = [
        subprocess.Popen(
            [*CLI, "pull", "--wait", "--page-size", "5", "-o", str(o)], env=env
        )
        for o in outs
    ]
    assert [p.wait(120) for p in procs] == [0, 0]
    later = [o["id"] for path in outs for o in read_jsonl(path)]
    assert len(later) == len(set(later))
    everything = {o["id"] for p in tmp_path.glob("*.jsonl") for o in read_jsonl(p)}
    assert everything >= expected_ids(slow_sandbox, since)


def test_pull_cron_runs_under_15_percent_faults_exit_0_or_6_and_lose_nothing(
    tmp_path: Path,
) -> None:
    with Sandbox(orders=300, seed=8, fault_rate=0.15) as sb:
        sb.faults.timeout_seconds = 1.5
        home = tmp_path / "home"
        env = cli_env(sb, home, MIVA_SYNC_TIMEOUT="0.5", MIVA_SYNC_RETRY_BUDGET="2")
        since = sb.store.now() - 90 * 86400
        codes = []
        received: set[int] = set()
        for attempt in range(12):
            out = tmp_path / f"cron{attempt}.jsonl"
            args = ["pull", "--page-size", "25", "-o", str(out)]
            if not (home / "state.json").exists():
                args += ["--since", str(since)]
            done = run_cli(*args, env=env, expect=None)
            codes.append(done.returncode)
            assert done.returncode in (0, 6), done.stderr
            assert "Traceback" not in done.stderr
            assert_state_valid(home)
            received |= {o["id"] for o in read_jsonl(out)}
            if attempt % 3 == 0:
                sb.store.add_order()
        sb.faults.rate = 0.0
        out = tmp_path / "last.jsonl"
        run_cli("pull", "-o", str(out), env=env)
        received |= {o["id"] for o in read_jsonl(out)}
        assert received >= expected_ids(sb, since)
        kinds = {entry.fault for entry in sb.requests if entry.fault}
        assert len(kinds) >= 4, kinds  # the faults really were of many kinds


@pytest.mark.parametrize("sent", [signal.SIGTERM, signal.SIGINT])
def test_pull_sigterm_exits_130_with_consistent_state(
    slow_sandbox: Sandbox, tmp_path: Path, sent: signal.Signals
) -> None:
    """SIGTERM (cron's timeout, systemd) and SIGINT (Ctrl-C) alike."""
    home = tmp_path / "home"
    env = cli_env(slow_sandbox, home)
    since = slow_sandbox.store.now() - 90 * 86400
    out = tmp_path / "t.jsonl"
    proc = subprocess.Popen(
        [*CLI, "pull", "--since", str(since), "--page-size", "10", "-o", str(out)],
        env=env,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for(lambda: read_jsonl(out), "the first page")  # past start-up: running
    proc.send_signal(sent)
    assert proc.wait(20) == 130
    assert proc.stderr is not None
    assert "interrupted" in proc.stderr.read()
    assert_state_valid(home)
    rest = tmp_path / "rest.jsonl"
    run_cli("pull", "-o", str(rest), env=env)
    got = [o["id"] for o in read_jsonl(out) + read_jsonl(rest)]
    assert set(got) >= expected_ids(slow_sandbox, since)

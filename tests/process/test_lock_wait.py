"""``--wait[=SPAN]`` against a run lock held by another real ``miva-sync pull``.

The holder is held deterministically: the sandbox blocks its request until the
test opens a gate, so it keeps the lock for as long as the test needs.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from tests.support import pg_fixtures
from tests.support.helpers import (
    CLI,
    Gate,
    cli_env,
    read_orders,
    run_cli,
    wait_for,
)

# PostgreSQL: a server for the session, a fresh database per test
pg_server = pg_fixtures.pg_server
pg_url = pg_fixtures.pg_url

HOLDER = re.compile(
    r"locked by pid (\d+) on (\S+) since (\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ) "
    r"\((?:\d+[smhd] ago|just now)\)"
)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=60, seed=41) as sb:
        yield sb


def started(args: list[str], env: dict[str, str], err: Path) -> subprocess.Popen[bytes]:
    """``miva-sync ARGS`` in the background, its stderr into ``err``."""
    with err.open("wb") as sink:
        return subprocess.Popen(
            [*CLI, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=sink,
        )


def test_pull_names_the_holder_waits_at_most_span_then_exits_7(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = cli_env(sandbox, home)
    since = sandbox.store.now() - 90 * 86400
    run_cli("pull", "--since", str(since), "-o", str(tmp_path / "a.jsonl"), env=env)
    for _ in range(20):
        sandbox.store.add_order()
    gate = Gate(sandbox, sandbox.request_count + 1)
    holder = started(
        ["pull", "--page-size", "5", "-o", str(tmp_path / "b.jsonl")],
        env,
        tmp_path / "holder.err",
    )
    waiters: list[subprocess.Popen[bytes]] = []
    try:
        wait_for(gate.entered.is_set, "the holder's first request")
        # no --wait: exit 7 at once, naming who holds the lock
        at_once = run_cli("pull", "-o", str(tmp_path / "x.jsonl"), env=env, expect=7)
        (line,) = at_once.stderr.splitlines()
        found = HOLDER.search(line)
        assert found, line
        assert found.group(1, 2) == (str(holder.pid), socket.gethostname())
        assert "--wait" in line
        # --wait SPAN: says it waits, for whom, then gives up after SPAN (exit 7)
        span = run_cli(
            "pull", "--wait", "1s", "-o", str(tmp_path / "y.jsonl"), env=env, expect=7
        )
        waiting, refused = span.stderr.splitlines()
        assert f"locked by pid {holder.pid} " in waiting
        assert "waiting" in waiting and "at most 1s" in waiting
        assert HOLDER.search(refused), refused
        assert "after waiting 1s" in refused and "error:" in refused
        assert "Traceback" not in span.stderr
        # --wait alone (another option after it) and --wait=10m wait for the lock
        errs = [tmp_path / "c.err", tmp_path / "d.err"]
        waiters = [
            started(
                ["pull", "--wait", "--page-size", "5", "-o", str(tmp_path / "c.jsonl")],
                env,
                errs[0],
            ),
            started(
                ["pull", "--wait=10m", "-o", str(tmp_path / "d.jsonl")], env, errs[1]
            ),
        ]
        wait_for(
            lambda: all("waiting" in e.read_text() for e in errs), "both runs to wait"
        )
        assert all(f"pid {holder.pid} " in e.read_text() for e in errs)
        assert "at most 10m" in errs[1].read_text()
        assert "at most" not in errs[0].read_text()
        assert all(w.poll() is None for w in waiters)  # still waiting
    finally:
        gate.open()
    assert holder.wait(60) == 0, (tmp_path / "holder.err").read_text()
    assert [w.wait(60) for w in waiters] == [0, 0], [e.read_text() for e in errs]
    # one after another, each from where the last left off: no order twice
    later = [o["id"] for n in "bcd" for o in read_orders(tmp_path / f"{n}.jsonl")]
    assert len(later) == len(set(later)) == 20


def test_the_lock_file_says_who_holds_it(sandbox: Sandbox, tmp_path: Path) -> None:
    """What a person reading the lock file finds: pid, host, since."""
    home = tmp_path / "home"
    env = cli_env(sandbox, home)
    since = sandbox.store.now() - 90 * 86400
    gate = Gate(sandbox, 2)
    holder = started(
        ["pull", "--since", str(since), "--page-size", "5", "-o", str(tmp_path / "a")],
        env,
        tmp_path / "holder.err",
    )
    try:
        wait_for(gate.entered.is_set, "the holder's second request")
        (lock,) = home.glob("state.json.*.run.lock")
        written = json.loads(lock.read_text())
        assert written["pid"] == holder.pid
        assert written["host"] == socket.gethostname()
        assert isinstance(written["since"], int)
    finally:
        gate.open()
    assert holder.wait(60) == 0


def test_a_postgres_target_held_from_another_host_waits_at_most_span(
    sandbox: Sandbox, pg_url: str, tmp_path: Path
) -> None:
    """The advisory lock of a PostgreSQL target (another host's run: a home
    of its own, so the local run lock is free) obeys --wait SPAN too."""
    since = sandbox.store.now() - 90 * 86400
    gate = Gate(sandbox, 1)
    pull = ["pull", "--since", str(since), "-o", pg_url]
    host_a = started(pull, cli_env(sandbox, tmp_path / "a"), tmp_path / "a.err")
    try:
        wait_for(gate.entered.is_set, "host A's first request")
        host_b = run_cli(
            *pull, "--wait", "1s", env=cli_env(sandbox, tmp_path / "b"), expect=7
        )
        assert "another host" in host_b.stderr and "after waiting 1s" in host_b.stderr
        assert "Traceback" not in host_b.stderr
    finally:
        gate.open()
    assert host_a.wait(60) == 0, (tmp_path / "a.err").read_text()

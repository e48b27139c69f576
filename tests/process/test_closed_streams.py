"""Closed or failing standard streams, through the real CLI (issue 19, finding 5).

The shell applies the redirection and then execs miva-sync, so the process
really starts with fd 1 or fd 2 closed (``>&-``, ``2>&-``) or with stderr on a
device that refuses every write (``2>/dev/full``):

- stdout closed is an output failure, exit 8, like a closed pipe, and nothing
  is committed past what was written (nothing was);
- stderr closed or full never fails a run, never loses state and never changes
  the exit status.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from miva_sync.sandbox import Sandbox
from tests.support.helpers import CLI, cli_env, free_port, profile_toml, read_jsonl

STDERR_FAILURES = ["2>&-", "2>/dev/full"]
pytestmark = pytest.mark.skipif(
    not Path("/dev/full").exists(), reason="needs /dev/full (Linux)"
)


def run_redirected(
    redirect: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``miva-sync ARGS REDIRECT`` with the redirection applied by a real shell."""
    return subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *CLI, *args],
        env=dict(os.environ) if env is None else env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def sandbox_record(home: Path) -> dict[str, Any] | None:
    path = home / "state.json"
    if not path.exists():
        return None
    stores: dict[str, Any] = json.loads(path.read_text())["stores"]
    return stores.get("sandbox")


def assert_clean_failure(done: subprocess.CompletedProcess[str], code: int) -> None:
    assert done.returncode == code, done.stderr
    assert "internal error" not in done.stderr and "Traceback" not in done.stderr


# -- stdout closed ---------------------------------------------------------------


def test_closed_stdout_pull_exits_8_and_commits_nothing(
    isolated_home: Path, tmp_path: Path
) -> None:
    first = run_redirected(">&-", "pull", "--sandbox", "--since", "30d")
    assert_clean_failure(first, 8)
    assert "stdout is closed" in first.stderr
    assert sandbox_record(isolated_home) is None  # no mode, no cursor, no dedupe

    # a store with saved state: the resumed run that cannot write moves nothing
    out = tmp_path / "orders.jsonl"
    saved = run_redirected("", "pull", "--sandbox", "--since", "30d", "-o", str(out))
    assert saved.returncode == 0, saved.stderr
    before = sandbox_record(isolated_home)
    assert before is not None and read_jsonl(out)
    resumed = run_redirected(">&-", "pull", "--sandbox", "--emit-unchanged")
    assert_clean_failure(resumed, 8)
    assert sandbox_record(isolated_home) == before


def test_closed_stdout_pull_to_a_file_needs_no_stdout(
    isolated_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "orders.jsonl"
    done = run_redirected(">&-", "pull", "--sandbox", "--since", "30d", "-o", str(out))
    assert done.returncode == 0, done.stderr
    orders = read_jsonl(out)
    assert orders and len(orders) == len(out.read_bytes().splitlines())
    record = sandbox_record(isolated_home)
    assert record is not None and record["mode"] == "date"


@pytest.mark.parametrize(
    "args",
    [
        ("state", "show", "--sandbox"),
        ("state", "show", "--sandbox", "--json"),
        ("config", "show"),
        ("config", "path", "--state"),
    ],
)
def test_closed_stdout_is_exit_8_for_every_command_that_prints(
    isolated_home: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    out = tmp_path / "orders.jsonl"
    saved = run_redirected("", "pull", "--sandbox", "--since", "30d", "-o", str(out))
    assert saved.returncode == 0, saved.stderr
    done = run_redirected(">&-", *args)
    assert_clean_failure(done, 8)
    assert "stdout is closed" in done.stderr
    # a full stdout is the same failure, not an internal error or Python's 120
    full = run_redirected(">/dev/full", *args)
    assert_clean_failure(full, 8)
    assert "No space left" in full.stderr


# -- stderr closed or full -------------------------------------------------------


@pytest.mark.parametrize("redirect", STDERR_FAILURES)
@pytest.mark.parametrize(
    "extra", [(), ("--progress", "-v"), ("--log-format", "json", "-v")]
)
def test_failing_stderr_never_fails_a_pull_or_loses_state(
    isolated_home: Path, tmp_path: Path, redirect: str, extra: tuple[str, ...]
) -> None:
    out = tmp_path / "orders.jsonl"
    done = run_redirected(
        redirect, "pull", "--sandbox", "--since", "30d", "-o", str(out), *extra
    )
    assert done.returncode == 0
    record = sandbox_record(isolated_home)
    assert record is not None and read_jsonl(out)
    assert record["mode"] == "date"
    # to stdout: the orders arrive whole, the state is saved, exit 0
    resumed = run_redirected(redirect, "pull", "--sandbox", "--emit-unchanged", *extra)
    assert resumed.returncode == 0
    lines = resumed.stdout.splitlines()
    assert lines and all(json.loads(line)["id"] for line in lines)
    assert sandbox_record(isolated_home) is not None


@pytest.mark.parametrize("redirect", STDERR_FAILURES)
def test_failing_stderr_never_changes_the_exit_status(
    isolated_home: Path, redirect: str
) -> None:
    # a bare pull with no saved state is a usage error, said or not
    assert run_redirected(redirect, "pull", "--sandbox").returncode == 2
    assert run_redirected(redirect, "state", "show", "--sandbox").returncode == 2
    assert run_redirected(redirect, "pull", "--bogus-flag").returncode == 2


@pytest.mark.parametrize("redirect", STDERR_FAILURES)
def test_failing_stderr_state_show_config_and_verify_exit_0(
    isolated_home: Path, tmp_path: Path, redirect: str
) -> None:
    out = tmp_path / "orders.jsonl"
    pulled = run_redirected("", "pull", "--sandbox", "--since", "30d", "-o", str(out))
    assert pulled.returncode == 0, pulled.stderr
    shown = run_redirected(redirect, "state", "show", "--sandbox", "--json")
    assert shown.returncode == 0
    assert json.loads(shown.stdout)["store"] == "sandbox"
    assert run_redirected(redirect, "state", "show", "--sandbox").returncode == 0
    assert run_redirected(redirect, "config", "show").returncode == 0
    verified = run_redirected(
        redirect, "verify", "--sandbox", "--since", "30d", "-o", str(out)
    )
    assert verified.returncode == 0


@pytest.fixture
def shop() -> Any:
    with Sandbox(orders=80, seed=19) as sb:
        yield sb


@pytest.mark.parametrize("redirect", STDERR_FAILURES)
def test_failing_stderr_check_exits_0(
    shop: Sandbox, isolated_home: Path, redirect: str
) -> None:
    env = cli_env(shop, isolated_home)
    assert run_redirected(redirect, "check", env=env).returncode == 0
    done = run_redirected(redirect, "check", "--json", env=env)
    assert done.returncode == 0
    assert json.loads(done.stdout)["suggested_mode"]


def test_closed_stdout_check_prints_on_stderr_only(
    shop: Sandbox, isolated_home: Path
) -> None:
    env = cli_env(shop, isolated_home)
    assert run_redirected(">&-", "check", env=env).returncode == 0
    assert_clean_failure(run_redirected(">&-", "check", "--json", env=env), 8)


def test_all_profiles_with_failing_stderr_and_closed_stdout(
    shop: Sandbox, isolated_home: Path, tmp_path: Path
) -> None:
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    config = isolated_home / "config.toml"
    config.write_text(profile_toml("a", shop, a) + profile_toml("b", shop, b))
    config.chmod(0o600)
    done = run_redirected("2>/dev/full", "pull", "--all-profiles", "--since", "30d")
    assert done.returncode == 0
    assert read_jsonl(a) and read_jsonl(b)

    # one profile writes to stdout, which is closed: that child fails (8, the
    # most severe), and none of them writes orders anywhere it should not
    config.write_text(profile_toml("a", shop, a) + profile_toml("c", shop, None))
    lines_before = a.read_bytes().count(b"\n")
    closed = run_redirected(">&-", "pull", "--all-profiles", "--emit-unchanged")
    assert_clean_failure(closed, 8)
    assert "[c] miva-sync: error: stdout is closed" in closed.stderr
    assert a.read_bytes().count(b"\n") > lines_before  # profile a still ran


@pytest.mark.parametrize("redirect", STDERR_FAILURES)
def test_listen_with_failing_stderr_serves_and_stops_cleanly(
    isolated_home: Path, tmp_path: Path, redirect: str
) -> None:
    secret = "s3cret-path-0123456789abcdef"
    target = tmp_path / "w.jsonl"
    port = free_port()
    env = {**os.environ, "MIVA_SYNC_WEBHOOK_SECRET": secret}
    proc = subprocess.Popen(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *CLI, "listen",
         "--port", str(port), "-o", str(target)],
        env=env,
        stdout=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:  # its start message went nowhere: ask it instead
            assert proc.poll() is None, "listen exited"
            try:
                if requests.get(f"{base}/healthz", timeout=2).ok:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, "listen never answered"
            time.sleep(0.02)
        order = {"id": 7, "orderdate": 100, "dt_updated": 300, "items": []}
        answer = requests.post(f"{base}/webhook/{secret}", json=order, timeout=10)
        assert answer.status_code == 200
        assert read_jsonl(target) == [order]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

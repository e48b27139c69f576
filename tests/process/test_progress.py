"""Progress and escape sequences through the real CLI (issue 21, docs/design.md §4.3).

A terminal gets a bar with the rate and the time left when the total is known;
NO_COLOR takes its colours away (the bar still redraws in place); TERM=dumb and a
stderr that is not a terminal get no escape sequence at all, and off a terminal
progress is a plain line every MIVA_SYNC_PROGRESS_INTERVAL seconds (30), only with
-v. The terminal is a pseudo-terminal; the store a sandbox slow enough for many pages.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.helpers import CLI, cli_env, run_cli

ORDERS = 200
# a date-mode pull of every order, 10 a page: about 20 pages, each delayed
PULL = ("pull", "--since", "3650d", "--page-size", "10", "--full-refresh")
SGR = re.compile(rb"\x1b\[[0-9;]*m")  # a colour or style, not cursor movement
PLAIN_LINE = re.compile(
    r"miva-sync: progress: (\d+) of (\d+) orders \(\d+%\), [\d.,]+ orders/s, "
    r"ETA (\d+s|\d+m\d\ds|\d+h\d\dm)"
)


@pytest.fixture(scope="module")
def slow_store() -> Iterator[Sandbox]:
    with Sandbox(orders=ORDERS, seed=21, latency_ms=60) as sandbox:
        yield sandbox


def env_for(sandbox: Sandbox, home: Path, **extra: str) -> dict[str, str]:
    """The sandbox's settings, and none of the caller's colour choices."""
    env = cli_env(sandbox, home)
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS", "LINES", "TERM"):
        env.pop(name, None)
    env.update(extra)
    return env


def run_in_terminal(
    args: tuple[str, ...], env: dict[str, str], timeout: float = 120
) -> tuple[int, bytes]:
    """Run the CLI with stderr on a pseudo-terminal; its exit code and every
    byte it wrote there (read as it runs, so a full terminal never blocks it)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    try:
        proc = subprocess.Popen(
            [*CLI, *args],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=slave,
        )
    finally:
        os.close(slave)
    written = bytearray()
    deadline = time.monotonic() + timeout
    try:
        while True:
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"gave up waiting for the run; so far {written!r}")
            ready, _, _ = select.select([master], [], [], 0.5)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: the run closed its end
                break
            if not chunk:
                break
            written += chunk
        return proc.wait(timeout=timeout), bytes(written)
    finally:
        os.close(master)


def pull_in_terminal(sandbox: Sandbox, tmp_path: Path, **extra: str) -> bytes:
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "orders.jsonl"
    code, written = run_in_terminal(
        (*PULL, "-o", str(out)), env_for(sandbox, home, **extra)
    )
    assert code == 0, written
    assert len(out.read_text().splitlines()) == ORDERS
    return written


def pull_on_a_pipe(
    sandbox: Sandbox, tmp_path: Path, *flags: str, **extra: str
) -> list[str]:
    home = tmp_path / "home"
    home.mkdir(parents=True, exist_ok=True)
    out = tmp_path / "orders.jsonl"
    done = run_cli(*PULL, "-o", str(out), *flags, env=env_for(sandbox, home, **extra))
    assert "\x1b" not in done.stderr and "\r" not in done.stderr
    return done.stderr.splitlines()


# -- a terminal ---------------------------------------------------------------------


def test_the_bar_shows_a_rate_and_the_time_left(
    slow_store: Sandbox, tmp_path: Path
) -> None:
    written = pull_in_terminal(slow_store, tmp_path, TERM="xterm-256color")
    text = SGR.sub(b"", written).decode()
    assert re.search(r"\d+/200 orders", text), text
    assert re.search(r"[\d.,]+ orders/s", text), text
    assert re.search(r"ETA \d+(s|m\d\ds)", text), text
    assert SGR.search(written)  # the control for NO_COLOR below: a colour terminal


def test_no_color_takes_the_colours_away_not_the_bar(
    slow_store: Sandbox, tmp_path: Path
) -> None:
    written = pull_in_terminal(
        slow_store, tmp_path, TERM="xterm-256color", NO_COLOR="1"
    )
    assert not SGR.search(written), written
    text = written.decode()
    assert re.search(r"[\d.,]+ orders/s", text) and "ETA " in text, text


def test_a_dumb_terminal_gets_plain_lines_and_no_escape_at_all(
    slow_store: Sandbox, tmp_path: Path
) -> None:
    written = pull_in_terminal(
        slow_store, tmp_path, TERM="dumb", MIVA_SYNC_PROGRESS_INTERVAL="0.05"
    )
    assert b"\x1b" not in written, written
    lines = written.decode().replace("\r\n", "\n").splitlines()
    assert all("\r" not in line for line in lines), lines
    assert [line for line in lines if PLAIN_LINE.fullmatch(line)], lines
    assert lines[-1].startswith("miva-sync: 200 orders emitted")


# -- not a terminal ---------------------------------------------------------------------


def test_a_pipe_gets_no_progress_without_v(slow_store: Sandbox, tmp_path: Path) -> None:
    lines = pull_on_a_pipe(slow_store, tmp_path, MIVA_SYNC_PROGRESS_INTERVAL="0.05")
    assert not [line for line in lines if "progress" in line], lines


def test_a_pipe_with_v_gets_a_plain_line_per_interval(
    slow_store: Sandbox, tmp_path: Path
) -> None:
    lines = pull_on_a_pipe(
        slow_store, tmp_path, "-v", MIVA_SYNC_PROGRESS_INTERVAL="0.05"
    )
    progress = [PLAIN_LINE.fullmatch(line) for line in lines if "progress:" in line]
    assert progress and all(progress), lines
    done = [int(match.group(1)) for match in progress if match]
    assert done == sorted(done) and done[-1] <= ORDERS
    assert all(int(match.group(2)) == ORDERS for match in progress if match)
    assert all(line.startswith("miva-sync: ") for line in lines), lines


def test_the_interval_holds_and_no_progress_turns_it_off(
    slow_store: Sandbox, tmp_path: Path
) -> None:
    # an hour between lines: a run this short never reaches its first one
    hourly = pull_on_a_pipe(
        slow_store, tmp_path / "a", "-v", MIVA_SYNC_PROGRESS_INTERVAL="3600"
    )
    assert not [line for line in hourly if "progress:" in line], hourly
    off = pull_on_a_pipe(
        slow_store,
        tmp_path / "b",
        "-v",
        "--no-progress",
        MIVA_SYNC_PROGRESS_INTERVAL="0.05",
    )
    assert not [line for line in off if "progress:" in line], off


def test_json_logs_carry_progress_as_json_lines(
    slow_store: Sandbox, tmp_path: Path
) -> None:
    lines = pull_on_a_pipe(
        slow_store,
        tmp_path,
        "-v",
        "--log-format",
        "json",
        MIVA_SYNC_PROGRESS_INTERVAL="0.05",
    )
    records = [json.loads(line) for line in lines]
    progress = [r for r in records if r.get("event") == "progress"]
    assert progress, lines
    assert all(r["total"] == ORDERS and r["eta_seconds"] >= 0 for r in progress)
    assert all(r["rate"] > 0 for r in progress)


def test_a_bad_interval_is_one_line_and_exit_3(
    slow_store: Sandbox, tmp_path: Path
) -> None:
    done = run_cli(
        *PULL,
        "-o",
        str(tmp_path / "orders.jsonl"),
        "-v",
        env=env_for(slow_store, tmp_path, MIVA_SYNC_PROGRESS_INTERVAL="soon"),
        expect=3,
    )
    assert done.stderr == (
        "miva-sync: error: MIVA_SYNC_PROGRESS_INTERVAL must be a number of "
        "seconds above 0, not 'soon'\n"
    )


def test_plain_progress_lines_load_no_rich(slow_store: Sandbox, tmp_path: Path) -> None:
    """Start-up stays cheap: rich is imported only when a bar is really drawn."""
    out = tmp_path / "orders.jsonl"
    args = [*PULL, "-o", str(out), "-v"]
    code = (
        "import sys\n"
        "from miva_sync.cli import cli\n"
        "try:\n"
        f"    cli.main(args={args!r}, prog_name='miva-sync')\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('rich' in sys.modules)\n"
    )
    env = env_for(slow_store, tmp_path, MIVA_SYNC_PROGRESS_INTERVAL="0.05")
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True
    )
    assert "miva-sync: progress: " in done.stderr, done.stderr
    assert done.stdout.strip() == "False", done.stderr

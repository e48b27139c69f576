"""Ctrl-C to a real ``miva-sync pull`` mid-run: the last line says what was
committed, with no blank line or ``^C`` left before it, and the next run
resumes from there.

The pull is held mid-run deterministically: the sandbox blocks its answer to
one request until the test is done. The interrupt lands while the pull waits
for that answer or while it still handles the page before (the next page's
request leaves before a page is parsed): pages written then are committed
by the interrupt, unless it cut a page's write short. So the last line is
checked against what the state file says was committed, not against the
lines in the file.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.helpers import (
    CLI_CTRL_C,
    Gate,
    assert_state_valid,
    cli_env,
    committed_orders,
    read_orders,
    run_cli,
    saved_record,
    wait_for,
)

CLI = CLI_CTRL_C  # Ctrl-C works whatever the test runner ignores


def interrupted_line(orders: int) -> str:
    noun = "order" if orders == 1 else "orders"
    return (
        f"miva-sync: interrupted: {orders} {noun} written and committed; "
        "run again to resume"
    )


def interrupt_at(
    gate: Gate, args: list[str], env: dict[str, str], what: str
) -> tuple[int, str]:
    """Run ``miva-sync ARGS``, send SIGINT once the sandbox holds its gated
    request (``what``, for the timeout message); the exit code and stderr."""
    proc = subprocess.Popen(
        [*CLI, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(gate.entered.is_set, what)
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=30)
    finally:
        gate.open()
    return proc.returncode, stderr


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=120, seed=33) as sb:
        yield sb


def test_sigint_says_how_many_orders_were_committed_and_the_next_run_resumes(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = cli_env(sandbox, home)
    since = sandbox.store.now() - 90 * 86400
    out = tmp_path / "first.jsonl"
    gate = Gate(sandbox, 4)  # the pages before it are written first
    code, stderr = interrupt_at(
        gate,
        ["pull", "--since", str(since), "--page-size", "10", "-o", str(out)],
        env,
        "the pull's fourth request",
    )
    assert code == 130, stderr
    written = read_orders(out)
    assert_state_valid(home)
    committed = committed_orders(home, out)
    # the first page is committed at once; a page cut short stays uncommitted
    assert 0 < committed <= len(written)
    lines = stderr.splitlines()
    assert lines[-1] == interrupted_line(committed), stderr
    assert "" not in lines and "Traceback" not in stderr
    # the state file holds what the line says: the cursor (None: the first
    # page's bound, which waits for the next page's count, docs/design.md
    # §5.2) and, for the committed orders it does not cover, the dedupe window
    record = saved_record(home)
    watermark = record["cursors"]["date"]["watermark"]
    ahead = {
        o["id"]
        for o in written[:committed]
        if watermark is None or o["orderdate"] >= watermark
    }
    assert ahead <= {int(k) for k in record["dedupe"]}
    # "run again to resume": the same command delivers the rest, none twice
    # (orders written after the last commit are read back from the file)
    run_cli("pull", "--no-progress", "-o", str(out), env=env)
    ids = [o["id"] for o in read_orders(out)]
    assert len(ids) == len(set(ids))
    every = {
        o["id"] for o in sandbox.store.orders_snapshot() if o["orderdate"] >= since
    }
    assert set(ids) == every


def test_sigint_to_a_bounded_re_pull_says_it_saved_no_cursor(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    env = cli_env(sandbox, tmp_path / "home")
    now = sandbox.store.now()
    out = tmp_path / "window.jsonl"
    gate = Gate(sandbox, 3)
    window = ["--since", str(now - 90 * 86400), "--until", str(now)]
    code, stderr = interrupt_at(
        gate,
        ["pull", *window, "--page-size", "10", "-o", str(out)],
        env,
        "the re-pull's third request",
    )
    assert code == 130, stderr
    written = len(read_orders(out))
    last = re.fullmatch(
        r"miva-sync: interrupted: (\d+) orders written and committed; nothing "
        r"saves where it stopped: run it again for the whole window",
        stderr.splitlines()[-1],
    )
    assert last, stderr
    # no state to compare with: the first page is committed at once, a page
    # the interrupt cut short is not (see the module's docstring)
    assert 0 < int(last.group(1)) <= written
    assert not (tmp_path / "home" / "state.json").exists()


def test_sigint_in_queue_mode_counts_the_orders_committed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = cli_env(sandbox, home)
    out = tmp_path / "queue.jsonl"
    # per page: read, write and commit, acknowledge, re-read; the 4th request
    # reads the second page, after the first page's orders were committed
    gate = Gate(sandbox, 4)
    queue = ["pull", "--queue", "new_updated_orders", "--page-size", "25"]
    code, stderr = interrupt_at(
        gate, [*queue, "-o", str(out)], env, "the queue pull's fourth request"
    )
    assert code == 130, stderr
    written = read_orders(out)
    assert written
    assert stderr.splitlines()[-1] == interrupted_line(len(written)), stderr
    assert "" not in stderr.splitlines()


def test_sigint_while_waiting_for_the_lock_says_nothing_was_written(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = cli_env(sandbox, home)
    since = sandbox.store.now() - 90 * 86400
    gate = Gate(sandbox, 1)
    holder = subprocess.Popen(
        [*CLI, "pull", "--since", str(since), "-o", str(tmp_path / "a.jsonl")],
        env=env,
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    err = tmp_path / "waiter.err"
    try:
        wait_for(gate.entered.is_set, "the holder's first request")
        with err.open("w") as sink:
            waiter = subprocess.Popen(
                [*CLI, "pull", "--wait", "--since", str(since), "-o", "-"],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=sink,
            )
        wait_for(lambda: "waiting" in err.read_text(), "the second pull to wait")
        waiter.send_signal(signal.SIGINT)
        assert waiter.wait(30) == 130
    finally:
        gate.open()
    assert holder.wait(60) == 0
    lines = err.read_text().splitlines()
    assert lines[-1] == interrupted_line(0)
    assert "" not in lines


def test_sigint_to_another_command_ends_with_one_line_and_no_blank_one(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """verify writes nothing: its last line is just "interrupted" (no blank
    line before it from the command-line library)."""
    env = cli_env(sandbox, tmp_path / "home")
    out = tmp_path / "o.jsonl"
    out.write_text("")
    gate = Gate(sandbox, 1)
    code, stderr = interrupt_at(
        gate, ["verify", "--since", "7d", "-o", str(out)], env, "verify's first request"
    )
    assert code == 130, stderr
    assert stderr.splitlines() == ["miva-sync: interrupted"], stderr


# -- at a terminal: what the screen shows after Ctrl-C --------------------------------

# the child opens the terminal itself after setsid (start_new_session), which
# makes it its controlling terminal: Ctrl-C typed there reaches it as SIGINT,
# and the terminal echoes ^C, as it does for a person
ON_TERMINAL = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "fd = os.open(sys.argv[1], os.O_RDWR); [os.dup2(fd, n) for n in (0, 2)]; "
    "os.close(fd); "
    "os.execv(sys.executable, [sys.executable, '-m', 'miva_sync', *sys.argv[2:]])"
)
CSI = re.compile(r"\x1b\[([0-9;?]*)([@-~])")


def screen(output: bytes) -> list[str]:
    """The rows a terminal shows after ``output`` (the sequences rich and the
    terminal use: CR, LF, BS, cursor up/down/column, erase in line)."""
    rows: list[list[str]] = [[]]
    row = col = 0
    text = output.decode("utf-8", "replace")
    i = 0
    while i < len(text):
        ch = text[i]
        if ch == "\x1b":
            match = CSI.match(text, i)
            i = match.end() if match else i + 2
            if not match:
                continue
            params, command = match.groups()
            n = int(params) if params.isdigit() else 0
            if command == "A":
                row = max(0, row - (n or 1))
            elif command == "B":
                row += n or 1
            elif command == "G":
                col = max(0, (n or 1) - 1)
            elif command == "K":
                while len(rows) <= row:
                    rows.append([])
                line = rows[row]
                if n == 0:
                    del line[col:]
                elif n == 1:
                    line[: col + 1] = [" "] * min(len(line), col + 1)
                else:
                    line.clear()
            continue  # colours, cursor shown/hidden: nothing on screen
        if ch == "\r":
            col = 0
        elif ch == "\n":
            row += 1
        elif ch == "\b":
            col = max(0, col - 1)
        elif ch >= " ":
            while len(rows) <= row:
                rows.append([])
            line = rows[row]
            line.extend(" " * (col - len(line)))
            if col < len(line):
                line[col] = ch
            else:
                line.append(ch)
            col += 1
        i += 1
    shown = ["".join(r).rstrip() for r in rows]
    while shown and not shown[-1]:
        shown.pop()
    return shown


@pytest.mark.parametrize("progress", ["--progress", "--no-progress"])
def test_ctrl_c_at_a_terminal_leaves_one_clean_last_line(
    sandbox: Sandbox, tmp_path: Path, progress: str
) -> None:
    home = tmp_path / "home"
    env = {**cli_env(sandbox, home), "TERM": "xterm-256color"}
    env.pop("NO_COLOR", None)
    since = sandbox.store.now() - 90 * 86400
    out = tmp_path / "t.jsonl"
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 160, 0, 0))
    terminal = os.ttyname(slave)
    os.close(slave)
    # never block reading: select also wakes when nobody has the terminal open
    # (before the pull opens it), and a blocking read would then wait for output
    os.set_blocking(master, False)
    gate = Gate(sandbox, 3)
    args = ["pull", "--since", str(since), "--page-size", "10", progress]
    proc = subprocess.Popen(
        [sys.executable, "-c", ON_TERMINAL, terminal, *args, "-o", str(out)],
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    shown = b""

    def read_for(seconds: float) -> None:
        nonlocal shown
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except BlockingIOError:
                continue
            except OSError:  # EIO: nobody holds the terminal (yet, or any more)
                return
            if not chunk:
                return
            shown += chunk

    try:
        deadline = time.monotonic() + 60
        while not gate.entered.is_set() and time.monotonic() < deadline:
            read_for(0.05)  # keep the terminal drained while the pull starts
        assert gate.entered.is_set(), "the pull never reached its third request"
        os.write(master, b"\x03")  # Ctrl-C, typed at the terminal
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            read_for(0.05)  # drained, so the pull never blocks writing to it
        assert proc.wait(1) == 130
        read_for(10)  # the rest, until the terminal closes (EIO)
    finally:
        gate.open()
        os.close(master)
    rows = screen(shown)
    assert rows, shown
    committed = committed_orders(home, out)
    assert 0 < committed <= len(read_orders(out))
    assert rows[-1] == interrupted_line(committed), json.dumps(rows)
    # nothing left of the bar, no ^C and no blank row above the last line
    assert not any("^C" in r for r in rows), json.dumps(rows)
    assert len(rows) == 1 or rows[-2].strip(), json.dumps(rows)

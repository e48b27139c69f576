"""`miva-sync sandbox --webhook URL` delivers from the command line (issue 21):
into a real `miva-sync listen`, every order it starts with, then, with
`--add-every`, the new and updated ones; the receiver's secret never shown."""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support import webhook
from tests.support.helpers import CLI, wait_for
from tests.support.sandbox_cli import SandboxProcess
from tests.support.webhook import SECRET, Receiver

receivers = webhook.receivers


@pytest.fixture
def sandboxes() -> Iterator[list[SandboxProcess]]:
    started: list[SandboxProcess] = []
    yield started
    for sandbox in started:
        sandbox.kill()


def versions(db: Path) -> dict[int, int]:
    """order id -> dt_updated in the receiver's SQLite target (empty until it exists)."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            rows = conn.execute("SELECT id, dt_updated FROM orders").fetchall()
    except sqlite3.OperationalError:  # the receiver has not made the table yet
        return {}
    return {int(oid): int(updated) for oid, updated in rows}


def test_sandbox_webhook_delivers_to_a_listen_receiver(
    tmp_path: Path,
    receivers: list[Receiver],
    sandboxes: list[SandboxProcess],
) -> None:
    db = tmp_path / "hooks.db"
    receiver = Receiver(f"sqlite:///{db}", tmp_path / "home")
    receivers.append(receiver)
    sandbox = SandboxProcess(
        "--port", "0", "--orders", "12", "--seed", "3",
        "--webhook", receiver.url, "--add-every", "0.2",
    )  # fmt: skip
    sandboxes.append(sandbox)

    # at start: every order the sandbox holds
    wait_for(lambda: len(versions(db)) >= 12, "the sandbox's 12 orders to arrive")
    first = versions(db)
    start_ids = sorted(first)[:12]
    # then, on the --add-every beat: new orders, and older ones updated
    wait_for(lambda: max(versions(db)) > max(start_ids), "a new order to be delivered")
    wait_for(
        lambda: any(versions(db)[i] > first[i] for i in start_ids),
        "an updated order to be delivered",
    )

    code, stderr = sandbox.stop()
    assert code == 0, stderr
    assert SECRET not in stderr
    assert f"to http://127.0.0.1:{receiver.port}/…" in stderr
    assert " delivered, 0 failed" in stderr
    code, _, _ = receiver.stop()
    assert code == 0


def test_sandbox_webhook_refuses_a_remote_url_without_showing_its_path(
    tmp_path: Path,
) -> None:
    done = subprocess.run(
        [*CLI, "sandbox", "--port", "0", "--webhook",
         f"http://192.0.2.1:8080/webhook/{SECRET}"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert "must point at loopback" in done.stderr
    assert SECRET not in done.stderr and done.stdout == ""

"""Ports (issue 21): `sandbox` and `listen` default to different ports; a busy
port is one stderr line and exit 3, with nothing printed or opened before it;
`--port 0` picks a free port and says which."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support import webhook
from tests.support.helpers import CLI, run_cli
from tests.support.sandbox_cli import SandboxProcess, busy_port
from tests.support.webhook import SECRET, Receiver

receivers = webhook.receivers


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    env.update(MIVA_SYNC_HOME=str(home), COLUMNS="200", **extra)
    return env


@pytest.fixture
def sandboxes() -> Iterator[list[SandboxProcess]]:
    started: list[SandboxProcess] = []
    yield started
    for sandbox in started:
        sandbox.kill()


def default_port(command: str, home: Path) -> int:
    shown = run_cli(command, "--help", env=clean_env(home)).stdout
    found = re.search(r"^ +--port [^\[]*\[default:\s+(\d+)", shown, re.M)
    assert found, shown
    return int(found.group(1))


def test_sandbox_and_listen_default_to_different_ports(tmp_path: Path) -> None:
    assert default_port("sandbox", tmp_path) == 8090
    assert default_port("listen", tmp_path) == 8080


@pytest.mark.parametrize("command", ["sandbox", "listen"])
def test_a_busy_port_is_one_line_and_exit_3(tmp_path: Path, command: str) -> None:
    target = tmp_path / "orders.db"
    output = ["-o", f"sqlite:///{target}"] if command == "listen" else []
    with busy_port() as sock:
        port = sock.getsockname()[1]
        done = subprocess.run(
            [*CLI, command, "--port", str(port), *output],
            env=clean_env(tmp_path, MIVA_SYNC_WEBHOOK_SECRET=SECRET),
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""  # no export lines for an `eval` to pick up
    assert done.stderr.splitlines() == [
        f"miva-sync: error: cannot listen on 127.0.0.1:{port}: Address already in "
        "use; --port 0 picks a free port"
    ]
    assert SECRET not in done.stderr
    assert not target.exists()  # bound before the target is opened


def test_sandbox_port_0_picks_a_free_port_prints_it_and_serves(
    tmp_path: Path, sandboxes: list[SandboxProcess]
) -> None:
    sandbox = SandboxProcess("--port", "0", "--orders", "15")
    sandboxes.append(sandbox)
    url = sandbox.exports["MIVA_URL"]
    found = re.fullmatch(r"http://127\.0\.0\.1:(\d+)/mm5/json\.mvc", url)
    assert found and int(found.group(1)) != 0, url
    assert sandbox.pid == sandbox.proc.pid  # MIVA_SANDBOX_PID: what to kill
    env = clean_env(tmp_path, **sandbox.exports)
    checked = run_cli("check", env=env)
    assert "Traceback" not in checked.stderr
    code, stderr = sandbox.stop()
    assert code == 0
    assert url in stderr and f"kill {sandbox.pid}" in stderr


def test_listen_port_0_picks_a_free_port_and_prints_it(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    receiver = Receiver(f"sqlite:///{tmp_path / 'o.db'}", tmp_path / "home")
    receivers.append(receiver)
    assert receiver.port != 0  # from its "receiving at http://127.0.0.1:PORT" line
    assert requests.get(f"{receiver.base}/healthz", timeout=10).status_code == 200
    code, _, _ = receiver.stop()
    assert code == 0

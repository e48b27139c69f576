"""The command line's contract in a fresh interpreter.

What start-up imports, and request logging: its set-up is global, so these run
``python -m miva_sync`` rather than the in-process CLI runner.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import responses

from tests.support.fakes import KEY, TOKEN

HEAVY = (
    "requests",
    "rich",
    "miva_sync.sandbox",
    "miva_sync.store.client",
    "orjson",
    "logging",
)


@pytest.mark.parametrize(
    "args",
    [
        ["--version"],
        ["--help"],
        ["check", "--help"],
        ["sandbox", "--help"],
        ["pull", "--help"],
        ["config", "--help"],
        ["config", "init", "--help"],
        ["config", "show", "--help"],
        ["state", "--help"],
        ["state", "show", "--help"],
        ["state", "set", "--help"],
        ["state", "reset", "--help"],
    ],
)
def test_cli_startup_imports_no_heavy_modules(args: list[str]) -> None:
    code = (
        "import sys\n"
        "from miva_sync.cli import cli\n"
        "try:\n"
        f"    cli.main(args={args!r}, prog_name='miva-sync')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_cli_python_m_prints_version() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "miva_sync", "--version"], capture_output=True, text=True
    )
    assert out.returncode == 0
    assert out.stdout.startswith("miva-sync, version ")


def test_cli_verbose_after_subcommand_logs_requests_redacted(
    api: responses.RequestsMock, store_env: dict[str, str]
) -> None:
    # a real process: logging set-up is global, so keep it out of the test process
    del api
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "miva_sync",
            "check",
            "-vv",
            "--url",
            "http://127.0.0.1:9/mm5/json.mvc",
            "--retry-budget",
            "0",
        ],
        capture_output=True,
        text=True,
        env={**__import__("os").environ},
        timeout=60,
    )
    assert out.returncode == 6
    assert "connection refused" in out.stderr
    assert "OrderList_Load_Query" in out.stderr
    assert "MIVA-HMAC-SHA256 [redacted]" in out.stderr
    assert TOKEN not in out.stderr and KEY not in out.stderr


def test_cli_log_format_json_logs_requests_as_json(
    api: responses.RequestsMock, store_env: dict[str, str]
) -> None:
    import json
    import os

    del api  # a real process: logging set-up is global
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "miva_sync",
            "check",
            "-vv",
            "--log-format=json",
            "--url",
            "http://127.0.0.1:9/mm5/json.mvc",
        ],
        capture_output=True,
        text=True,
        env={**os.environ},
        timeout=60,
    )
    assert out.returncode == 6
    lines = [json.loads(line) for line in out.stderr.splitlines()]
    assert any(line["logger"] == "miva_sync.store.client" for line in lines)
    assert lines[-1]["exit_code"] == 6
    assert TOKEN not in out.stderr and KEY not in out.stderr

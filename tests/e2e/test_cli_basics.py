"""The command line's contract in a fresh interpreter.

What start-up imports, and request logging: its set-up is global, so these run
``python -m miva_sync`` rather than the in-process CLI runner.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

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


# every command's module: one runs, the others are never imported (issue 23)
COMMAND_MODULES = tuple(
    f"miva_sync.cli.{name}"
    for name in ("check", "config", "listen", "pull", "sandbox", "state", "verify")
)


@pytest.mark.parametrize(
    ("args", "loaded"),
    [
        (["--version"], ()),
        (["pull", "--help"], ("miva_sync.cli.pull",)),
        (["state", "show", "--help"], ("miva_sync.cli.state",)),
        (["--help"], COMMAND_MODULES),  # lists every command with its help
    ],
)
def test_cli_imports_only_the_command_that_runs(
    args: list[str], loaded: tuple[str, ...]
) -> None:
    code = (
        "import sys\n"
        "from miva_sync.cli import cli\n"
        "try:\n"
        f"    cli.main(args={args!r}, prog_name='miva-sync')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print(sorted(m for m in {COMMAND_MODULES!r} if m in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert out.stdout.strip().splitlines()[-1] == str(sorted(loaded))


def test_cli_bare_pull_loads_settings_once_and_parses_the_state_once(
    run: Any, tmp_path: Path
) -> None:
    """A cron resume: one settings load and one parse of the state file for
    the whole run (the saved mode, the locked read, every commit), and no
    module of another command, of queue mode or of a config file it lacks."""
    from miva_sync.sandbox import Sandbox

    out = tmp_path / "orders.jsonl"
    others = tuple(m for m in COMMAND_MODULES if m != "miva_sync.cli.pull")
    unwanted = (
        *others,
        "miva_sync.cli.all_profiles",
        "miva_sync.sync.queue_state",
        "tomllib",
    )
    code = (
        "import sys\n"
        "from miva_sync import config\n"
        "from miva_sync.state import file\n"
        "counts = {'settings': 0, 'parses': 0}\n"
        "def counted(name, real):\n"
        "    def call(*args, **kwargs):\n"
        "        counts[name] += 1\n"
        "        return real(*args, **kwargs)\n"
        "    return call\n"
        "config.load_settings = counted('settings', config.load_settings)\n"
        "file.validate_document = counted('parses', file.validate_document)\n"
        "from miva_sync.cli import cli\n"
        "try:\n"
        f"    cli.main(args=['pull', '-o', {str(out)!r}, '--no-progress'],\n"
        "             prog_name='miva-sync')\n"
        "except SystemExit as exc:\n"
        "    assert not exc.code, exc.code\n"
        f"print(counts, sorted(m for m in {unwanted!r} if m in sys.modules))\n"
    )
    with Sandbox(orders=300, seed=23) as sb:
        first = run(["pull", "--since", "30d", "--lookback", "30d", "-o", str(out)],
                    env=sb.env())  # fmt: skip
        assert first.exit_code == 0, first.stderr
        done = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            env={**os.environ, **sb.env()},
            timeout=120,
        )
    assert done.returncode == 0, done.stderr
    assert "unchanged skipped" in done.stderr  # resumed, through its whole window
    assert done.stdout.strip() == "{'settings': 1, 'parses': 1} []"


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

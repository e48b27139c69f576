"""``--wait[=SPAN]`` on every command that takes the run lock, through the real
CLI, with the lock held by this process (two real pulls: tests/process/test_lock_wait.py)."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

import pytest

from miva_sync.config import load_settings
from miva_sync.sandbox import Sandbox
from miva_sync.state.file import StateStore
from tests.support.helpers import cli_env, profile_toml, run_cli, write_config

HELD_BY_US = f"locked by pid {os.getpid()} on {socket.gethostname()} since "


@pytest.fixture
def sandbox(monkeypatch: pytest.MonkeyPatch) -> Any:
    with Sandbox(orders=20, seed=12) as sb:
        for name, value in sb.env().items():
            monkeypatch.setenv(name, value)
        yield sb


def held_lock(profile: str | None = None) -> Any:
    """The run lock of the store the environment (or ``profile``) names."""
    settings = load_settings({"profile": profile} if profile else {})
    return StateStore(settings.state_path()).run_lock(settings.store_key)


@pytest.mark.parametrize(
    "args",
    [
        ["state", "set", "--order", "1", "--wait", "1s"],
        ["state", "reset", "--yes", "--wait=1s"],
        ["verify", "--since", "7d", "-o", "{out}", "--repair", "--wait", "1s"],
        ["pull", "--since", "7d", "-o", "{out}", "--wait=1s", "--no-progress"],
    ],
    ids=["state-set", "state-reset", "verify-repair", "pull"],
)
def test_wait_span_names_the_holder_then_exits_7(
    run: Any, sandbox: Sandbox, tmp_path: Path, args: list[str]
) -> None:
    out = tmp_path / "orders.jsonl"
    out.write_text("")
    with held_lock():
        result = run([a.format(out=out) for a in args])
    assert result.exit_code == 7, result.stderr
    waiting, refused = result.stderr.splitlines()
    assert HELD_BY_US in waiting and "waiting" in waiting and "at most 1s" in waiting
    assert HELD_BY_US in refused and "after waiting 1s" in refused
    assert out.read_text() == ""


def test_without_wait_the_holder_is_named_at_once(run: Any, sandbox: Sandbox) -> None:
    with held_lock():
        result = run(["state", "set", "--order", "1"])
    assert result.exit_code == 7
    (line,) = result.stderr.splitlines()
    assert HELD_BY_US in line and "--wait" in line


def test_a_bad_span_is_a_usage_error(run: Any, sandbox: Sandbox) -> None:
    result = run(["pull", "--since", "7d", "--wait", "soon"])
    assert result.exit_code == 2
    assert "--wait" in result.stderr and "Traceback" not in result.stderr


def test_all_profiles_passes_wait_and_its_span_on(
    sandbox: Sandbox, isolated_home: Path, tmp_path: Path
) -> None:
    write_config(isolated_home, profile_toml("shop", sandbox, tmp_path / "o.jsonl"))
    env = cli_env(sandbox, isolated_home)
    for name in sandbox.env():
        env.pop(name)  # the profile names the store
    with held_lock("shop"):
        refused = run_cli(
            "pull", "--all-profiles", "--since", "7d", "--wait=1s", env=env, expect=7
        )
    assert "after waiting 1s" in refused.stderr
    # --wait alone, followed by another option, reaches each child as --wait
    run_cli("pull", "--all-profiles", "--wait", "--since", "7d", env=env, timeout=60)

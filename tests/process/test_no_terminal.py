"""No prompt without a terminal: cron, scripts and ``< /dev/null`` get exit 3 and
one line naming the flag or variable to set, never a prompt, a hang or a
``GetPassWarning``.

The real CLI runs in a session of its own with stdin from /dev/null, so it has
no terminal at all (a hidden prompt cannot fall back on /dev/tty either).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.helpers import CLI, cli_env, run_cli

STORE_URL = "https://shop.example.com/mm5/json.mvc"


def without_terminal(
    args: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *args],
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        start_new_session=True,  # no controlling terminal
    )


@pytest.mark.parametrize(
    ("args", "named"),
    [
        (
            ["config", "init", "--profile", "shop"],
            ["--url", "--store-code", "--api-token", "--signing-key"],
        ),
        # only secrets left: hidden prompts, which warned without a terminal
        (
            ["config", "init", "--url", STORE_URL, "--store-code", "PS"],
            ["--api-token", "--signing-key"],
        ),
        (["state", "reset", "--sandbox"], ["--yes"]),
        (
            [
                "pull",
                "--since",
                "7d",
                "--columns",
                "default,payment_data",
                "-o",
                "{out}",
            ],
            ["MIVA_SYNC_PASSPHRASE"],
        ),
    ],
    ids=["config-init", "config-init-secrets", "state-reset", "pull-passphrase"],
)
def test_a_prompt_without_a_terminal_is_exit_3_naming_what_to_set(
    tmp_path: Path, args: list[str], named: list[str]
) -> None:
    with Sandbox(orders=5, seed=2) as sb:
        home = tmp_path / "home"
        env = cli_env(sb, home)
        if args[0] == "state":
            run_cli(
                "pull", "--sandbox", "--since", "1d", "-o", str(tmp_path / "a"), env=env
            )
        if args[0] == "config":
            env = {k: v for k, v in env.items() if not k.startswith("MIVA_")}
            env["MIVA_SYNC_HOME"] = str(home)
        out = tmp_path / "orders.jsonl"
        done = without_terminal([a.format(out=out) for a in args], env)
        requests = sb.request_count
    assert done.returncode == 3, done.stderr
    (line,) = done.stderr.splitlines()
    assert line.startswith("miva-sync: error: no terminal to prompt on: "), line
    assert all(name in line for name in named), line
    assert "Warning" not in done.stderr and "Traceback" not in done.stderr
    assert done.stdout == ""
    assert requests == 0  # refused before anything reached the store
    assert not (home / "config.toml").exists() or args[0] != "config"
    assert not out.exists()
    if args[0] == "state":  # the state is still there
        assert run_cli("state", "show", "--sandbox", env=env).returncode == 0

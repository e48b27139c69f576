"""Every example the docs show runs as written (issue 21): each command's
``--help`` examples and every ``miva-sync`` line of README.md's code blocks,
pasted into bash against sandbox stores.

The examples name a store the way a user's machine would: the default
profile "shop" in an isolated MIVA_SYNC_HOME (its secrets as ``env:NAME``
references) reaches a running sandbox, and ``--sandbox`` is the built-in one.
A block of examples is pasted as a whole into one shell, in a fresh copy of a
folder where the targets the examples name (orders.jsonl, orders/, orders.db)
and the store's state already exist, as they would after the commands that
come before them in the docs. Each line must end with the exit code the docs
give it (a comment ``# exit N``; otherwise 0) and never with a traceback.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.examples import help_examples, readme_examples
from tests.support.helpers import profile_toml, write_config

# Lines no test can run as written (a pattern searched in the line without
# its comment), each with the reason; keep it short.
NOT_RUN = {
    r"^miva-sync config init --profile shop$": "prompts for the store's "
    "settings: needs a person at a terminal (the form with every flag is run)",
    r"\bmiva-sync listen\b": "a server that runs until stopped: "
    "tests/*/test_webhook.py run it as a process",
    r"postgresql://miva@db\.internal/": "needs the PostgreSQL server "
    "db.internal: tests/e2e/test_postgres.py pulls into a local one",
}

# Stand-ins for third-party programs the README pipes into: each reads every
# line of its stdin and fails unless it is a Singer message.
SINGER_TARGET = """#!{python}
import json, sys
for line in sys.stdin:
    assert json.loads(line)["type"] in ("SCHEMA", "RECORD", "STATE"), line
"""
STUBS = ("target-jsonl", "meltano")

EXIT_COMMENT = re.compile(r"#\s*exit (\d+)\s*$")


@dataclass
class Block:
    where: str
    lines: list[str]


def skipped(line: str) -> str | None:
    command = line.split(" #", 1)[0].strip()
    return next((why for key, why in NOT_RUN.items() if re.search(key, command)), None)


def documented_exit(line: str) -> int:
    match = EXIT_COMMENT.search(line)
    return int(match.group(1)) if match else 0


BLOCKS = [Block(f"{path} --help", lines) for path, lines in help_examples()] + [
    Block(where, lines) for where, lines in readme_examples()
]


def test_the_examples_are_found() -> None:
    wheres = {block.where for block in BLOCKS}
    assert {
        "miva-sync --help",
        "miva-sync pull --help",
        "miva-sync verify --help",
    } <= wheres
    assert sum(where.startswith("README.md") for where in wheres) >= 8
    lines = [line for block in BLOCKS for line in block.lines]
    assert len(lines) >= 50
    assert len(NOT_RUN) <= 3  # and each entry still names a documented line
    for key in NOT_RUN:
        assert any(re.search(key, line.split(" #", 1)[0].strip()) for line in lines), (
            key
        )


# -- the prepared machine ------------------------------------------------------


@dataclass
class Machine:
    root: Path
    env: dict[str, str]


def run_quietly(command: list[str], env: dict[str, str], cwd: Path) -> None:
    done = subprocess.run(
        command, env=env, cwd=cwd, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, (command, done.stderr)


@pytest.fixture(scope="module")
def machine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Machine]:
    """A store behind the default profile "shop", the targets both stores
    wrote, and a bin folder with this install's miva-sync first on PATH."""
    root = tmp_path_factory.mktemp("machine")
    with Sandbox(orders=150, seed=21, tie_order="id") as shop:
        home, bin_dir = root / "home", root / "bin"
        home.mkdir()
        bin_dir.mkdir()
        write_config(
            home,
            'default_profile = "shop"\n\n'
            + profile_toml(
                "shop", None, url=shop.url, store_code=shop.store_code,
                api_token="env:SHOP_TOKEN", signing_key="env:SHOP_KEY",
            ),
        )  # fmt: skip
        for name in STUBS:
            stub = bin_dir / name
            stub.write_text(SINGER_TARGET.format(python=sys.executable))
            stub.chmod(stat.S_IRWXU)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
        env.update(
            PATH=os.pathsep.join(
                [str(bin_dir), str(Path(sys.executable).parent), env.get("PATH", "")]
            ),
            MIVA_SYNC_HOME=str(home),
            SHOP_TOKEN=shop.api_token,
            SHOP_KEY=shop.signing_key or "",
            EDITOR="true",  # `$EDITOR "$(miva-sync config path)"`
            HOME=str(root),
        )
        # what the docs' earlier steps leave behind, per store: the state, and
        # every target the examples read or resume (one store per database)
        for store, flag in (("shop", []), ("sandbox", ["--sandbox"])):
            work = root / f"work-{store}"
            work.mkdir()
            for target in ("orders.jsonl", "orders/", "sqlite:///orders.db"):
                run_quietly(
                    ["miva-sync", "pull", *flag, "--since", "365d", "--full-refresh",
                     "-o", target, "--quiet"],
                    env, work,
                )  # fmt: skip
        yield Machine(root, env)


def fresh_copy(
    machine: Machine, block: Block, into: Path
) -> tuple[Path, dict[str, str]]:
    """A copy of the machine for one block: its targets hold the orders of
    the store the block names (--sandbox or the profile's)."""
    store = "sandbox" if any("--sandbox" in line for line in block.lines) else "shop"
    work, home = into / "work", into / "home"
    shutil.copytree(machine.root / f"work-{store}", work)
    shutil.copytree(machine.root / "home", home)
    runs = [line for line in block.lines if not skipped(line)]
    if any(line.startswith("miva-sync config init") for line in runs):
        (home / "config.toml").unlink()  # the examples write the profile themselves
    return work, {**machine.env, "MIVA_SYNC_HOME": str(home)}


# -- pasting a block -----------------------------------------------------------


@dataclass
class LineRun:
    line: str
    code: int
    stdout: str
    stderr: str


def paste(
    lines: list[str], env: dict[str, str], cwd: Path, logs: Path
) -> list[LineRun]:
    """Run the lines in order in one bash, as if pasted; each line's exit
    code and output apart. A server an example starts in the background is
    stopped with the shell's process group once the block is done."""
    script = ["set -o pipefail"]
    for i, line in enumerate(lines):
        script += [
            f"echo '::{i}::'; echo '::{i}::' >&2",
            line,
            f"echo $? >> '{logs / 'codes'}'",
        ]
    codes = logs / "codes"
    with (logs / "out").open("w") as out, (logs / "err").open("w") as err:
        shell = subprocess.Popen(
            ["bash", "-c", "\n".join(script) + "\n"],
            env=env, cwd=cwd, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            shell.wait(timeout=300)
        finally:
            try:
                os.killpg(shell.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            shell.wait()
    outs = re.split(r"^::\d+::\n", (logs / "out").read_text(), flags=re.M)[1:]
    errs = re.split(r"^::\d+::\n", (logs / "err").read_text(), flags=re.M)[1:]
    rcs = [int(c) for c in codes.read_text().split()] if codes.exists() else []
    assert len(rcs) == len(lines), (lines, rcs, errs)
    return [LineRun(*row) for row in zip(lines, rcs, outs, errs, strict=True)]


# blocks with a line to run (a block made only of NOT_RUN lines, such as
# `listen --help`'s, is accounted for by test_the_examples_are_found)
RUNNABLE = [b for b in BLOCKS if any(not skipped(line) for line in b.lines)]


@pytest.mark.parametrize("block", RUNNABLE, ids=[block.where for block in RUNNABLE])
def test_documented_examples_run_as_written(
    machine: Machine, block: Block, tmp_path: Path
) -> None:
    runs = [line for line in block.lines if not skipped(line)]
    work, env = fresh_copy(machine, block, tmp_path / "pasted")
    for result in paste(runs, env, work, tmp_path):
        expected = documented_exit(result.line)
        what = f"{block.where}: {result.line}\n--- stderr:\n{result.stderr}"
        assert "Traceback" not in result.stderr, what
        if 'echo "exit $?"' in result.line:  # the line prints the code it shows
            assert result.code == 0, what
            assert f"exit {expected}" in result.stdout.splitlines(), what
        else:
            assert result.code == expected, (
                f"exit {result.code}, not {expected}: {what}"
            )

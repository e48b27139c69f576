"""Every command and group documents itself with an example."""

from __future__ import annotations

from typing import Any

import click
import pytest

from miva_sync.cli import cli


def walk(group: click.Group, path: list[str]) -> list[list[str]]:
    found = [path]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            found += walk(command, [*path, name])
        else:
            found.append([*path, name])
    return found


COMMANDS = walk(cli, [])


def test_help_walk_finds_the_documented_commands() -> None:
    names = {" ".join(path) for path in COMMANDS}
    assert names >= {
        "", "pull", "listen", "sandbox", "check", "config", "config init",
        "config show", "config path", "state", "state show", "state set", "state reset",
    }  # fmt: skip


@pytest.mark.parametrize("path", COMMANDS, ids=lambda p: " ".join(p) or "miva-sync")
def test_help_every_command_has_an_example(run: Any, path: list[str]) -> None:
    result = run([*path, "--help"])
    assert result.exit_code == 0, result.stderr
    assert "Example" in result.stdout
    assert "miva-sync" in result.stdout.split("Example", 1)[1]

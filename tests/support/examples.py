"""The examples the docs show: every command's ``--help`` examples and the
``miva-sync`` command lines of README.md's code blocks, as written."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import click

README = Path(__file__).resolve().parents[2] / "README.md"

_HEADING = re.compile(r"^\s*Examples?:\s*$")
_FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.S | re.M)


def commands() -> list[tuple[str, click.Command]]:
    """Every command and group, as ``("miva-sync state set", command)``."""
    from miva_sync.cli import cli

    found: list[tuple[str, click.Command]] = []

    def walk(command: click.Command, path: str) -> None:
        found.append((path, command))
        if isinstance(command, click.Group):
            for name, sub in sorted(command.commands.items()):
                walk(sub, f"{path} {name}")

    walk(cli, "miva-sync")
    return found


def help_example_lines(command: click.Command) -> list[str]:
    """The lines of the help's examples as written in the source (stripped):
    everything after its ``Examples:`` heading, blank lines and Click's
    ``\\b`` no-rewrap markers left out."""
    text = inspect.cleandoc(command.help or "").partition("\f")[0]
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _HEADING.match(line)), None)
    if start is None:
        return []
    return [
        line.strip() for line in lines[start + 1 :] if line.strip() not in ("", "\b")
    ]


def joined(lines: list[str]) -> list[str]:
    """Shell lines with their backslash continuations joined into one."""
    out: list[str] = []
    pending = ""
    for line in lines:
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
            continue
        out.append(pending + line.strip())
        pending = ""
    if pending:
        out.append(pending.strip())
    return out


def help_examples() -> list[tuple[str, list[str]]]:
    """Each command's example block: ``(command path, [shell line, …])``."""
    return [
        (path, joined(help_example_lines(command)))
        for path, command in commands()
        if help_example_lines(command)
    ]


def readme_examples(text: str | None = None) -> list[tuple[str, list[str]]]:
    """Each README code block holding ``miva-sync`` command lines: ``(where,
    [line, …])``. A console block's ``$ `` prompt is dropped; output lines
    (``miva-sync: error: …``) are not commands."""
    text = README.read_text() if text is None else text
    found: list[tuple[str, list[str]]] = []
    for match in _FENCE.finditer(text):
        raw = [line.strip() for line in match.group(1).splitlines()]
        lines = [line[2:] if line.startswith("$ ") else line for line in raw]
        commands_ = [
            line
            for line in joined(lines)
            if line == "miva-sync" or line.startswith("miva-sync ")
        ]
        if commands_:
            lineno = text.count("\n", 0, match.start()) + 1
            found.append((f"README.md:{lineno}", commands_))
    return found

"""Help you can paste (issue 21): every example in ``--help`` prints exactly as
written at any terminal width, every option has a help line, a missing value
or command points to that command's help, and ``-V`` is ``--version``."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import click
import pytest

from miva_sync import __version__
from tests.support.examples import commands, help_example_lines

COMMANDS = commands()
IDS = [path for path, _ in COMMANDS]
WIDTHS = (50, 80, 200)


def args_of(path: str) -> list[str]:
    return path.split()[1:]


def rendered_lines(text: str) -> set[str]:
    return {line.strip() for line in text.splitlines()}


def test_every_command_has_examples() -> None:
    assert len(COMMANDS) >= 13
    for path, command in COMMANDS:
        lines = help_example_lines(command)
        assert lines, f"{path} --help has no Examples"
        assert any("miva-sync" in line for line in lines), path


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_examples_print_as_written_at_any_width(
    run: Any, path: str, command: click.Command, width: int
) -> None:
    result = run([*args_of(path), "--help"], terminal_width=width)
    assert result.exit_code == 0, result.stderr
    shown = rendered_lines(result.stdout)
    for line in help_example_lines(command):
        assert line in shown, (
            f"{path} --help at {width} columns breaks the example line\n  {line}\n"
            f"into:\n{result.stdout}"
        )


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_help_examples_unbroken_in_a_narrow_terminal(
    path: str, command: click.Command
) -> None:
    """The real program, reading the width from COLUMNS as a terminal would."""
    env = {**os.environ, "COLUMNS": "50"}
    done = subprocess.run(
        [sys.executable, "-m", "miva_sync", *args_of(path), "--help"],
        env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    shown = rendered_lines(done.stdout)
    missing = [line for line in help_example_lines(command) if line not in shown]
    assert not missing, f"broken at 50 columns: {missing}\n{done.stdout}"


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_every_option_has_a_help_line(
    run: Any, path: str, command: click.Command
) -> None:
    result = run([*args_of(path), "--help"], terminal_width=200)
    assert result.exit_code == 0, result.stderr
    ctx = click.Context(command, help_option_names=["-h", "--help"])
    options = [p for p in command.get_params(ctx) if isinstance(p, click.Option)]
    assert options  # -h/--help at least
    for option in options:
        if option.hidden:
            continue
        assert (option.help or "").strip(), f"{path} {option.opts[0]} has no help"
        # what --help shows for it: the option's line carries that text
        names = option.get_help_record(ctx)[0]  # type: ignore[index]
        shown = result.stdout.splitlines()
        at = next(i for i, line in enumerate(shown) if line.strip().startswith(names))
        entry = " ".join(shown[at : at + 2])  # a long name puts it on the next line
        first_words = " ".join(option.help.split()[:2])
        assert first_words in entry, f"{path} {option.opts[0]}: {entry!r}"


def value_options(command: click.Command) -> list[click.Option]:
    """Options that must be followed by a value (not flags, counts, or an
    option whose value may be left out)."""
    return [
        p for p in command.params
        if isinstance(p, click.Option) and not p.is_flag and not p.count
        and not p._flag_needs_value and not p.hidden
    ]  # fmt: skip


@pytest.mark.parametrize(("path", "command"), COMMANDS, ids=IDS)
def test_missing_option_value_points_to_that_commands_help(
    run: Any, path: str, command: click.Command
) -> None:
    options = value_options(command)
    assert options or isinstance(command, click.Group)
    for option in options:
        result = run([*args_of(path), option.opts[-1]])
        assert result.exit_code == 2, (option.opts, result.stderr)
        assert result.stdout == ""
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert "requires an argument" in lines[0]
        assert lines[0].endswith(f"(see '{path} --help')"), lines[0]


def test_missing_value_in_a_subprocess_names_the_subcommand() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "miva_sync", "--profile", "x", "pull", "--since"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert done.stderr == (
        "miva-sync: error: Option '--since' requires an argument. "
        "(see 'miva-sync pull --help')\n"
    )


@pytest.mark.parametrize("path", [p for p, c in COMMANDS if isinstance(c, click.Group)])
def test_missing_command_is_one_line_pointing_to_help(run: Any, path: str) -> None:
    result = run(args_of(path))
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("miva-sync: error: missing command: ")
    assert lines[0].endswith(f"(see '{path} --help')")


def test_unknown_option_of_a_subcommand_points_to_its_help(run: Any) -> None:
    result = run(["state", "set", "--bogus"])
    assert result.exit_code == 2
    assert result.stderr.rstrip().endswith("(see 'miva-sync state set --help')")


@pytest.mark.parametrize("flag", ["-V", "--version"])
def test_dash_capital_v_prints_the_version(flag: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "miva_sync", flag],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"miva-sync, version {__version__}\n"
    assert done.stderr == ""


def test_version_flags_are_listed_in_help(run: Any) -> None:
    result = run(["--help"])
    assert "-V, --version" in result.stdout

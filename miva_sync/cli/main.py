"""The root command: global options, the command list, and the one place where
every error becomes a stderr line and its exit code."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator, MutableMapping
from importlib import import_module
from typing import Any

import click

from miva_sync import __version__
from miva_sync.cli.common import LOG_FORMATS, log_format, shared_options
from miva_sync.errors import ExitStatus, InterruptedRunError, MivaSyncError

# Every command, by name: the module that defines it, as a function of that
# name. A command's module (its options, its imports) is loaded only when the
# command runs, or when its help is listed: cron starts a bare `pull` every
# few minutes and it need not pay for `config`, `listen`, `verify`, …
COMMANDS = {
    name: f"miva_sync.cli.{name}"
    for name in ("check", "config", "listen", "pull", "sandbox", "state", "verify")
}


class LazyCommands(MutableMapping[str, click.Command]):
    """The root group's ``commands``: names known at once, each command
    imported from its module the first time it is looked up.

    A mapping rather than overridden ``get_command``/``list_commands``, so that
    everything that reads ``group.commands`` (click's own completion and help,
    the tests walking every command) sees the same commands as before.
    """

    def __init__(self, modules: dict[str, str]) -> None:
        self._modules = dict(modules)
        self._loaded: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        found = self._loaded.get(name)
        if found is None:
            module = self._modules[name]  # KeyError: no such command
            found = self._loaded[name] = getattr(import_module(module), name)
        return found

    def __setitem__(self, name: str, command: click.Command) -> None:
        self._loaded[name] = command
        self._modules.setdefault(name, command.__module__)

    def __delitem__(self, name: str) -> None:
        del self._modules[name]
        self._loaded.pop(name, None)

    def __contains__(self, name: object) -> bool:
        return name in self._modules  # without importing it

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __len__(self) -> int:
        return len(self._modules)


class MivaSyncGroup(click.Group):
    """The root group: every error becomes one stderr line and its exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        argv = list((args[0] if args else kwargs.get("args")) or sys.argv[1:])
        debug = os.environ.get("MIVA_SYNC_DEBUG") == "1" or "--debug" in argv
        global _json_errors
        _json_errors = _wants_json(argv)
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.exceptions.NoArgsIsHelpError as exc:
            # a group without its command: one line, not the whole help
            where = _command_path(exc.ctx, argv)
            names = sorted(getattr(exc.ctx.command, "commands", {}))
            _fail(
                f"missing command: {', '.join(names)} (see '{where} --help')",
                ExitStatus.USAGE,
            )
        except click.UsageError as exc:
            where = _command_path(exc.ctx, argv)
            _fail(f"{exc.format_message()} (see '{where} --help')", ExitStatus.USAGE)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", ExitStatus.INTERRUPTED)
        except MivaSyncError as exc:
            if debug:
                raise
            _fail(str(exc), exc.exit_code)
        except BrokenPipeError:
            _close_stdout_quietly()
            _fail("output closed (broken pipe)", ExitStatus.OUTPUT)
        except Exception as exc:
            if debug:
                raise
            _fail(
                f"internal error ({type(exc).__name__}); this is a bug, please "
                "report it, with --debug for a traceback",
                ExitStatus.INTERNAL,
            )
        _flush_stdout()  # a failure now is still exit 8; at exit it would be 120
        # click returns the exit code of `--help`/`--version` style exits
        sys.exit(result if isinstance(result, int) else 0)

    def invoke(self, ctx: click.Context) -> Any:
        # Ctrl-C as our own error, before click's main sees a KeyboardInterrupt
        # and prints an empty line ahead of the final one
        try:
            return super().invoke(ctx)
        except KeyboardInterrupt:
            raise InterruptedRunError() from None


# The exit-code list comes from ExitStatus, so it cannot drift from the codes.
_EXIT_CODES = ", ".join(f"{status.value} {status.meaning}" for status in ExitStatus)
ROOT_HELP = f"""Get every order out of a Miva Merchant store, safely, from cron.

Data goes to stdout (JSON lines); messages go to stderr. Exit codes:
{_EXIT_CODES}.

Every command's --help ends with examples that run as printed. Shell
completion (bash; zsh_source and fish_source too) completes commands,
options, profile names and queue codes.

\b
Examples:
    miva-sync pull --sandbox --since 30d | jq .id
    miva-sync config init --profile shop
    miva-sync --profile shop check
    miva-sync --profile shop pull --since 7d -o orders.jsonl
    eval "$(_MIVA_SYNC_COMPLETE=bash_source miva-sync)"
"""


@click.group(
    cls=MivaSyncGroup,
    commands=LazyCommands(COMMANDS),
    context_settings={"help_option_names": ["-h", "--help"]},
    help=ROOT_HELP,
)
@click.version_option(__version__, "-V", "--version", prog_name="miva-sync")
@shared_options
def cli() -> None:
    """The root group: its help is ROOT_HELP."""


def main() -> None:
    """Console entry point."""
    from miva_sync.base.stdio import guard_std_streams

    # first, before any file is opened: closed fds 1/2 must not be reused, a
    # closed stdout is exit 8, and a closed or full stderr never fails the run
    guard_std_streams()
    cli.main(prog_name="miva-sync")


# --log-format json: the final error line is a JSON line too (set per run)
_json_errors = False


def _wants_json(argv: list[str]) -> bool:
    """Before click parses anything: will errors be JSON lines? (the flag wins)"""
    flag = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--log-format="):
            flag = arg.partition("=")[2]
        elif arg == "--log-format":
            flag = next(iter(argv[i + 1 : i + 2]), None)
    if flag is not None and flag not in LOG_FORMATS:
        return False  # click refuses it, in text
    try:
        return log_format(flag) == "json"
    except MivaSyncError:
        return False  # the bad variable is reported, in text


def _command_path(ctx: click.Context | None, argv: list[str]) -> str:
    """The command a usage error belongs to, as typed: ``miva-sync state set``.

    Click's parser raises a missing option value or an unknown option without
    its context, so the command is then found again in ``argv``, skipping the
    values of the options that take one.
    """
    if ctx is not None:
        names = []
        while ctx.parent is not None:
            names.append(ctx.info_name or "")
            ctx = ctx.parent
        return " ".join(["miva-sync", *reversed(names)])
    command: click.Command = cli
    path = ["miva-sync"]
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--":
            break
        elif arg.startswith("-"):
            option = next(
                (
                    p
                    for p in command.params
                    if isinstance(p, click.Option)
                    and arg in (*p.opts, *p.secondary_opts)
                ),
                None,
            )
            skip = option is not None and not (option.is_flag or option.count)
        elif isinstance(command, click.Group) and arg in command.commands:
            command = command.commands[arg]
            path.append(arg)
    return " ".join(path)


def _fail(message: str, code: int) -> None:
    # Bytes stdout cannot take would fail Python's flush at exit and turn
    # this code into 120: drop them now (the run has failed anyway).
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError, MivaSyncError):
        _close_stdout_quietly()
    from miva_sync import console

    # the command's own console rules are gone by now: the format comes from
    # the command line as read before parsing (a stderr that is closed or full
    # loses the line, never the exit code)
    with console.configured(log_format="json" if _json_errors else "text"):
        if code == ExitStatus.INTERRUPTED:  # no fault: "miva-sync: interrupted…"
            console.interrupted(message, exit_code=code)
        else:
            console.error(message, exit_code=code)
    sys.exit(code)


def _flush_stdout() -> None:
    """Hand stdout its last bytes while a failure can still be reported (exit 8).

    :func:`main` has made ``sys.stdout`` a :class:`~miva_sync.base.stdio.CheckedStdout`,
    whose flush raises an OutputError for any OSError (a broken pipe too), or a
    ``ClosedStdout``, which holds nothing; never None.
    """
    try:
        sys.stdout.flush()
    except MivaSyncError as exc:
        _close_stdout_quietly()
        _fail(str(exc), exc.exit_code)


def _close_stdout_quietly() -> None:
    # Point fd 1 at /dev/null so Python's exit-time flush cannot raise again.
    # By number: sys.stdout may be None or a stand-in without a descriptor.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.dup2(devnull, 1)
    if devnull != 1:
        os.close(devnull)

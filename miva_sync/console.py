"""The stderr console: progress, warnings, summaries. The only module that imports rich."""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from types import TracebackType
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress, TaskID

# rich is imported only when a person is watching (stderr is a terminal) or a
# table is printed: a cron run's plain lines need none of it, and importing it
# costs start-up time and memory on every run.

# "text" or "json" (--log-format): JSON lines on stderr are for log shippers.
_log_format = "text"


def set_log_format(fmt: str) -> None:
    global _log_format
    _log_format = fmt


def json_logs() -> bool:
    return _log_format == "json"


def stderr_console() -> Console:
    """The stderr console. NO_COLOR (https://no-color.org) turns off every
    escape sequence, not just colours, so logs and mails stay plain text."""
    from rich.console import Console

    plain = bool(os.environ.get("NO_COLOR"))
    return Console(
        stderr=True,
        highlight=False,
        soft_wrap=True,
        color_system=None if plain else "auto",
        no_color=plain or None,
    )


class ConsoleReporter:
    """Progress bar (only on a terminal) and messages, all on stderr."""

    def __init__(self, *, quiet: bool = False, progress: bool | None = None) -> None:
        self._console: Console | None = None
        # FORCE_COLOR asks for styled output even when stderr is not a terminal
        self._terminal = sys.stderr.isatty() or bool(os.environ.get("FORCE_COLOR"))
        self.quiet = quiet
        show = sys.stderr.isatty() if progress is None else progress
        if json_logs():
            show = False  # a progress bar is not a log line
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if show and not quiet:
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self._progress = Progress(
                TextColumn("pulling"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("orders"),
                TimeElapsedColumn(),
                TextColumn("{task.fields[rate]}"),
                console=self.console,
                transient=True,
            )

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = stderr_console()
        return self._console

    def _say(self, line: str, style: str | None = None) -> None:
        if self._terminal or self._progress is not None:
            from rich.text import Text

            self.console.print(Text(line, style=style or ""))
        else:  # not a terminal: rich would print the same plain text
            sys.stderr.write(line + "\n")
            sys.stderr.flush()

    def __enter__(self) -> ConsoleReporter:
        if self._progress:
            self._progress.start()
            self._task = self._progress.add_task("pull", total=None, rate="")
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._progress:
            self._progress.stop()

    def progress(self, done: int, total: int | None) -> None:
        if self._progress is None or self._task is None:
            return
        task = self._progress.tasks[0]
        elapsed = task.elapsed or 0.0
        rate = f"{done / elapsed:,.0f}/s" if elapsed > 0.5 else ""
        self._progress.update(
            self._task, completed=done, total=max(total or 0, done) or None, rate=rate
        )

    def info(self, message: str) -> None:
        if self.quiet:
            return
        if json_logs():
            _write_json("info", message)
            return
        self._say(f"miva-sync: {message}")

    def warn(self, message: str) -> None:
        if json_logs():
            _write_json("warning", message)
            return
        self._say(f"miva-sync: warning: {message}", "yellow")

    def alarm(self, message: str) -> None:
        """A warning for cron to see: printed even under -q, whatever -q does to
        other warnings (a queue that never delivers must not stay silent)."""
        if json_logs():
            _write_json("warning", message, alarm=True)
            return
        self._say(f"miva-sync: warning: {message}", "bold yellow")

    def table(self, rows: dict[str, Any]) -> None:
        if json_logs():
            _write_json("info", "summary", **{k: str(v) for k, v in rows.items()})
            return
        width = max(len(k) for k in rows)
        for key, value in rows.items():
            self._say(f"{key.rjust(width)}  {value}")


def _write_json(level: str, message: str, **fields: Any) -> None:
    from miva_sync.stderr_log import json_log_line

    sys.stderr.write(json_log_line(level, message, **fields) + "\n")
    sys.stderr.flush()


_STATUS_STYLE = {
    "ok": ("ok", "green"),
    "warn": ("warn", "yellow"),
    "fail": ("FAIL", "bold red"),
    "info": ("info", "cyan"),
    "skip": ("-", "dim"),
}


def print_table(
    title: str,
    columns: Sequence[str],
    rows: Sequence[Sequence[str]],
    *,
    styles: Sequence[str | None] | None = None,
) -> None:
    """A table on stderr (a JSON line per row with --log-format json)."""
    if json_logs():
        for row in rows:
            _write_json("info", title, **dict(zip(columns, row, strict=False)))
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for i, row in enumerate(rows):
        table.add_row(*row, style=styles[i] if styles else None)
    stderr_console().print(table)


def print_check(rows: Sequence[Any]) -> None:
    """The doctor's rows (``doctor.Row``) as a table on stderr."""
    if json_logs():
        for row in rows:
            _write_json(
                "error" if row.status == "fail" else "info",
                f"check {row.name}: {row.status}",
                detail=row.detail,
            )
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(show_edge=False, pad_edge=False, show_header=True)
    table.add_column("check")
    table.add_column("result")
    table.add_column("detail", overflow="fold")
    for row in rows:
        label, style = _STATUS_STYLE.get(row.status, (row.status, ""))
        table.add_row(row.name, Text(label, style=style), row.detail)
    stderr_console().print(table)

"""The stderr console: progress, warnings, summaries. The only module that imports rich."""

from __future__ import annotations

import sys
from types import TracebackType
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.text import Text


class ConsoleReporter:
    """Progress bar (only on a terminal) and messages, all on stderr."""

    def __init__(self, *, quiet: bool = False, progress: bool | None = None) -> None:
        self.console = Console(stderr=True, highlight=False, soft_wrap=True)
        self.quiet = quiet
        show = sys.stderr.isatty() if progress is None else progress
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        if show and not quiet:
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
        if not self.quiet:
            self.console.print(Text(f"miva-sync: {message}"))

    def warn(self, message: str) -> None:
        self.console.print(Text(f"miva-sync: warning: {message}", style="yellow"))

    def table(self, rows: dict[str, Any]) -> None:
        width = max(len(k) for k in rows)
        for key, value in rows.items():
            self.console.print(Text(f"{key.rjust(width)}  {value}"))

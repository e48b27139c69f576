"""The only writer to stderr: message lines, log records, progress, tables, the
run summary and the final error line, all under one set of rules.

The rules are set once per command (:func:`configured`, from -v/-vv, -q and
``--log-format``) and read by every line:

- text lines are ``miva-sync: MESSAGE``; a note, warning or error says so
  (``miva-sync: note: …``, ``miva-sync: warning: …``, ``miva-sync: error: …``)
  and ``listen``'s lines name it (``miva-sync listen: …``);
- ``--log-format json`` turns every line into one JSON object
  (:func:`json_log_line`) for log shippers, and shows no progress bar;
- -q silences info lines (warnings, notes and errors stay); -v and -vv let the
  library's log records through at info and debug level;
- colour only on a terminal (or with FORCE_COLOR), never with NO_COLOR
  (https://no-color.org); no escape sequence at all, cursor movement included,
  with ``TERM=dumb`` or on a stderr that is not a terminal (FORCE_COLOR aside),
  so logs and mails stay plain: progress there is a plain line every 30 seconds.

Cheap to import: rich is loaded only when a person is watching (stderr is a
terminal) or a table is printed, logging only when a command routes its log
records here, so ``--help`` and ``--version`` load neither. rich is imported
nowhere else.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import logging

    from rich.console import Console
    from rich.progress import Progress, TaskID

    from miva_sync.sync.summary import RunSummary

_HANDLER_NAME = "miva-sync console"


class Rules(NamedTuple):
    """What the current command asked of its messages."""

    verbose: int = 0  # -v: the library's info records, -vv: debug
    quiet: bool = False  # -q: no info lines
    json: bool = False  # --log-format json


_rules = Rules()
# the console of the progress bar on screen, if any: lines go through it, so
# they scroll above the bar instead of tearing it
_live: Console | None = None


@contextmanager
def configured(
    *,
    verbose: int | None = None,
    quiet: bool | None = None,
    log_format: str | None = None,
    logs: bool = False,
) -> Iterator[Rules]:
    """The rules for one command (what is not given stays), back as they were
    afterwards: one process may run several commands (tests, library callers).

    ``logs``: the ``miva_sync`` logger's records become console lines too, at
    the level -v/-vv/-q ask for.
    """
    global _rules
    previous = _rules
    changes: dict[str, Any] = {}
    if verbose is not None:
        changes["verbose"] = verbose
    if quiet is not None:
        changes["quiet"] = quiet
    if log_format is not None:
        changes["json"] = log_format == "json"
    _rules = previous._replace(**changes)
    level = _route_logs(_rules) if logs else None
    try:
        yield _rules
    finally:
        _rules = previous
        if level is not None:
            _logger().setLevel(level)


# -- lines ----------------------------------------------------------------------------


def info(message: str, *, command: str | None = None, **fields: Any) -> None:
    """``miva-sync: MESSAGE``; nothing under -q. ``fields`` go into the JSON line."""
    if not _rules.quiet:
        _emit("info", message, fields, command=command)


def note(message: str, *, command: str | None = None, **fields: Any) -> None:
    """``miva-sync: note: MESSAGE``: something to know that is no fault; shown under -q."""
    _emit("warning", message, fields, label="note: ", command=command)


def warning(message: str, *, command: str | None = None, **fields: Any) -> None:
    """``miva-sync: warning: MESSAGE``, yellow on a terminal; shown under -q."""
    _emit(
        "warning", message, fields, label="warning: ", style="yellow", command=command
    )


def error(message: str, *, command: str | None = None, **fields: Any) -> None:
    """``miva-sync: error: MESSAGE``: the line a failed command ends with."""
    _emit("error", message, fields, label="error: ", command=command)


def interrupted(message: str, **fields: Any) -> None:
    """``miva-sync: interrupted…``: the line an interrupted command ends with.

    On a terminal it starts at the start of its line, over the ``^C`` the
    terminal echoed there (and cleared, where the terminal can: not TERM=dumb).
    """
    if not _rules.json and _isatty():
        try:
            sys.stderr.write("\r\x1b[K" if _screen() else "\r")
        except (OSError, ValueError):
            pass  # a closed or full stderr never changes the exit code
    _emit("error", message, fields)


def line(
    level: str,
    message: str,
    *,
    label: str = "",
    command: str | None = None,
    **fields: Any,
) -> None:
    """Any other message, whatever -q says: ``miva-sync: LABELMESSAGE`` as text,
    a JSON line at ``level`` (info, warning, error) with ``fields``."""
    _emit(level, message, fields, label=label, command=command)


def _emit(
    level: str,
    message: str,
    fields: dict[str, Any],
    *,
    label: str = "",
    style: str | None = None,
    command: str | None = None,
    console: Console | None = None,
) -> None:
    """``miva-sync[ COMMAND]: LABELMESSAGE`` as text, else a JSON line at
    ``level`` with ``fields`` (and the command)."""
    if _rules.json:
        if command is not None:
            fields = {"command": command, **fields}
        _write(json_log_line(level, message, **fields))
    else:
        prefix = f"miva-sync {command}: " if command else "miva-sync: "
        _write(prefix + label + message, style, console)


def document(data: dict[str, Any]) -> None:
    """One JSON object as one plain line, whatever -q and ``--log-format`` say:
    a command's machine answer when stdout carries its data (``pull --json``
    while the orders go to stdout)."""
    import json

    _write(json.dumps(data, ensure_ascii=False))


def relay(profile: str, text: str) -> None:
    """A child run's stderr (``pull --all-profiles``), whole and marked with its
    profile: ``[NAME] line`` as text, a ``profile`` field in each JSON line."""
    if not _rules.json:
        _write_block([f"[{profile}] {raw}" for raw in text.splitlines()])
        return
    import json

    out = []
    for raw in filter(str.strip, text.splitlines()):
        try:
            record = json.loads(raw)
        except ValueError:
            record = None
        if isinstance(record, dict):  # the child's own JSON line
            out.append(json.dumps({**record, "profile": profile}, ensure_ascii=False))
        else:  # e.g. Python's own last words: still one JSON line
            out.append(json_log_line("warning", raw, profile=profile))
    _write_block(out)


def json_log_line(level: str, message: str, **fields: Any) -> str:
    """One JSON log line: time (UTC ISO), level, logger, message, extra fields."""
    import json

    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": level,
        "logger": "miva_sync",
        "message": message,
    }
    record.update(fields)
    return json.dumps(record, ensure_ascii=False)


def _write(text: str, style: str | None = None, console: Console | None = None) -> None:
    target = _live or console
    if target is None and style and _terminal():
        target = stderr_console()
    try:
        if target is not None:
            from rich.text import Text

            target.print(Text(text, style=style or ""))
        else:  # not a terminal: rich would print the same plain text
            sys.stderr.write(text + "\n")
            sys.stderr.flush()
    except (OSError, ValueError):
        pass  # a closed or full stderr (2>&-, 2>/dev/full) never changes the exit code


def _write_block(lines: list[str]) -> None:
    """Several lines in one write, so another thread's cannot fall in between."""
    if lines:
        _write("\n".join(lines))


def _terminal() -> bool:
    """Styled output: stderr is a terminal (or FORCE_COLOR asks for styles even
    when it is not), unless ``TERM=dumb`` says escape sequences are not understood."""
    if _dumb():
        return False
    return _isatty() or bool(os.environ.get("FORCE_COLOR"))


def _dumb() -> bool:
    # "unknown" too: what some service managers set, and rich reads it as dumb
    return os.environ.get("TERM", "").lower() in ("dumb", "unknown")


def _isatty() -> bool:
    try:
        return sys.stderr is not None and sys.stderr.isatty()
    except (OSError, ValueError):  # a closed stderr
        return False


def _screen() -> bool:
    """A terminal a progress bar can redraw in place (cursor movement): a real
    one, not ``TERM=dumb``; FORCE_COLOR never makes a pipe one."""
    return _isatty() and not _dumb()


def stderr_console() -> Console:
    """A rich console on stderr. NO_COLOR turns off colour and every other
    style; ``TERM=dumb`` every escape sequence (no bar is drawn there either)."""
    from rich.console import Console

    plain = bool(os.environ.get("NO_COLOR")) or _dumb()
    return Console(
        stderr=True,
        highlight=False,
        soft_wrap=True,
        color_system=None if plain else "auto",
        no_color=plain or None,
    )


# -- the library's log records -----------------------------------------------------------


def _logger() -> logging.Logger:
    import logging

    return logging.getLogger("miva_sync")


def _route_logs(rules: Rules) -> int:
    """Make the ``miva_sync`` logger's records console lines; its level before."""
    import logging

    logger = _logger()
    if not any(h.get_name() == _HANDLER_NAME for h in logger.handlers):
        logger.addHandler(_log_handler())
    previous = logger.level
    level = (
        logging.DEBUG
        if rules.verbose > 1
        else logging.INFO
        if rules.verbose
        else logging.WARNING
    )
    logger.setLevel(logging.ERROR if rules.quiet else level)
    return previous


def _log_handler() -> logging.Handler:
    import logging

    class ConsoleHandler(logging.Handler):
        """A log record as one console line, as the rules at the time say."""

        def emit(self, record: logging.LogRecord) -> None:
            try:
                warn = record.levelno >= logging.WARNING
                _emit(
                    record.levelname.lower(),
                    record.getMessage(),
                    {"logger": record.name},
                    label="warning: " if warn else "",
                )
            except Exception:  # noqa: BLE001 - logging must never break a run
                self.handleError(record)

    handler = ConsoleHandler()
    handler.set_name(_HANDLER_NAME)
    return handler


# -- a run: progress, messages, summary ------------------------------------------------


class ConsoleReporter:
    """A run's progress and messages.

    Progress (docs/design.md §4.3) is a bar with the rate and, when the total is
    known, the time left, on a terminal that can redraw in place; anywhere else
    (a pipe, a file, journald, ``TERM=dumb``, JSON logs) one plain line every
    :data:`PROGRESS_INTERVAL` seconds, and off the terminal only with ``-v`` or
    ``--progress``. ``progress`` None: the default; False: none at all.
    """

    def __init__(
        self,
        *,
        quiet: bool | None = None,
        progress: bool | None = None,
        verbose: int | None = None,
    ) -> None:
        self._console: Console | None = None
        self._terminal = _terminal()
        self.quiet = _rules.quiet if quiet is None else quiet
        verbose = _rules.verbose if verbose is None else verbose
        watched = _isatty() and not _rules.json  # a person reads it as it runs
        show = (watched or verbose > 0) if progress is None else progress
        self._progress: Progress | None = None
        self._task: TaskID | None = None
        self._every: float | None = None  # seconds between plain progress lines
        self._started: float | None = None
        self._next_line = 0.0
        if not show or self.quiet:
            return
        if not (watched and _screen()):
            self._every = progress_interval()
            return
        # rich only now: a bar is really shown
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
            TextColumn("{task.fields[eta]}"),
            console=self.console,
            transient=True,
        )

    @property
    def console(self) -> Console:
        if self._console is None:
            self._console = stderr_console()
        return self._console

    def __enter__(self) -> ConsoleReporter:
        global _live
        self._started = time.monotonic()
        self._next_line = self._started + (self._every or 0.0)
        if self._progress:
            self._progress.start()
            self._task = self._progress.add_task("pull", total=None, rate="", eta="")
            _live = self.console
        return self

    def __exit__(self, *exc_info: object) -> None:
        global _live
        if self._progress:
            self._progress.stop()
            _live = None

    def progress(self, done: int, total: int | None) -> None:
        """``done`` orders of ``total`` (None: not known) so far."""
        if self._progress is None and self._every is None:
            return
        now = time.monotonic()
        if self._started is None:  # not entered: count from the first report
            self._started = now
            self._next_line = now + (self._every or 0.0)
        elapsed = now - self._started
        total = max(total, done) if total else None
        rate = done / elapsed if done and elapsed > 0 else None
        eta = (total - done) / rate if rate and total is not None else None
        if self._progress is not None and self._task is not None:
            settled = elapsed > 0.5  # the first pages' rate says little
            self._progress.update(
                self._task,
                completed=done,
                total=total,
                rate=_rate_text(rate) if settled and rate else "",
                eta=f"ETA {_span(eta)}" if settled and eta is not None else "",
            )
        elif now >= self._next_line:
            self._next_line = now + (self._every or 0.0)
            self._progress_line(done, total, rate, eta)

    def _progress_line(
        self, done: int, total: int | None, rate: float | None, eta: float | None
    ) -> None:
        """``miva-sync: progress: 1,200 of 5,000 orders (24%), 40 orders/s, ETA 1m35s``"""
        parts = [
            f"{done:,} of {total:,} orders ({100 * done // total}%)"
            if total
            else f"{done:,} orders"
        ]
        if rate:
            parts.append(_rate_text(rate))
        if eta is not None:
            parts.append(f"ETA {_span(eta)}")
        fields = {
            "event": "progress",
            "done": done,
            "total": total,
            "rate": round(rate, 1) if rate else None,
            "eta_seconds": round(eta) if eta is not None else None,
        }
        _emit("info", ", ".join(parts), fields, label="progress: ")

    def _say(
        self,
        level: str,
        message: str,
        label: str = "",
        style: str | None = None,
        **fields: Any,
    ) -> None:
        # on a terminal through this reporter's own console (its settings hold)
        console = self.console if self._terminal else None
        _emit(level, message, fields, label=label, style=style, console=console)

    def info(self, message: str) -> None:
        if not self.quiet:
            self._say("info", message)

    def warn(self, message: str) -> None:
        self._say("warning", message, "warning: ", "yellow")

    def alarm(self, message: str) -> None:
        """A warning for cron to see: printed even under -q, whatever -q does to
        other warnings (a queue that never delivers must not stay silent)."""
        self._say("warning", message, "warning: ", "bold yellow", alarm=True)

    def table(
        self, rows: dict[str, Any], *, fields: dict[str, Any] | None = None
    ) -> None:
        """``key  value`` rows for people; with --log-format json one line
        carrying ``fields`` (machine values), else the rows as text."""
        if _rules.json:
            if fields is None:
                fields = {k: str(v) for k, v in rows.items()}
            self._say("info", "summary", **fields)
            return
        # a table is the command's answer (a dry run's plan): no prefix, and
        # shown under -q too
        width = max(len(k) for k in rows)
        lines = [f"{key.rjust(width)}  {value}" for key, value in rows.items()]
        _write("\n".join(lines), console=self.console if self._terminal else None)

    def summary(self, summary: RunSummary) -> None:
        """The run's closing line (not under -q): as text, what
        :meth:`RunSummary.describe` says; as JSON, one line with event
        ``summary`` and every field of the summary."""
        if not self.quiet:
            self._say("info", summary.describe(), event="summary", **summary.to_json())


PROGRESS_INTERVAL = 30.0  # seconds between plain progress lines
PROGRESS_INTERVAL_ENV = "MIVA_SYNC_PROGRESS_INTERVAL"


def progress_interval() -> float:
    """Seconds between plain progress lines: MIVA_SYNC_PROGRESS_INTERVAL, else 30."""
    raw = os.environ.get(PROGRESS_INTERVAL_ENV, "").strip()
    if not raw:
        return PROGRESS_INTERVAL
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < float("inf"):
        from miva_sync.errors import ConfigError

        raise ConfigError(
            f"{PROGRESS_INTERVAL_ENV} must be a number of seconds above 0, not {raw!r}"
        )
    return seconds


def _rate_text(rate: float) -> str:
    return f"{rate:,.0f} orders/s" if rate >= 10 else f"{rate:.1f} orders/s"


def _span(seconds: float) -> str:
    """A time left: 45s, 3m05s, 2h05m."""
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole // 3600}h{whole // 60 % 60:02d}m"


# -- tables ----------------------------------------------------------------------------

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
    if _rules.json:
        for row in rows:
            _emit("info", title, dict(zip(columns, row, strict=False)))
        return
    from rich.table import Table

    table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for i, row in enumerate(rows):
        table.add_row(*row, style=styles[i] if styles else None)
    stderr_console().print(table)


def print_check(rows: Sequence[Any]) -> None:
    """``check``'s rows (``app.check.Row``) as a table on stderr."""
    if _rules.json:
        for row in rows:
            level = "error" if row.status == "fail" else "info"
            _emit(level, f"check {row.name}: {row.status}", {"detail": row.detail})
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

"""The library's log records on stderr, one line each: text or JSON lines.

Kept out of cli.py so that ``--version`` and ``--help`` never import logging.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any


def route_to_stderr(*, verbose: int, quiet: bool, json_lines: bool) -> None:
    """Send the ``miva_sync`` logger to stderr (-v: info, -vv: debug, -q: errors)."""
    logger = logging.getLogger("miva_sync")
    for handler in list(logger.handlers):
        if isinstance(handler, StderrHandler):
            logger.removeHandler(handler)
    level = (
        logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    )
    if quiet:
        level = logging.ERROR
    logger.addHandler(StderrHandler(json_lines=json_lines))
    logger.setLevel(level)


class StderrHandler(logging.Handler):
    """Writes to whatever sys.stderr is at the time (CliRunner swaps it per run)."""

    def __init__(self, *, json_lines: bool) -> None:
        super().__init__()
        self.json_lines = json_lines

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if self.json_lines:
                line = json_log_line(
                    record.levelname.lower(), message, logger=record.name
                )
            else:
                warn = "warning: " if record.levelno >= logging.WARNING else ""
                line = f"miva-sync: {warn}{message}"
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never break a run
            self.handleError(record)


def json_log_line(level: str, message: str, **fields: Any) -> str:
    """One JSON log line: time (UTC ISO), level, logger, message, extra fields."""
    record = {
        "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "level": level,
        "logger": "miva_sync",
        "message": message,
    }
    record.update(fields)
    return json.dumps(record, ensure_ascii=False)

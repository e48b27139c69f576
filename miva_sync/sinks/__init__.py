"""Output targets. Every mode writes through one :class:`~miva_sync.sinks.base.Sink`."""

from __future__ import annotations

from pathlib import Path

from miva_sync.errors import UsageError
from miva_sync.sinks.base import Sink


def open_sink(target: str, *, source: str = "pull") -> Sink:
    """Open the output named by ``-o``.

    ``-`` stdout, ``FILE.jsonl`` a file, ``DIR/`` one file per order,
    ``sqlite:///PATH`` a SQLite database. ``source`` (pull, queue or webhook)
    is recorded by targets that keep it.
    """
    if target == "-":
        from miva_sync.sinks.jsonl import StdoutSink

        return StdoutSink()
    if target.startswith("sqlite:///"):
        from miva_sync.sinks.sqlite import SqliteSink, sqlite_path

        return SqliteSink(sqlite_path(target), source=source)
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise UsageError(
            f"unknown output {scheme}://; use -, FILE.jsonl, DIR/ or sqlite:///PATH"
        )
    if target.endswith("/") or Path(target).is_dir():
        from miva_sync.sinks.directory import DirectorySink

        return DirectorySink(Path(target), source=source)
    from miva_sync.sinks.jsonl import FileSink

    return FileSink(Path(target))

"""Output targets. Every mode writes through one :class:`~miva_sync.sinks.base.Sink`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from miva_sync.errors import UsageError
from miva_sync.sinks.base import Sink

if TYPE_CHECKING:
    from miva_sync.sinks.jsonl import FileSink, StdoutSink
    from miva_sync.store.urls import StoreIdentity

FORMATS = ("jsonl", "singer")
POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def is_postgres(target: str) -> bool:
    """Is ``-o`` a PostgreSQL URL?"""
    return target.startswith(POSTGRES_SCHEMES)


def open_sink(
    target: str,
    *,
    source: str = "pull",
    fmt: str = "jsonl",
    wait: bool = False,
    store: StoreIdentity | None = None,
) -> Sink:
    """Open the output named by ``-o``.

    ``-`` stdout, ``FILE.jsonl`` a file, ``DIR/`` one file per order,
    ``sqlite:///PATH`` a SQLite database, ``postgresql://…`` a PostgreSQL
    database. ``source`` (pull, queue or webhook) is recorded by targets that
    keep it. ``fmt`` is the stream format of stdout and files: ``jsonl`` or
    ``singer``. ``wait``: a PostgreSQL target waits for another host's run of
    the same store instead of exiting 7, like ``--wait`` does for the local lock.
    ``store``: the identity of the store whose orders go there; a database
    holding another store's refuses them (ConfigError, exit 3) and one holding
    none records it (streams and folders have no place to keep it).
    """
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use {' or '.join(FORMATS)}")
    if target == "-":
        from miva_sync.sinks.jsonl import StdoutSink

        return _formatted(StdoutSink(), fmt)
    if target.startswith("sqlite:///"):
        from miva_sync.sinks.sqlite import SqliteSink, sqlite_path

        _stream_only(fmt, "a SQLite database")
        return SqliteSink(sqlite_path(target), source=source, store=store)
    if is_postgres(target):
        from miva_sync.sinks.postgres import PostgresSink

        _stream_only(fmt, "a PostgreSQL database")
        return PostgresSink(target, source=source, wait=wait, store=store)
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise UsageError(
            f"unknown output {scheme}://; use -, FILE.jsonl, DIR/, sqlite:///PATH "
            "or postgresql://…"
        )
    if target.endswith("/") or Path(target).is_dir():
        from miva_sync.sinks.directory import DirectorySink

        _stream_only(fmt, "a folder")
        return DirectorySink(Path(target), source=source)
    from miva_sync.sinks.jsonl import FileSink

    return _formatted(FileSink(Path(target)), fmt)


def check_store(target: str, store: StoreIdentity) -> None:
    """Refuse (exit 3) a database target that holds another store's orders,
    without creating, migrating or claiming anything (``verify``)."""
    if target.startswith("sqlite:///"):
        from miva_sync.sinks.sqlite import check_store as check_file
        from miva_sync.sinks.sqlite import sqlite_path

        path = sqlite_path(target)
        if path.exists():
            check_file(path, store)
    elif is_postgres(target):
        from miva_sync.sinks.postgres import check_store as check_schema

        check_schema(target, store)


def _formatted(lines: StdoutSink | FileSink, fmt: str) -> Sink:
    if fmt != "singer":
        return lines
    from miva_sync.sinks.singer import SingerSink

    return SingerSink(lines)


def _stream_only(fmt: str, what: str) -> None:
    if fmt != "jsonl":
        raise UsageError(
            f"--format {fmt} is for stdout and files; {what} stores orders, "
            "not a stream: leave --format out"
        )


def identity(sink: Sink) -> str:
    """What a target is, independent of how its path was spelled."""
    for attribute in ("path", "folder"):
        location = getattr(sink, attribute, None)
        if isinstance(location, Path):
            return str(location.resolve())
    return sink.description

"""Output targets. Every mode writes through one :class:`~miva_sync.sinks.base.Sink`.

Which class writes a target is read off :data:`SCHEMES` (URLs) and the path
forms in :func:`kind_of`; a target's module is imported only when it is
opened, so psycopg and sqlite3 load only for the runs that use them.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from miva_sync.errors import UsageError
from miva_sync.sinks.base import Opening, Sink, SinkClass

if TYPE_CHECKING:
    from miva_sync.sinks.database import DatabaseSink
    from miva_sync.store.urls import StoreIdentity


@dataclass(frozen=True)
class Kind:
    """One form of ``-o`` and the class in this package that writes it."""

    name: str  # stdout, lines, folder, sqlite, postgres
    module: str
    cls: str
    # a target that stores orders rather than a stream of them, as the
    # refusal of --format names it; None: a stream, in any format
    stores: str | None = None
    database: bool = False  # holds its own cursor and one store's orders

    def load(self) -> Any:
        """The class, its module imported now."""
        return getattr(importlib.import_module(f"{__name__}.{self.module}"), self.cls)


STDOUT = Kind("stdout", "jsonl", "StdoutSink")
LINES = Kind("lines", "jsonl", "FileSink")
FOLDER = Kind("folder", "directory", "DirectorySink", stores="a folder")
SQLITE = Kind(
    "sqlite", "sqlite", "SqliteSink", stores="a SQLite database", database=True
)
POSTGRES = Kind(
    "postgres",
    "postgres",
    "PostgresSink",
    stores="a PostgreSQL database",
    database=True,
)
# -o by URL scheme; any other scheme is refused (exit 2)
SCHEMES = {"sqlite:///": SQLITE, "postgresql://": POSTGRES, "postgres://": POSTGRES}
# --format: the class that wraps a stream's lines (None: the orders as they are)
FORMATS = {"jsonl": None, "singer": Kind("singer", "singer", "SingerSink")}
OUTPUT_FORMS = "use -, FILE.jsonl, DIR/, sqlite:///PATH or postgresql://…"


def kind_of(target: str, *, forms: str = OUTPUT_FORMS) -> Kind:
    """Which kind of target ``-o`` names: ``-`` stdout, a URL by its scheme,
    ``DIR/`` (or an existing folder) a folder, anything else a JSON Lines file.
    An unknown scheme is a UsageError that lists ``forms``."""
    if target == "-":
        return STDOUT
    kind = _by_scheme(target)
    if kind is not None:
        return kind
    if "://" in target:
        scheme = target.split("://", 1)[0]
        raise UsageError(f"unknown output {scheme}://; {forms}")
    if target.endswith("/") or Path(target).is_dir():
        return FOLDER
    return LINES


def is_postgres(target: str) -> bool:
    """Is ``-o`` a PostgreSQL URL?"""
    return _by_scheme(target) is POSTGRES


def open_sink(
    target: str,
    *,
    source: str = "pull",
    fmt: str = "jsonl",
    wait: bool | float = False,
    store: StoreIdentity | None = None,
) -> Sink:
    """Open the output named by ``-o`` (see :func:`kind_of`); ``fmt`` is the
    stream format of stdout and files, ``jsonl`` or ``singer``, and the rest
    is :class:`~miva_sync.sinks.base.Opening`'s."""
    if fmt not in FORMATS:
        raise UsageError(f"unknown format {fmt!r}; use {' or '.join(FORMATS)}")
    kind = kind_of(target)
    if kind.stores is not None and fmt != "jsonl":
        raise UsageError(
            f"--format {fmt} is for stdout and files; {kind.stores} stores orders, "
            "not a stream: leave --format out"
        )
    opener: SinkClass = kind.load()
    sink = opener.from_target(target, Opening(source=source, wait=wait, store=store))
    wrapper = FORMATS[fmt]
    if wrapper is None:
        return sink
    wrap: Callable[[Sink], Sink] = wrapper.load()
    return wrap(sink)


def check_store(target: str, store: StoreIdentity) -> None:
    """Refuse (exit 3) a database target that holds another store's orders,
    without creating, migrating or claiming anything (``verify``)."""
    kind = _by_scheme(target)
    if kind is not None and kind.database:
        database: type[DatabaseSink] = kind.load()
        database.check_store(target, store)


def identity(sink: Sink) -> str:
    """What a target is, independent of how its path was spelled."""
    for attribute in ("path", "folder"):
        location = getattr(sink, attribute, None)
        if isinstance(location, Path):
            return str(location.resolve())
    return sink.description


def _by_scheme(target: str) -> Kind | None:
    return next(
        (kind for scheme, kind in SCHEMES.items() if target.startswith(scheme)), None
    )

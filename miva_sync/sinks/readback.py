"""Read an output back: which orders it holds, and in which version.

``miva-sync verify`` compares this with the store. Only what a comparison
needs is read (id, orderdate, dt_updated per order), and nothing is ever
created or migrated: a target that does not exist or is not ours is
unreadable (exit 8), never silently "empty".

Each target keeps newest-wins in its own way, so each is read its own way:
a JSON Lines file may hold several versions of one order (the newest
``dt_updated`` counts; a partial last line left by a killed writer is
ignored), a folder holds ``<id>.json`` files, and the databases hold one row
per order plus their own copy of the cursor (whose ``held`` set verify needs).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from miva_sync.base import jsonio
from miva_sync.errors import OutputError, UsageError
from miva_sync.sinks import POSTGRES, SQLITE, kind_of
from miva_sync.sinks.database import STORED_VERSIONS
from miva_sync.store.orders import cursor_value

_ORDER_FILE = re.compile(r"^\d+\.json$")
SINGER_TYPES = ("RECORD", "SCHEMA", "STATE")


@dataclass(frozen=True)
class Stored:
    """One order as a target holds it: the values verify compares."""

    orderdate: int | None
    dt_updated: int | None


@dataclass
class TargetContents:
    """What a target holds, by order id."""

    description: str
    orders: dict[int, Stored] = field(default_factory=dict)
    # the target's own cursor record for the store (databases only)
    checkpoint: dict[str, Any] | None = None
    # lines or files that could not be read as an order: they count as absent
    unreadable: int = 0
    # the stream format of a file (Singer files hold RECORD messages)
    fmt: str = "jsonl"

    def keep(self, order: Any) -> None:
        """Take one order object; the newest dt_updated of an id wins."""
        oid = order.get("id") if isinstance(order, dict) else None
        if isinstance(oid, bool) or not isinstance(oid, int) or oid < 0:
            self.unreadable += 1
            return
        stored = Stored(
            cursor_value(order, "orderdate"), cursor_value(order, "dt_updated")
        )
        known = self.orders.get(oid)
        if (
            known is None
            or known.dt_updated is None
            or (stored.dt_updated is not None and stored.dt_updated >= known.dt_updated)
        ):
            self.orders[oid] = stored


def read_target(target: str, store_key: str) -> TargetContents:
    """Read the output named by ``-o`` back (see the module docstring)."""
    return _READERS[check_target(target)](target, store_key)


def check_target(target: str) -> str:
    """The kind of target (lines, folder, sqlite, postgres), or raise at once.

    Called before the store is listed too, so a typo costs no requests: a
    local target that does not exist is unreadable (exit 8), not "empty".
    """
    if target == "-":
        raise UsageError(
            "stdout cannot be read back: verify the file, folder or database the "
            "orders went to (-o orders.jsonl, -o orders/, -o sqlite:///orders.db)"
        )
    kind = kind_of(
        target, forms="verify reads FILE.jsonl, DIR/, sqlite:///PATH or postgresql://…"
    )
    if kind is not POSTGRES:
        if kind is SQLITE:
            from miva_sync.sinks.sqlite import sqlite_path

            path = sqlite_path(target)
        else:
            path = Path(target)
        if not path.exists():
            raise OutputError(f"cannot read {target}: it does not exist")
    return kind.name


def _read_lines(target: str, store_key: str) -> TargetContents:
    path = Path(target)
    contents = TargetContents(str(path))
    try:
        with path.open("rb") as lines:
            for line in lines:
                if not line.endswith(b"\n"):
                    break  # a killed writer's partial last line: never written
                _take_line(contents, line)
    except OSError as exc:
        raise OutputError(f"cannot read {path}: {exc.strerror}") from None
    return contents


def _take_line(contents: TargetContents, line: bytes) -> None:
    if not line.strip():
        return
    try:
        message = jsonio.loads(line)
    except ValueError:
        contents.unreadable += 1
        return
    if isinstance(message, dict) and message.get("type") in SINGER_TYPES:
        # a --format singer file: orders travel inside RECORD messages
        contents.fmt = "singer"
        if message["type"] == "RECORD":
            contents.keep(message.get("record"))
        return
    contents.keep(message)


def _read_folder(target: str, store_key: str) -> TargetContents:
    folder = Path(target)
    contents = TargetContents(f"{folder}/")
    try:
        names = [p.name for p in folder.iterdir() if _ORDER_FILE.match(p.name)]
    except OSError as exc:
        raise OutputError(f"cannot read folder {folder}: {exc.strerror}") from None
    for name in names:
        try:
            order = jsonio.loads((folder / name).read_bytes())
        except (OSError, ValueError):
            contents.unreadable += 1  # a damaged file holds no order: it is missing
            continue
        if isinstance(order, dict) and order.get("id") != int(name[:-5]):
            contents.unreadable += 1  # not the order its name says
            continue
        contents.keep(order)
    return contents


def _read_sqlite(target: str, store_key: str) -> TargetContents:
    import sqlite3

    from miva_sync.sinks.sqlite import SqliteSink, reading, sqlite_path

    path = sqlite_path(target)
    with reading(path) as conn:
        try:
            rows = conn.execute(STORED_VERSIONS).fetchall()
            state = conn.execute(
                SqliteSink.SQL.read_checkpoint, (store_key,)
            ).fetchone()
        except sqlite3.Error as exc:
            raise OutputError(
                f"cannot read {path}: {exc} (is it a miva-sync database?)"
            ) from None
    record = None
    if state is not None:
        with contextlib.suppress(ValueError):
            record = jsonio.loads(state[0].encode())
    return _database(f"sqlite:///{path}", rows, record)


def _read_postgres(target: str, store_key: str) -> TargetContents:
    from miva_sync.sinks.postgres import PostgresSink, reading, split_target
    from miva_sync.store.urls import redact_url

    description = redact_url(target)
    _, schema = split_target(target)
    with reading(target) as conn:
        found = conn.execute("SELECT to_regclass('orders')").fetchone()
        if not found or found[0] is None:
            where = f"schema {schema}" if schema else "the default schema"
            raise OutputError(
                f"{description}: no orders table in {where}; nothing was "
                "written there yet (check ?schema=)"
            )
        rows = conn.execute(STORED_VERSIONS).fetchall()
        state = conn.execute(PostgresSink.SQL.read_checkpoint, (store_key,)).fetchone()
    return _database(description, rows, None if state is None else state[0])


def _database(
    description: str, rows: Iterable[tuple[int, int | None, int | None]], record: Any
) -> TargetContents:
    """A database's rows (one per order) and its own cursor record, if readable."""
    contents = TargetContents(description)
    contents.orders = {oid: Stored(od, up) for oid, od, up in rows}
    if isinstance(record, dict):
        contents.checkpoint = record
    return contents


_READERS: dict[str, Callable[[str, str], TargetContents]] = {
    "lines": _read_lines,
    "folder": _read_folder,
    "sqlite": _read_sqlite,
    "postgres": _read_postgres,
}

"""SQLite output (standard-library sqlite3): one row per order, newest version wins.

One transaction per page: the rows, their ``order_items`` and this target's
copy of the cursor and dedupe window commit together, so a crash can never
separate them. A file holds one store's orders (``sync_store``, issue 19):
order numbers repeat across stores, so another store is refused (exit 3).
WAL mode and a busy timeout let a webhook receiver and a cron
pull share one file. ``schema_version`` and :data:`MIGRATIONS` let a later
release open an older file.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

from miva_sync.base import jsonio
from miva_sync.errors import ConfigError, OutputError
from miva_sync.sinks.base import Opening
from miva_sync.sinks.database import (
    INSERT_ITEMS,
    INSERT_ORDERS,
    ON_ORDER_CONFLICT,
    RECORDED_STORE,
    DatabaseSink,
    Refusal,
    Statements,
    apply_migrations,
    keeps_stored,
    order_row,
    order_tables,
    refuse_other_store,
)
from miva_sync.sinks.rows import order_item_rows
from miva_sync.state.record import StateRecord
from miva_sync.store.orders import cursor_value, order_id
from miva_sync.store.urls import StoreIdentity

BUSY_TIMEOUT_MS = 30_000
# ids per "id IN (…)" lookup: far below SQLite's variable limit, old builds too
LOOKUP_BATCH = 500
# Rows go to SQLite many per statement: the statement's head, a "(?, …)" per
# row, and its tail. An item replaces the row of its line.
_INSERT_ITEMS = INSERT_ITEMS.replace("INSERT", "INSERT OR REPLACE", 1)
MAX_ROWS_PER_STATEMENT = 100  # and never more ? marks than this SQLite allows

_V1 = order_tables(integer="INTEGER", real="REAL", json="TEXT")

_V2 = """
CREATE VIEW orders_iso AS
SELECT id,
       datetime(orderdate, 'unixepoch') AS orderdate_utc,
       datetime(dt_updated, 'unixepoch') AS updated_utc,
       status, pay_status, total, bill_fname, bill_lname, bill_email,
       ship_city, ship_state, ship_cntry, source,
       datetime(first_seen, 'unixepoch') AS first_seen_utc,
       datetime(last_seen, 'unixepoch') AS last_seen_utc
FROM orders;
"""

# The store whose orders the file holds: its normalised URL and store code
# (urls.StoreIdentity), recorded with the first write; one row at most.
_V3 = """
CREATE TABLE sync_store (
    only_one INTEGER PRIMARY KEY CHECK (only_one = 1),
    store_key TEXT NOT NULL,
    claimed_at INTEGER NOT NULL
);
"""

# (version, script). Append only: a released migration never changes.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _V1), (2, _V2), (3, _V3))
SCHEMA_VERSION = MIGRATIONS[-1][0]


def sqlite_path(target: str) -> Path:
    """``sqlite:///orders.db`` -> ``orders.db``; ``sqlite:////abs/x.db`` -> ``/abs/x.db``."""
    path = target[len("sqlite:///") :]
    if not path:
        raise ConfigError("an sqlite output needs a path: sqlite:///orders.db")
    return Path(path).expanduser()


class SqliteSink(DatabaseSink):
    """Upsert orders into a SQLite file (the rules: miva_sync/sinks/database.py)."""

    SQL = Statements("?")
    ONE = 1
    _errors = sqlite3.Error

    def __init__(
        self, path: Path, *, source: str = "pull", store: StoreIdentity | None = None
    ) -> None:
        super().__init__(source=source, store=store)
        self.path = path
        self.description = f"sqlite:///{path}"
        self.where = str(path)
        self._conn = _connect(path)
        self._in_transaction = False
        self._max_variables = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        try:
            migrate(self._conn, path)
            if store is not None:
                self._check_store_when_opened(self._recorded_store())
        except BaseException:
            self._conn.close()
            raise

    @classmethod
    def from_target(cls, target: str, how: Opening) -> SqliteSink:
        """``-o sqlite:///PATH`` (one host: the local run lock is the only lock)."""
        return cls(sqlite_path(target), source=how.source, store=how.store)

    @staticmethod
    def check_store(target: str, store: StoreIdentity) -> None:
        """Refuse (exit 3) a file holding another store's orders, read-only, for
        ``verify``: it must neither create, migrate nor claim anything."""
        path = sqlite_path(target)
        if not path.exists():
            return
        with reading(path) as conn:
            refuse_other_store(
                store,
                recorded_store(conn, path),
                _refusal(path),
                lambda: _state_keys(conn, path),
            )

    # -- the sink interface ------------------------------------------------------

    def write(self, orders: list[dict[str, Any]]) -> None:
        self._begin()
        now = int(time.time())
        with self._failing("write to"):
            self._upsert_page(orders, now)

    def commit(self, store_key: str, checkpoint: StateRecord | None) -> None:
        self._begin()
        with self._failing("commit to"):
            if checkpoint is not None:
                self._save_checkpoint(store_key, checkpoint)
            self._conn.execute("COMMIT")
            self._in_transaction = False
        self._committed()

    def load_checkpoint(self, store_key: str) -> StateRecord | None:
        with self._failing("read"):
            value = self._read_checkpoint(store_key)
        return None if value is None else self._checked(value)

    def close(self) -> None:
        self._rollback()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    # -- the dialect -------------------------------------------------------------

    def _execute(self, query: str, params: Iterable[Any] = ()) -> sqlite3.Cursor:
        return self._conn.execute(query, tuple(params))

    def _abort(self) -> None:
        if self._in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            self._in_transaction = False

    def _recorded_store(self) -> str | None:
        return recorded_store(self._conn, self.path)

    def _refusal(self) -> Refusal:
        return _refusal(self.path)

    def _legacy_keys(self) -> list[str]:
        return _state_keys(self._conn, self.path)

    def _encode(self, record: StateRecord) -> str:
        # every commit: orjson (the dedupe window can be large)
        return jsonio.dumps(record).decode("utf-8")

    def _decode(self, value: Any) -> Any:
        return jsonio.loads(value.encode())

    # -- mechanics ---------------------------------------------------------------

    def _begin(self) -> None:
        """Open the page's transaction, and claim the file for the store in it."""
        if self._in_transaction:
            return
        try:
            # IMMEDIATE: take the write lock now (waiting up to the busy
            # timeout) rather than failing half-way through a page
            self._conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise OutputError(f"cannot write to {self.path}: {exc}") from None
        self._in_transaction = True
        # under the write lock: no other run can claim the file meanwhile
        with self._failing("write to"):
            self._ensure_store()

    def _upsert_page(self, orders: list[dict[str, Any]], now: int) -> None:
        """Newest version wins, order by order, as one lookup and a few executemany.

        The same decisions as one SELECT and one upsert per order, in the same
        sequence (an order twice in one page compares with its first copy).
        """
        stored = self._stored_versions([order_id(o) for o in orders])
        # only an order stored before this page can have item rows to replace
        had_items = set(stored)
        rows: list[tuple[Any, ...]] = []
        seen_again: list[tuple[int, int]] = []
        items: dict[int, list[tuple[Any, ...]]] = {}
        for order in orders:
            oid = order_id(order)
            updated = cursor_value(order, "dt_updated")
            if keeps_stored(stored.get(oid), updated):
                seen_again.append((now, oid))
                continue
            stored[oid] = updated
            order_json = jsonio.dumps(order).decode("utf-8")
            rows.append(order_row(order, oid, updated, order_json, now, self.source))
            items[oid] = order_item_rows(oid, order)  # the last version's items
        conn = self._conn
        if seen_again:
            conn.executemany(self.SQL.touch, seen_again)
        if rows:
            self._insert(INSERT_ORDERS, ON_ORDER_CONFLICT, rows)
            replaced = [(i,) for i in items if i in had_items]
            if replaced:
                conn.executemany(self.SQL.delete_items, replaced)
            self._insert(
                _INSERT_ITEMS,
                "",
                [row for per_order in items.values() for row in per_order],
            )

    def _insert(self, head: str, tail: str, rows: list[tuple[Any, ...]]) -> None:
        """Many rows per statement: SQLite then works through a whole batch with
        the GIL released once, instead of once per row (measured: the pull's
        thread otherwise keeps the writer waiting for the GIL after every row)."""
        if not rows:
            return
        width = len(rows[0])
        per = max(1, min(MAX_ROWS_PER_STATEMENT, self._max_variables // width))
        one = "(" + ", ".join("?" * width) + ")"
        for start in range(0, len(rows), per):
            batch = rows[start : start + per]
            self._conn.execute(
                head + ", ".join([one] * len(batch)) + tail,
                [value for row in batch for value in row],
            )

    def _stored_versions(self, ids: list[int]) -> dict[int, int | None]:
        """``dt_updated`` of the stored rows among these ids (None: row without one)."""
        found: dict[int, int | None] = {}
        unique = list(dict.fromkeys(ids))
        for start in range(0, len(unique), LOOKUP_BATCH):
            batch = unique[start : start + LOOKUP_BATCH]
            marks = ", ".join("?" * len(batch))
            found.update(
                self._conn.execute(
                    f"SELECT id, dt_updated FROM orders WHERE id IN ({marks})",  # noqa: S608 - only ? marks
                    batch,
                ).fetchall()
            )
        return found


def recorded_store(conn: sqlite3.Connection, path: Path) -> str | None:
    """The identity of the store whose orders the file holds, if recorded
    (None too for a file from before identities, which has no sync_store)."""
    try:
        if not conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sync_store'"
        ).fetchone():
            return None
        row = conn.execute(RECORDED_STORE).fetchone()
    except sqlite3.Error as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None
    return None if row is None else str(row[0])


def _state_keys(conn: sqlite3.Connection, path: Path) -> list[str]:
    """The state keys of the file's cursors: in a file from before identities,
    all that may tell whose orders it holds."""
    try:
        return [str(r[0]) for r in conn.execute("SELECT store_key FROM sync_state")]
    except sqlite3.Error as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None


def _refusal(path: Path) -> Refusal:
    return {
        "where": f"sqlite:///{path}",
        "fix": "Give each store its own file (-o sqlite:///OTHER.db)",
        "reset": f"sqlite3 {path} 'DELETE FROM sync_store'",  # noqa: S608 - a message
    }


@contextlib.contextmanager
def reading(path: Path) -> Iterator[sqlite3.Connection]:
    """A read-only connection (``verify``: it must never create, migrate or
    lock the writers out)."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise OutputError(f"cannot open {path}: {exc}") from None
    try:
        yield conn
    finally:
        conn.close()


def _connect(path: Path) -> sqlite3.Connection:
    try:
        if not path.exists():
            # customer data: readable by its owner only (the umask can only narrow it)
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        # check_same_thread off: the webhook receiver serialises its writes itself
        conn = sqlite3.connect(
            path,
            isolation_level=None,
            timeout=BUSY_TIMEOUT_MS / 1000,
            check_same_thread=False,
        )
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a committed page survives power loss, not just a process crash
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except FileExistsError:
        return _connect(path)
    except (OSError, sqlite3.Error) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise OutputError(f"cannot open {path}: {reason}") from None
    return conn


def migrate(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the file to :data:`SCHEMA_VERSION` in one transaction."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        apply_migrations(
            conn,
            MIGRATIONS,
            where=str(path),
            sql=SqliteSink.SQL,
            run=lambda script: _run_statements(conn, script),
        )
        conn.execute("COMMIT")
    except BaseException as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        if isinstance(exc, sqlite3.Error):
            raise OutputError(f"cannot prepare {path}: {exc}") from None
        raise


def _run_statements(conn: sqlite3.Connection, script: str) -> None:
    """A migration's statements one by one, in the open transaction
    (executescript would commit it first)."""
    for statement in (s.strip() for s in script.split(";")):
        if statement:
            conn.execute(statement)

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
from pathlib import Path
from typing import Any
from urllib.parse import quote

from miva_sync.base import jsonio
from miva_sync.errors import ConfigError, OutputError
from miva_sync.sinks.base import legacy_owner, other_store
from miva_sync.sinks.rows import (
    INTEGER_COLUMNS,
    QUERY_COLUMNS,
    REAL_COLUMNS,
    TEXT_COLUMNS,
    order_column_values,
    order_item_rows,
)
from miva_sync.state.file import validate_record
from miva_sync.store.orders import cursor_value, order_id
from miva_sync.store.urls import StoreIdentity

BUSY_TIMEOUT_MS = 30_000
# ids per "id IN (…)" lookup: far below SQLite's variable limit, old builds too
LOOKUP_BATCH = 500

# Every column an order row sets, in one fixed order. Rows go to SQLite many per
# statement: the statements are these heads, a "(?, …)" per row, and the tail.
_ROW_COLUMNS = (
    "id", "orderdate", "dt_updated", *QUERY_COLUMNS,
    "order_json", "first_seen", "last_seen", "source",
)  # fmt: skip
_UPSERT_HEAD = f"INSERT INTO orders ({', '.join(_ROW_COLUMNS)}) VALUES "  # noqa: S608 - names are ours
_UPSERT_TAIL = " ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in _ROW_COLUMNS if c not in ("id", "first_seen")
)
_INSERT_ITEM_HEAD = (
    "INSERT OR REPLACE INTO order_items "
    "(order_id, line_id, code, sku, name, quantity, price, total) VALUES "
)
MAX_ROWS_PER_STATEMENT = 100  # and never more ? marks than this SQLite allows

_V1 = f"""
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    orderdate INTEGER,
    dt_updated INTEGER,
    {", ".join(f"{c} INTEGER" for c in INTEGER_COLUMNS)},
    {", ".join(f"{c} REAL" for c in REAL_COLUMNS)},
    {", ".join(f"{c} TEXT" for c in TEXT_COLUMNS)},
    order_json TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    last_seen INTEGER NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX orders_orderdate ON orders (orderdate);
CREATE INDEX orders_dt_updated ON orders (dt_updated);
CREATE TABLE order_items (
    order_id INTEGER NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_id INTEGER NOT NULL,
    code TEXT,
    sku TEXT,
    name TEXT,
    quantity INTEGER,
    price REAL,
    total REAL,
    PRIMARY KEY (order_id, line_id)
);
CREATE INDEX order_items_sku ON order_items (sku);
CREATE TABLE sync_state (
    store_key TEXT PRIMARY KEY,
    record TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
"""

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


class SqliteSink:
    """Upsert orders into a SQLite file.

    With ``store`` (what the CLI always gives), the file holds that store's
    orders only: another store's is refused when opening (before any request
    to the store), and the identity is recorded in the transaction of the
    first write, so settings that fail before any order arrives (a mistyped
    URL) claim nothing.
    """

    def __init__(
        self, path: Path, *, source: str = "pull", store: StoreIdentity | None = None
    ) -> None:
        self.path = path
        self.description = f"sqlite:///{path}"
        self.keeps_checkpoint = True
        self.write_behind = True  # SQLite's work releases the GIL: overlap the fetch
        self.source = source
        self._conn = _connect(path)
        self._in_transaction = False
        self._max_variables = self._conn.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
        self.store = store
        # True once this file is known to hold ``store`` durably: it never
        # changes after that (short of someone emptying sync_store by hand)
        self._store_confirmed = False
        self._store_pending = False
        try:
            migrate(self._conn, path)
            if store is not None:
                recorded = recorded_store(self._conn, path)
                self._refuse_other(recorded)
                self._store_confirmed = recorded == store.value
        except BaseException:
            self._conn.close()
            raise

    # -- the sink interface ------------------------------------------------------

    def write(self, orders: list[dict[str, Any]]) -> None:
        self._begin()
        now = int(time.time())
        try:
            self._upsert_page(orders, now)
        except sqlite3.Error as exc:
            self._rollback()
            raise OutputError(f"cannot write to {self.path}: {exc}") from None

    def commit(self, store_key: str, checkpoint: dict[str, Any] | None) -> None:
        self._begin()
        try:
            if checkpoint is not None:
                self._conn.execute(
                    "INSERT INTO sync_state (store_key, record, updated_at) VALUES (?, ?, ?) "
                    "ON CONFLICT (store_key) DO UPDATE SET record = excluded.record, "
                    "updated_at = excluded.updated_at",
                    (
                        store_key,
                        # every commit: orjson (the dedupe window can be large)
                        jsonio.dumps(checkpoint).decode("utf-8"),
                        int(time.time()),
                    ),
                )
            self._conn.execute("COMMIT")
            self._in_transaction = False
            if self._store_pending:
                self._store_confirmed, self._store_pending = True, False
        except sqlite3.Error as exc:
            self._rollback()
            raise OutputError(f"cannot commit to {self.path}: {exc}") from None

    def load_checkpoint(self, store_key: str) -> dict[str, Any] | None:
        row = self._conn.execute(
            "SELECT record FROM sync_state WHERE store_key = ?", (store_key,)
        ).fetchone()
        if row is None:
            return None
        try:
            record = jsonio.loads(row[0].encode())
            validate_record(record, where="the database's cursor")
        except ValueError as exc:
            raise ConfigError(
                f"{self.path}: its saved cursor for this store is unreadable ({exc}); "
                "delete that row of sync_state to start again"
            ) from None
        return record  # type: ignore[no-any-return]

    def close(self) -> None:
        self._rollback()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    # -- mechanics ---------------------------------------------------------------

    def _begin(self) -> None:
        if not self._in_transaction:
            try:
                # IMMEDIATE: take the write lock now (waiting up to the busy
                # timeout) rather than failing half-way through a page
                self._conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise OutputError(f"cannot write to {self.path}: {exc}") from None
            self._in_transaction = True
            if self.store is not None and not self._store_confirmed:
                self._claim_store()

    def _claim_store(self) -> None:
        """Record this store in the open write transaction, or refuse.

        Checked again under the write lock: another store's run may have
        claimed an empty file since this one was opened.
        """
        assert self.store is not None  # noqa: S101 - the caller checks
        try:
            recorded = recorded_store(self._conn, self.path)
            self._refuse_other(recorded)
            if recorded != self.store.value:  # none yet, or an older name: adopt
                self._conn.execute(
                    "INSERT INTO sync_store (only_one, store_key, claimed_at) "
                    "VALUES (1, ?, ?) ON CONFLICT (only_one) DO UPDATE SET "
                    "store_key = excluded.store_key, claimed_at = excluded.claimed_at",
                    (self.store.value, int(time.time())),
                )
        except BaseException:
            self._rollback()
            raise
        # durable with this transaction's COMMIT, not before
        self._store_pending = True

    def _refuse_other(self, recorded: str | None) -> None:
        if self.store is not None:
            refuse_other_store(self._conn, self.path, recorded, self.store)

    def _rollback(self) -> None:
        if self._in_transaction:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            self._in_transaction = False
        self._store_pending = False

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
            known = stored.get(oid)
            if known is not None and updated is not None and updated <= known:
                # the same version again, or an older one (a late webhook, a
                # replayed page): keep what is stored, and who delivered it
                seen_again.append((now, oid))
                continue
            stored[oid] = updated
            rows.append((
                oid, cursor_value(order, "orderdate"), updated,
                *order_column_values(order),
                jsonio.dumps(order).decode("utf-8"), now, now, self.source,
            ))  # fmt: skip
            items[oid] = order_item_rows(oid, order)  # the last version's items
        conn = self._conn
        if seen_again:
            conn.executemany("UPDATE orders SET last_seen = ? WHERE id = ?", seen_again)
        if rows:
            self._insert(_UPSERT_HEAD, _UPSERT_TAIL, rows)
            replaced = [(i,) for i in items if i in had_items]
            if replaced:
                conn.executemany("DELETE FROM order_items WHERE order_id = ?", replaced)
            self._insert(
                _INSERT_ITEM_HEAD,
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
        row = conn.execute("SELECT store_key FROM sync_store").fetchone()
    except sqlite3.Error as exc:
        raise OutputError(f"cannot read {path}: {exc}") from None
    return None if row is None else str(row[0])


def refuse_other_store(
    conn: sqlite3.Connection, path: Path, recorded: str | None, store: StoreIdentity
) -> None:
    """Raise ConfigError (exit 3) if the file holds another store's orders."""
    if recorded is None:
        # a file from before identities: the keys of its cursors may still tell
        try:
            keys = [str(r[0]) for r in conn.execute("SELECT store_key FROM sync_state")]
        except sqlite3.Error as exc:
            raise OutputError(f"cannot read {path}: {exc}") from None
        recorded = legacy_owner(store, keys)
    if recorded is not None and not store.owns(recorded):
        raise other_store(
            f"sqlite:///{path}",
            recorded,
            store,
            "Give each store its own file (-o sqlite:///OTHER.db)",
            f"sqlite3 {path} 'DELETE FROM sync_store'",  # noqa: S608 - a message
        )


def check_store(path: Path, store: StoreIdentity) -> None:
    """Refuse (exit 3) a file holding another store's orders, read-only, for
    ``verify``: it must neither create, migrate nor claim anything."""
    try:
        conn = sqlite3.connect(f"file:{quote(str(path))}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise OutputError(f"cannot open {path}: {exc}") from None
    try:
        refuse_other_store(conn, path, recorded_store(conn, path), store)
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
    """Bring the file to :data:`SCHEMA_VERSION`, one transaction per step."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
        )
        row = conn.execute("SELECT max(version) FROM schema_version").fetchone()
        current = row[0] or 0
        if current > SCHEMA_VERSION:
            conn.execute("ROLLBACK")
            raise OutputError(
                f"{path} was written by a newer miva-sync (schema {current}, this "
                f"release knows {SCHEMA_VERSION}): upgrade miva-sync"
            )
        for version, script in MIGRATIONS:
            if version > current:
                for statement in _statements(script):
                    conn.execute(statement)
                conn.execute(
                    "INSERT INTO schema_version (version) VALUES (?)", (version,)
                )
        conn.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise OutputError(f"cannot prepare {path}: {exc}") from None


def _statements(script: str) -> list[str]:
    return [s.strip() for s in script.split(";") if s.strip()]

"""What the SQLite and PostgreSQL targets share; each keeps only its SQL dialect.

Both hold one row per order (newest version wins) with its ``order_items``,
their own copy of the cursor in ``sync_state`` (committed in the same
transaction as the rows of its page), the store whose orders they hold in
``sync_store`` and the migrations applied in ``schema_version``. The tables,
the statements on them, the identity checks and the migration bookkeeping are
written here once; :mod:`miva_sync.sinks.sqlite` and
:mod:`miva_sync.sinks.postgres` supply a connection, their column types,
their parameter mark and the transaction handling only they have.

A database holds one store's orders (issue 19): order numbers repeat across
stores, so one target for two stores would overwrite one store's orders with
the other's. The identity (urls.StoreIdentity) is checked when the target is
opened, before any request to the store, and recorded in the transaction of
the first write, so settings that fail before any order arrives (a mistyped
URL) claim nothing.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any, ClassVar, Protocol, TypedDict

from miva_sync.errors import ConfigError, OutputError
from miva_sync.sinks.rows import (
    INTEGER_COLUMNS,
    ITEM_COLUMNS,
    QUERY_COLUMNS,
    REAL_COLUMNS,
    TEXT_COLUMNS,
    order_column_values,
)
from miva_sync.state.file import validate_record
from miva_sync.state.record import StateRecord
from miva_sync.store.orders import cursor_value
from miva_sync.store.urls import StoreIdentity, describe_store, is_identity


class Refusal(TypedDict):
    """How :func:`refuse_other_store` names a database: the target itself
    (``where``), how to give each store its own (``fix``) and the statement
    that resets a store whose address changed (``reset``)."""

    where: str
    fix: str
    reset: str


class Cursor(Protocol):
    def fetchone(self) -> Any: ...


class Connection(Protocol):
    """What both drivers' connections offer (sqlite3 and psycopg)."""

    def execute(self, query: Any, params: Any = ..., /) -> Cursor: ...


# -- the tables ----------------------------------------------------------------


def order_tables(integer: str, real: str, json: str) -> str:
    """The first migration's tables in one dialect's types (released: never
    change its text; a new column needs a new migration)."""
    return f"""
CREATE TABLE orders (
    id {integer} PRIMARY KEY,
    orderdate {integer},
    dt_updated {integer},
    {", ".join(f"{c} {integer}" for c in INTEGER_COLUMNS)},
    {", ".join(f"{c} {real}" for c in REAL_COLUMNS)},
    {", ".join(f"{c} TEXT" for c in TEXT_COLUMNS)},
    order_json {json} NOT NULL,
    first_seen {integer} NOT NULL,
    last_seen {integer} NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX orders_orderdate ON orders (orderdate);
CREATE INDEX orders_dt_updated ON orders (dt_updated);
CREATE TABLE order_items (
    order_id {integer} NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_id {integer} NOT NULL,
    code TEXT,
    sku TEXT,
    name TEXT,
    quantity {integer},
    price {real},
    total {real},
    PRIMARY KEY (order_id, line_id)
);
CREATE INDEX order_items_sku ON order_items (sku);
CREATE TABLE sync_state (
    store_key TEXT PRIMARY KEY,
    record {json} NOT NULL,
    updated_at {integer} NOT NULL
);
"""


# Every column an order row sets, in the order :func:`order_row` gives them.
ORDER_ROW = (
    "id", "orderdate", "dt_updated", *QUERY_COLUMNS,
    "order_json", "first_seen", "last_seen", "source",
)  # fmt: skip
ITEM_ROW = ("order_id", "line_id", *ITEM_COLUMNS)
# An upsert of order rows is INSERT_ORDERS, the rows' value lists, then
# ON_ORDER_CONFLICT: a stored order takes every column but its first sighting.
INSERT_ORDERS = f"INSERT INTO orders ({', '.join(ORDER_ROW)}) VALUES "  # noqa: S608 - names are ours
ON_ORDER_CONFLICT = " ON CONFLICT (id) DO UPDATE SET " + ", ".join(
    f"{c} = excluded.{c}" for c in ORDER_ROW if c not in ("id", "first_seen")
)
INSERT_ITEMS = f"INSERT INTO order_items ({', '.join(ITEM_ROW)}) VALUES "  # noqa: S608 - names are ours


def order_row(
    order: dict[str, Any],
    oid: int,
    updated: int | None,
    order_json: Any,
    now: int,
    source: str,
) -> tuple[Any, ...]:
    """An order's row, in :data:`ORDER_ROW` order (first and last seen now)."""
    return (
        oid, cursor_value(order, "orderdate"), updated, *order_column_values(order),
        order_json, now, now, source,
    )  # fmt: skip


# What verify reads back of each order.
STORED_VERSIONS = "SELECT id, orderdate, dt_updated FROM orders"
# The identity of the store whose orders the database holds (none: no row).
RECORDED_STORE = "SELECT store_key FROM sync_store"


class Statements:
    """The statements both dialects run, with one dialect's parameter mark
    (sqlite3's ``?``, psycopg's ``%s``)."""

    def __init__(self, mark: str) -> None:
        def sql(text: str) -> str:
            return text.replace("?", mark)

        # (store_key, record, updated_at): this target's copy of the cursor
        self.save_checkpoint = sql(
            "INSERT INTO sync_state (store_key, record, updated_at) VALUES (?, ?, ?) "
            "ON CONFLICT (store_key) DO UPDATE SET "
            "record = excluded.record, updated_at = excluded.updated_at"
        )
        self.read_checkpoint = sql("SELECT record FROM sync_state WHERE store_key = ?")
        # (only_one, store_key, claimed_at): the store the database holds
        self.claim_store = sql(
            "INSERT INTO sync_store (only_one, store_key, claimed_at) VALUES (?, ?, ?) "
            "ON CONFLICT (only_one) DO UPDATE SET "
            "store_key = excluded.store_key, claimed_at = excluded.claimed_at"
        )
        # (now, id): an order seen again, in no newer version
        self.touch = sql("UPDATE orders SET last_seen = ? WHERE id = ?")
        # (id,): an order's items, before its new version's go in
        self.delete_items = sql("DELETE FROM order_items WHERE order_id = ?")
        self.record_version = sql("INSERT INTO schema_version (version) VALUES (?)")


# -- newest wins ---------------------------------------------------------------
#
# An order delivered again in an older version (a late webhook, a replayed
# page) never replaces the stored one; only its last_seen moves. A version
# without dt_updated, or a stored row without one, cannot be compared and is
# replaced. The same version again keeps the stored row (and who delivered
# it) in both dialects: only its last_seen moves.


def keeps_stored(stored: int | None, new: int | None) -> bool:
    """Does the stored version (``dt_updated``) stay, ``new`` coming in?
    SQLite decides a page's rows with this, in one lookup for the page."""
    return stored is not None and new is not None and new <= stored


# The same rule as keeps_stored, negated, in SQL: PostgreSQL decides in the
# upsert itself, under the row lock, so that two writers racing for one order
# leave the newer version whatever the timing.
REPLACES_STORED = (
    "orders.dt_updated IS NULL OR excluded.dt_updated IS NULL"
    " OR excluded.dt_updated > orders.dt_updated"
)


# -- the store a database holds -----------------------------------------------


def legacy_owner(store: StoreIdentity, state_keys: Iterable[str]) -> str | None:
    """Another store that a database written before identities holds, if it shows.

    Such a database recorded no identity, only cursors under state keys
    (``sync_state``). A key that is this store's, or a profile's name (which
    cannot be told apart from this store), lets it be adopted; a key naming
    another store by URL and code means the database is that store's.
    """
    keys = list(state_keys)
    if any(store.owns(key) for key in keys):
        return None
    return next((key for key in keys if is_identity(key)), None)


def refuse_other_store(
    store: StoreIdentity,
    recorded: str | None,
    refusal: Refusal,
    legacy_keys: Callable[[], Iterable[str]] | None = None,
) -> None:
    """Raise ConfigError (exit 3) if the database holds another store's orders.

    ``recorded`` is its ``sync_store`` row; without one, ``legacy_keys`` (the
    state keys of its cursors, read only then) may still tell. Identities are URLs without user info or query plus a store code, so
    nothing secret is named.
    """
    if recorded is None and legacy_keys is not None:
        recorded = legacy_owner(store, legacy_keys())
    if recorded is not None and not store.owns(recorded):
        raise ConfigError(
            f"{refusal['where']} holds the orders of {describe_store(recorded)}, not "
            f"of {store.describe()}: order numbers repeat across stores, so one "
            "target for both would overwrite one store's orders with the other's. "
            f"{refusal['fix']}. If it really is the same store (its address "
            f"changed), run {refusal['reset']!r} once"
        )


# -- migrations ----------------------------------------------------------------


def apply_migrations(
    conn: Connection,
    migrations: Sequence[tuple[int, str]],
    *,
    where: str,
    sql: Statements,
    run: Callable[[str], object],
) -> None:
    """Bring the database to the last of ``migrations`` inside the caller's
    transaction: each step's script (``run``) and its ``schema_version`` row.

    A database a newer release migrated further is refused (exit 8): this one
    would not know its tables.
    """
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
    found = conn.execute("SELECT max(version) FROM schema_version").fetchone()
    current = (found[0] if found else None) or 0
    known = migrations[-1][0]
    if current > known:
        raise OutputError(
            f"{where} was written by a newer miva-sync (schema {current}, this "
            f"release knows {known}): upgrade miva-sync"
        )
    for version, script in migrations:
        if version > current:
            run(script)
            conn.execute(sql.record_version, (version,))


# -- the sink --------------------------------------------------------------------


class DatabaseSink:
    """Upsert orders into a database, one transaction per page.

    A dialect sets :attr:`SQL`, :attr:`ONE`, ``description``, ``where`` and
    ``_errors``, and implements the transaction flow (``write``, ``commit``,
    ``load_checkpoint``, ``close``) from the helpers below.
    """

    keeps_checkpoint = True
    # the pull writes from a thread of its own: the database's work (SQLite
    # releases the GIL, PostgreSQL waits on the network) overlaps the next fetch
    write_behind = True
    SQL: ClassVar[Statements]
    ONE: ClassVar[object]  # the key of sync_store's only row: 1 or True

    description: str
    where: str  # the target as its messages name it
    _errors: type[Exception]  # the driver's errors

    def __init__(self, *, source: str, store: StoreIdentity | None) -> None:
        self.source = source
        # With a store (the CLI always gives one) the database holds its
        # orders only: refused when opening, recorded with the first write.
        self.store = store
        self._store_confirmed = False  # durably this store's: never changes
        self._store_pending = False  # recorded in the open transaction

    # -- the dialect's part ----------------------------------------------------

    @staticmethod
    def check_store(target: str, store: StoreIdentity) -> None:
        """Refuse (exit 3) a target holding another store's orders, read-only,
        for ``verify``: it must neither create, migrate nor claim anything."""
        raise NotImplementedError

    def _execute(self, query: str, params: Sequence[Any] = ()) -> Cursor:
        raise NotImplementedError

    def _abort(self) -> None:
        """Roll back the open transaction, if any; never raise."""
        raise NotImplementedError

    def _why(self, exc: Exception) -> str:
        """The driver's error for a message."""
        return str(exc)

    def _refusal(self) -> Refusal:
        """How a refusal names this database."""
        raise NotImplementedError

    def _legacy_keys(self) -> Iterable[str]:
        """The state keys of the cursors, where a database may predate identities."""
        return ()

    def _before_claim(self) -> None:
        """Anything that must come before reading the recorded store in a claim."""

    def _state_table(self) -> str:
        """sync_state as a statement deleting its row must name it."""
        return "sync_state"

    def _encode(self, record: StateRecord) -> Any:
        """A cursor record as its column takes it."""
        raise NotImplementedError

    def _decode(self, value: Any) -> Any:
        """A cursor record as its column returns it; ValueError if unreadable."""
        return value

    # -- shared ------------------------------------------------------------------

    @contextlib.contextmanager
    def _failing(self, doing: str) -> Iterator[None]:
        """Roll back on any failure; the driver's errors become OutputError
        (``cannot write to …``, exit 8)."""
        try:
            yield
        except self._errors as exc:
            self._rollback()
            raise OutputError(
                f"cannot {doing} {self.where}: {self._why(exc)}"
            ) from None
        except BaseException:
            self._rollback()
            raise

    def _rollback(self) -> None:
        self._store_pending = False
        self._abort()

    def _committed(self) -> None:
        if self._store_pending:
            self._store_confirmed, self._store_pending = True, False

    def _recorded_store(self) -> str | None:
        row = self._execute(RECORDED_STORE).fetchone()
        return None if row is None else str(row[0])

    def _refuse_other(self, recorded: str | None) -> None:
        if self.store is not None:
            refuse_other_store(self.store, recorded, self._refusal(), self._legacy_keys)

    def _check_store_when_opened(self, recorded: str | None) -> None:
        """Refuse another store's database before any request to the store."""
        if self.store is not None:
            self._refuse_other(recorded)
            self._store_confirmed = recorded == self.store.value

    def _ensure_store(self) -> None:
        """Record this store in the open write transaction, or refuse (exit 3).

        Checked again inside the write: another store's run may have claimed
        an empty database since this one was opened. One that holds this
        store under an older name (a state key, before identities) is adopted.
        Durable with the transaction's commit, not before.
        """
        if self.store is None or self._store_confirmed or self._store_pending:
            return
        self._before_claim()
        recorded = self._recorded_store()
        self._refuse_other(recorded)
        if recorded != self.store.value:  # none yet, or an older name: adopt
            self._execute(
                self.SQL.claim_store, (self.ONE, self.store.value, int(time.time()))
            )
        self._store_pending = True

    def _save_checkpoint(self, store_key: str, checkpoint: StateRecord) -> None:
        """This target's copy of the cursor, in the transaction of its page."""
        self._execute(
            self.SQL.save_checkpoint,
            (store_key, self._encode(checkpoint), int(time.time())),
        )

    def _read_checkpoint(self, store_key: str) -> Any:
        """The stored cursor record of ``store_key`` as its column holds it, or None."""
        row = self._execute(self.SQL.read_checkpoint, (store_key,)).fetchone()
        return None if row is None else row[0]

    def _checked(self, value: Any) -> StateRecord:
        """A stored cursor record, or ConfigError (exit 3) saying how to drop it."""
        try:
            return validate_record(self._decode(value), where="the database's cursor")
        except ValueError as exc:
            raise ConfigError(
                f"{self.where}: its saved cursor for this store is unreadable ({exc}); "
                f"delete that row of {self._state_table()} to start again"
            ) from None

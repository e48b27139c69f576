"""PostgreSQL output (psycopg 3, the ``postgres`` extra): the SQLite schema for many hosts.

One row per order, newest version wins, ``order_items`` in step, and this
target's copy of the cursor and dedupe window committed in the same
transaction as the rows of its page, exactly like the SQLite target.

What PostgreSQL adds is many writers on many hosts:

* **One store per schema.** ``?schema=NAME`` in the URL (created on first
  use) keeps each store's tables apart, so dozens of stores can share one
  database. A schema remembers the store whose orders it holds
  (``sync_store``: its normalised URL and store code, urls.StoreIdentity) and
  refuses another (exit 3), receivers and re-pulls too: two stores in one
  ``orders`` table would overwrite each other's orders, since order numbers
  repeat across stores. Schemas claimed by a run's state key (releases before
  identities) are adopted by that store.
* **Advisory locks per store.** A run that keeps a cursor (it reads it with
  :meth:`PostgresSink.load_checkpoint`, or commits one) holds a session-level
  advisory lock for its store and schema, in addition to the local run lock,
  so a second host syncing the same store exits 7 (or waits, with
  ``--wait``). PostgreSQL drops the lock when the connection dies, so a
  killed worker never blocks the next one. Writers without a cursor (a
  webhook receiver, a bounded re-pull) take no store lock: rows are upserted
  under row locks with newest-wins in the statement itself.
* **Concurrent first use.** Migrations run under a transaction-level
  advisory lock, so workers starting at once on an empty database do not race
  to create the same tables.
* **Long-running receivers.** A sink without a store lock opens a new session
  when the server dropped the old one (a restart), at the next write.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from miva_sync.base import jsonio
from miva_sync.base.timespec import human_span
from miva_sync.errors import ConfigError, LockedError, OutputError, UsageError
from miva_sync.sinks.base import Opening
from miva_sync.sinks.database import (
    INSERT_ITEMS,
    INSERT_ORDERS,
    ITEM_ROW,
    ON_ORDER_CONFLICT,
    ORDER_ROW,
    RECORDED_STORE,
    REPLACES_STORED,
    DatabaseSink,
    Refusal,
    Statements,
    apply_migrations,
    order_row,
    order_tables,
    refuse_other_store,
)
from miva_sync.sinks.rows import ITEM_COLUMNS, REAL_COLUMNS, order_item_rows, storable
from miva_sync.state.file import LOCK_POLL
from miva_sync.state.record import StateRecord
from miva_sync.store.orders import cursor_value, order_id
from miva_sync.store.urls import (
    StoreIdentity,
    one_line_without,
    redact_url,
    url_passwords,
)

if TYPE_CHECKING:
    import psycopg

CONNECT_TIMEOUT = 10  # seconds; a cron run should fail fast when the database is down
# The server probes a silent client this often, so the store lock of a worker
# whose host died (no FIN ever comes) is freed in about a minute, not hours.
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}
# Advisory-lock namespaces: the first 8 bytes of sha256(namespace, ...), as a bigint.
_MIGRATION_NAMESPACE = "miva-sync:migrate"
_STORE_NAMESPACE = "miva-sync:store"

_V1 = (
    order_tables(integer="BIGINT", real="NUMERIC", json="JSONB")
    + """CREATE TABLE sync_store (
    only_one BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (only_one),
    store_key TEXT NOT NULL,
    claimed_at BIGINT NOT NULL
);
CREATE VIEW orders_iso AS
SELECT id,
       to_timestamp(orderdate) AT TIME ZONE 'UTC' AS orderdate_utc,
       to_timestamp(dt_updated) AT TIME ZONE 'UTC' AS updated_utc,
       status, pay_status, total, bill_fname, bill_lname, bill_email,
       ship_city, ship_state, ship_cntry, source,
       to_timestamp(first_seen) AT TIME ZONE 'UTC' AS first_seen_utc,
       to_timestamp(last_seen) AT TIME ZONE 'UTC' AS last_seen_utc
FROM orders;
"""
)

# (version, script). Append only: a released migration never changes.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _V1),)
SCHEMA_VERSION = MIGRATIONS[-1][0]

# One order per statement, newest wins inside it, under the row lock: a
# version older than the stored one updates nothing and returns no row.
_UPSERT = (
    f"{INSERT_ORDERS}({', '.join(['%s'] * len(ORDER_ROW))}){ON_ORDER_CONFLICT}"
    f" WHERE {REPLACES_STORED} RETURNING id"
)
# A schema nobody claimed yet is claimed; one claimed stays as it is. Concurrent
# first writers: the second waits on the first's row, then does nothing.
_CLAIM_IF_FREE = (
    "INSERT INTO sync_store (store_key, claimed_at) VALUES (%s, %s) "
    "ON CONFLICT (only_one) DO NOTHING"
)
# where the amounts stand in a row: they go in as exact NUMERIC
_AMOUNTS = frozenset(ORDER_ROW.index(c) for c in REAL_COLUMNS)
_INSERT_ITEM = (
    f"{INSERT_ITEMS}({', '.join(['%s'] * len(ITEM_ROW))}) "
    "ON CONFLICT (order_id, line_id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in ITEM_COLUMNS)
)


def split_target(target: str) -> tuple[str, str | None]:
    """The libpq URL without miva-sync's own ``schema`` parameter, and that schema."""
    parts = urlsplit(target)
    params = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for name, value in params if name == "schema"]
    if len(schemas) > 1 or (schemas and not schemas[0]):
        raise UsageError("give one non-empty schema in a PostgreSQL URL: ?schema=NAME")
    rest = urlencode([(n, v) for n, v in params if n != "schema"], quote_via=quote)
    return urlunsplit(parts._replace(query=rest)), (schemas[0] if schemas else None)


def lock_key(namespace: str, *parts: str) -> int:
    """A stable signed 64-bit advisory-lock key (the same on every host and release)."""
    digest = hashlib.sha256("\0".join((namespace, *parts)).encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class PostgresSink(DatabaseSink):
    """Upsert orders into PostgreSQL (the rules: miva_sync/sinks/database.py)."""

    SQL = Statements("%s")
    ONE = True
    schema: str  # where the tables live, as each new session resolved it

    def __init__(
        self,
        target: str,
        *,
        source: str = "pull",
        wait: bool | float = False,
        store: StoreIdentity | None = None,
    ) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "PostgreSQL output needs psycopg: pip install 'miva-sync[postgres]'"
            ) from None
        super().__init__(source=source, store=store)
        self._psycopg = psycopg
        self._errors = psycopg.Error
        self.wait = wait
        self.description = self.where = redact_url(target)
        self._secrets = url_passwords(target)
        dsn, self.schema_name = split_target(target)
        self._claimed: set[str] = set()
        try:
            defaults = _connect_defaults(dsn)
        except psycopg.Error:
            # not echoed: a malformed URL may still hold a password
            raise UsageError(
                f"not a valid PostgreSQL URL: {self.description}; expected "
                "postgresql://USER@HOST[:PORT]/DATABASE[?schema=NAME]"
            ) from None
        self._dsn, self._defaults = dsn, defaults
        self._conn = self._connect()
        if store is not None:
            try:
                with self._failing("read"):
                    recorded = self._recorded_store()
                    self._conn.commit()  # end the read: no idle transaction
                self._check_store_when_opened(recorded)
            except BaseException:
                self._conn.close()
                raise

    @classmethod
    def from_target(cls, target: str, how: Opening) -> PostgresSink:
        """``-o postgresql://…``; ``wait``: for another host's run of the store."""
        return cls(target, source=how.source, wait=how.wait, store=how.store)

    @staticmethod
    def check_store(target: str, store: StoreIdentity) -> None:
        """Refuse (exit 3) a schema holding another store's orders, read-only, for
        ``verify``: it must neither create, migrate nor claim anything."""
        with reading(target) as conn:
            row = conn.execute(
                "SELECT current_schema(), to_regclass('sync_store') IS NOT NULL"
            ).fetchone()
            if not row or not row[1]:
                return  # nothing written there yet: verify says so itself
            owner = conn.execute(RECORDED_STORE).fetchone()
        recorded = None if owner is None else str(owner[0])
        refuse_other_store(store, recorded, _refusal(row[0], redact_url(target)))

    # -- the sink interface ------------------------------------------------------

    def write(self, orders: list[dict[str, Any]]) -> None:
        self._reconnect_if_broken()
        now = int(time.time())
        # ascending ids: every writer locks rows in the same order, so two
        # transactions (a receiver, a backfill, a pull) can never deadlock
        ordered = sorted(orders, key=order_id)
        with self._failing("write to"):
            self._ensure_store()
            with self._conn.cursor() as cur:
                for order in ordered:
                    self._upsert(cur, order, now)

    def commit(self, store_key: str, checkpoint: StateRecord | None) -> None:
        with self._failing("commit to"):
            if checkpoint is not None:
                # only the run holding the store's lock may move its cursor
                self._claim(store_key)
                self._ensure_store()
                self._save_checkpoint(store_key, checkpoint)
            self._conn.commit()
        self._committed()

    def load_checkpoint(self, store_key: str) -> StateRecord | None:
        with self._failing("read"):
            self._claim(store_key)
            value = self._read_checkpoint(store_key)
            self._conn.commit()  # end the read: no idle transaction while paging
        return None if value is None else self._checked(value)

    def close(self) -> None:
        self._rollback()
        with contextlib.suppress(self._psycopg.Error):
            if self._claimed:
                # closing the session would release them too, but only once the
                # server notices; unlocking first frees the store at once
                self._conn.execute("SELECT pg_advisory_unlock_all()")
                self._conn.rollback()
            self._conn.close()

    # -- the dialect -------------------------------------------------------------

    def _execute(self, query: str, params: Sequence[Any] = ()) -> psycopg.Cursor[Any]:
        return self._conn.execute(query, params)

    def _abort(self) -> None:
        with contextlib.suppress(self._psycopg.Error):
            self._conn.rollback()

    def _why(self, exc: Exception) -> str:
        """psycopg's message on one line, never with the password in it."""
        return one_line_without(exc, self._secrets)

    def _refusal(self) -> Refusal:
        return _refusal(self.schema, self.description)

    def _before_claim(self) -> None:
        # concurrent first writers: the second waits on the first's row, then
        # does nothing and reads the committed claim
        assert self.store is not None  # noqa: S101 - only claims call it
        self._conn.execute(_CLAIM_IF_FREE, (self.store.value, int(time.time())))

    def _state_table(self) -> str:
        return f"{self.schema}.sync_state"

    def _encode(self, record: StateRecord) -> Any:
        from psycopg.types.json import Jsonb

        return Jsonb(record)

    # -- mechanics ---------------------------------------------------------------

    def _connect(self) -> psycopg.Connection[Any]:
        """A new session, with the schema migrated and selected."""
        try:
            conn = self._psycopg.connect(self._dsn, **self._defaults)
        except self._psycopg.Error as exc:
            raise OutputError(
                f"cannot connect to {self.description}: {self._why(exc)}"
            ) from None
        try:
            self.schema = self._migrate(conn)
        except BaseException:
            conn.close()
            raise
        return conn

    def _reconnect_if_broken(self) -> None:
        """A long-running receiver outlives a database restart: open a new session.

        Only between transactions, and never for a run holding a store lock:
        the lock died with the old session, so that run must end (exit 8) and
        the next one start over.
        """
        if self._conn.broken and not self._claimed:
            with contextlib.suppress(self._psycopg.Error):
                self._conn.close()
            self._conn = self._connect()

    def _upsert(
        self, cur: psycopg.Cursor[Any], order: dict[str, Any], now: int
    ) -> None:
        from psycopg.types.json import Jsonb

        oid = order_id(order)
        row = order_row(
            order,
            oid,
            cursor_value(order, "dt_updated"),
            Jsonb(order, dumps=_dumps_jsonb),
            now,
            self.source,
        )
        cur.execute(
            _UPSERT,
            [
                _decimal(value) if i in _AMOUNTS else _without_nul(value)
                for i, value in enumerate(row)
            ],
        )
        if cur.fetchone() is None:
            # an older version than the stored one: note that we saw it, no more
            cur.execute(self.SQL.touch, (now, oid))
            return
        cur.execute(self.SQL.delete_items, (oid,))
        items = [
            (
                oid,
                line_id,
                *map(_without_nul, texts),
                quantity,
                _decimal(p),
                _decimal(t),
            )
            for _, line_id, *texts, quantity, p, t in order_item_rows(oid, order)
        ]
        if items:
            cur.executemany(_INSERT_ITEM, items)

    def _try_lock(self, key: int, *, within: float) -> bool:
        """The advisory lock if it is free, tried again for ``within`` seconds
        (``--wait 10m``)."""
        deadline = time.monotonic() + within
        while True:
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (key,)
            ).fetchone()
            left = deadline - time.monotonic()
            if (row and row[0]) or left <= 0:
                return bool(row and row[0])
            time.sleep(min(LOCK_POLL, left))

    def _claim(self, store_key: str) -> None:
        """Hold the store's advisory lock, and make sure this schema is its own."""
        if store_key in self._claimed:
            return
        # by identity: runs of one store under a profile and under environment
        # settings (two state keys) still exclude each other
        named = self.store.value if self.store is not None else store_key
        key = lock_key(_STORE_NAMESPACE, self.schema, named)
        if self.wait is True:
            self._conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        elif not self._try_lock(key, within=float(self.wait)):
            self._rollback()
            waited = f" after waiting {human_span(self.wait)}" if self.wait else ""
            raise LockedError(
                "another miva-sync run for this store, on this or another host, "
                f"holds its lock in {self.description} (schema {self.schema})"
                f"{waited}; use --wait to wait for it"
            )
        if self.store is not None:
            # the identity is checked when opening and recorded by the first
            # write (_ensure_store); the lock is the session's all the same
            self._claimed.add(store_key)
            return
        # a sink opened without an identity (library use): the schema is
        # claimed by the state key, as before identities
        self._conn.execute(_CLAIM_IF_FREE, (store_key, int(time.time())))
        owner = self._conn.execute("SELECT store_key FROM sync_store").fetchone()
        if owner and owner[0] != store_key:
            self._rollback()
            hint = f"DELETE FROM {self.schema}.sync_store"  # noqa: S608 - a message
            raise ConfigError(
                f"schema {self.schema} of {self.description} holds the orders of "
                f"store {owner[0]!r}, not {store_key!r}: order numbers repeat across "
                "stores, so give each store its own schema (?schema=NAME in the URL). "
                f"If it is the same store under a new name, run '{hint}' once"
            )
        # the lock is the session's: it outlives this transaction, so it stays
        # taken even if the page that took it rolls back
        self._claimed.add(store_key)

    def _migrate(self, conn: psycopg.Connection[Any]) -> str:
        """Bring the schema to :data:`SCHEMA_VERSION`; return the schema's name."""
        from psycopg import sql

        try:
            # serialise first use: workers starting at once must not race to
            # create the same schema and tables
            conn.execute(
                "SELECT pg_advisory_xact_lock(%s)", (lock_key(_MIGRATION_NAMESPACE),)
            )
            for setting, value in SERVER_KEEPALIVES.items():
                conn.execute("SELECT set_config(%s, %s, false)", (setting, value))
            if self.schema_name is not None:
                schema_id = sql.Identifier(self.schema_name)
                conn.execute(
                    sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema_id)
                )
                use_schema(conn, self.schema_name)  # committed with the migration
            row = conn.execute("SELECT current_schema()").fetchone()
            schema = row[0] if row else None
            if schema is None:
                raise OutputError(
                    f"{self.description}: no schema to write to (empty search_path); "
                    "add ?schema=NAME to the URL"
                )
            apply_migrations(
                conn,
                MIGRATIONS,
                where=f"schema {schema} of {self.description}",
                sql=self.SQL,
                run=conn.execute,  # several statements: no parameters allowed
            )
            conn.commit()
        except self._psycopg.Error as exc:
            # the caller closes this session: nothing to roll back
            raise OutputError(
                f"cannot prepare {self.description}: {self._why(exc)}"
            ) from None
        return str(schema)


@contextlib.contextmanager
def reading(target: str) -> Iterator[psycopg.Connection[Any]]:
    """A read-only connection to a PostgreSQL target, on its schema (``verify``
    reads it; nothing is created, migrated or claimed). psycopg's errors come
    out as one line without the password (exit 8)."""
    try:
        import psycopg
    except ImportError:
        raise ConfigError(
            "PostgreSQL targets need psycopg: pip install 'miva-sync[postgres]'"
        ) from None
    description = redact_url(target)
    dsn, schema = split_target(target)
    try:
        defaults = _connect_defaults(dsn)
    except psycopg.Error:
        raise UsageError(f"not a valid PostgreSQL URL: {description}") from None
    try:
        with psycopg.connect(dsn, autocommit=True, **defaults) as conn:
            if schema is not None:
                use_schema(conn, schema)
            yield conn
    except psycopg.Error as exc:
        reason = one_line_without(exc, url_passwords(target))
        raise OutputError(f"cannot read {description}: {reason}") from None


def _refusal(schema: str, description: str) -> Refusal:
    return {
        "where": f"schema {schema} of {description}",
        "fix": "Give each store its own schema (?schema=NAME in the URL) or database",
        "reset": f"DELETE FROM {schema}.sync_store",  # noqa: S608 - a message
    }


def use_schema(conn: psycopg.Connection[Any], schema: str) -> None:
    """Point the session's search_path at ``schema`` (a session setting)."""
    from psycopg import sql

    conn.execute(
        "SELECT set_config('search_path', %s, false)",
        (sql.Identifier(schema).as_string(conn),),
    )


def _connect_defaults(dsn: str) -> dict[str, Any]:
    """Settings a cron job wants unless the URL says otherwise."""
    from psycopg.conninfo import conninfo_to_dict

    given = conninfo_to_dict(dsn)
    defaults: dict[str, Any] = {}
    if "connect_timeout" not in given:
        defaults["connect_timeout"] = CONNECT_TIMEOUT
    if "application_name" not in given:
        defaults["application_name"] = "miva-sync"
    return defaults


# a lone surrogate, as jsonio writes it back: "\ud800" .. "\udfff"
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _dumps_jsonb(value: Any) -> bytes:
    # bytes: psycopg would encode a str straight back to them
    data = jsonio.dumps(value)
    if b"\\u0000" in data or _SURROGATE_ESCAPE.search(data):
        # rare: only then pay for a cleaned copy
        data = jsonio.dumps(_without_nul(value))
    return data


def _decimal(value: Any) -> Decimal | None:
    # repr: the shortest text that reads back as the same float, so 19.99 is
    # stored as 19.99, not as the binary float's 19.989999999999998...
    return None if value is None else Decimal(repr(value))


def _without_nul(value: Any) -> Any:
    """PostgreSQL text and JSONB cannot hold U+0000 or a lone surrogate: store
    U+FFFD in their place.

    Left in, one such character would fail every later run at the same order.
    """
    if isinstance(value, str):
        value = storable(value)
        return value.replace("\0", "\ufffd") if "\0" in value else value
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value

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
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from miva_sync.base import jsonio
from miva_sync.errors import ConfigError, LockedError, OutputError, UsageError
from miva_sync.sinks.base import other_store
from miva_sync.sinks.rows import (
    INTEGER_COLUMNS,
    ITEM_COLUMNS,
    REAL_COLUMNS,
    TEXT_COLUMNS,
    order_columns,
    order_item_rows,
    storable,
)
from miva_sync.state.file import validate_record
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
_ONE_SCHEMA_PER_STORE = (
    "Give each store its own schema (?schema=NAME in the URL) or database"
)

_V1 = f"""
CREATE TABLE orders (
    id BIGINT PRIMARY KEY,
    orderdate BIGINT,
    dt_updated BIGINT,
    {", ".join(f"{c} BIGINT" for c in INTEGER_COLUMNS)},
    {", ".join(f"{c} NUMERIC" for c in REAL_COLUMNS)},
    {", ".join(f"{c} TEXT" for c in TEXT_COLUMNS)},
    order_json JSONB NOT NULL,
    first_seen BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    source TEXT NOT NULL
);
CREATE INDEX orders_orderdate ON orders (orderdate);
CREATE INDEX orders_dt_updated ON orders (dt_updated);
CREATE TABLE order_items (
    order_id BIGINT NOT NULL REFERENCES orders (id) ON DELETE CASCADE,
    line_id BIGINT NOT NULL,
    code TEXT,
    sku TEXT,
    name TEXT,
    quantity BIGINT,
    price NUMERIC,
    total NUMERIC,
    PRIMARY KEY (order_id, line_id)
);
CREATE INDEX order_items_sku ON order_items (sku);
CREATE TABLE sync_state (
    store_key TEXT PRIMARY KEY,
    record JSONB NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE TABLE sync_store (
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
"""  # noqa: S608 - the column names are ours

# (version, script). Append only: a released migration never changes.
MIGRATIONS: tuple[tuple[int, str], ...] = ((1, _V1),)
SCHEMA_VERSION = MIGRATIONS[-1][0]

_ORDER_COLUMNS = (
    "id",
    "orderdate",
    "dt_updated",
    *INTEGER_COLUMNS,
    *REAL_COLUMNS,
    *TEXT_COLUMNS,
    "order_json",
    "first_seen",
    "last_seen",
    "source",
)
# newest wins inside the statement, under the row lock: an older version (a
# late webhook, a replayed page) updates nothing and returns no row
_UPSERT = (
    f"INSERT INTO orders ({', '.join(_ORDER_COLUMNS)}) "  # noqa: S608 - names are ours
    f"VALUES ({', '.join(['%s'] * len(_ORDER_COLUMNS))}) "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(
        f"{c} = EXCLUDED.{c}" for c in _ORDER_COLUMNS if c not in ("id", "first_seen")
    )
    + " WHERE orders.dt_updated IS NULL OR EXCLUDED.dt_updated IS NULL"
    " OR EXCLUDED.dt_updated >= orders.dt_updated RETURNING id"
)
_ITEM_NAMES = ("order_id", "line_id", *ITEM_COLUMNS)
_INSERT_ITEM = (
    f"INSERT INTO order_items ({', '.join(_ITEM_NAMES)}) "  # noqa: S608 - names are ours
    f"VALUES ({', '.join(['%s'] * len(_ITEM_NAMES))}) "
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


class PostgresSink:
    """Upsert orders into PostgreSQL; one transaction per page."""

    schema: str  # where the tables live, as each new session resolved it

    def __init__(
        self,
        target: str,
        *,
        source: str = "pull",
        wait: bool = False,
        store: StoreIdentity | None = None,
    ) -> None:
        try:
            import psycopg
        except ImportError:
            raise ConfigError(
                "PostgreSQL output needs psycopg: pip install 'miva-sync[postgres]'"
            ) from None
        self._psycopg = psycopg
        self.source = source
        self.wait = wait
        self.description = redact_url(target)
        self.keeps_checkpoint = True
        self.write_behind = True  # round trips overlap the next fetch
        self._secrets = url_passwords(target)
        dsn, self.schema_name = split_target(target)
        self._claimed: set[str] = set()
        # With a store (the CLI always gives one) the schema holds its orders
        # only: refused when opening, recorded with the first write (so
        # settings that fail before any order arrives claim nothing).
        self.store = store
        self._store_confirmed = False  # durably this store's: never changes
        self._store_pending = False  # recorded in the open transaction
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
                recorded = self._recorded_store()
                self._conn.commit()  # end the read: no idle transaction
                self._refuse_other(recorded)
            except self._psycopg.Error as exc:
                self._conn.close()
                raise OutputError(
                    f"cannot read {self.description}: {self._why(exc)}"
                ) from None
            except BaseException:
                self._conn.close()
                raise
            self._store_confirmed = recorded == store.value

    # -- the sink interface ------------------------------------------------------

    def write(self, orders: list[dict[str, Any]]) -> None:
        self._reconnect_if_broken()
        now = int(time.time())
        # ascending ids: every writer locks rows in the same order, so two
        # transactions (a receiver, a backfill, a pull) can never deadlock
        ordered = sorted(orders, key=order_id)
        try:
            self._ensure_store()
            with self._conn.cursor() as cur:
                for order in ordered:
                    self._upsert(cur, order, now)
        except self._psycopg.Error as exc:
            self._rollback()
            raise OutputError(
                f"cannot write to {self.description}: {self._why(exc)}"
            ) from None

    def commit(self, store_key: str, checkpoint: dict[str, Any] | None) -> None:
        from psycopg.types.json import Jsonb

        try:
            if checkpoint is not None:
                # only the run holding the store's lock may move its cursor
                self._claim(store_key)
                self._ensure_store()
                self._conn.execute(
                    "INSERT INTO sync_state (store_key, record, updated_at) "
                    "VALUES (%s, %s, %s) ON CONFLICT (store_key) DO UPDATE SET "
                    "record = EXCLUDED.record, updated_at = EXCLUDED.updated_at",
                    (store_key, Jsonb(checkpoint), int(time.time())),
                )
            self._conn.commit()
            if self._store_pending:
                self._store_confirmed, self._store_pending = True, False
        except self._psycopg.Error as exc:
            self._rollback()
            raise OutputError(
                f"cannot commit to {self.description}: {self._why(exc)}"
            ) from None
        except BaseException:
            self._rollback()
            raise

    def load_checkpoint(self, store_key: str) -> dict[str, Any] | None:
        try:
            self._claim(store_key)
            row = self._conn.execute(
                "SELECT record FROM sync_state WHERE store_key = %s", (store_key,)
            ).fetchone()
            self._conn.commit()  # end the read: no idle transaction while paging
        except self._psycopg.Error as exc:
            self._rollback()
            raise OutputError(
                f"cannot read {self.description}: {self._why(exc)}"
            ) from None
        except BaseException:
            self._rollback()
            raise
        if row is None:
            return None
        record = row[0]
        try:
            validate_record(record, where="the database's cursor")
        except ValueError as exc:
            raise ConfigError(
                f"{self.description}: its saved cursor for this store is unreadable "
                f"({exc}); delete that row of {self.schema}.sync_state to start again"
            ) from None
        return record  # type: ignore[no-any-return]

    def close(self) -> None:
        self._rollback()
        with contextlib.suppress(self._psycopg.Error):
            if self._claimed:
                # closing the session would release them too, but only once the
                # server notices; unlocking first frees the store at once
                self._conn.execute("SELECT pg_advisory_unlock_all()")
                self._conn.rollback()
            self._conn.close()

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
        values = order_columns(order)
        for name in REAL_COLUMNS:
            values[name] = _decimal(values[name])
        values.update(
            id=oid,
            orderdate=cursor_value(order, "orderdate"),
            dt_updated=cursor_value(order, "dt_updated"),
            order_json=Jsonb(order, dumps=_dumps_jsonb),
            first_seen=now,
            last_seen=now,
            source=self.source,
        )
        cur.execute(_UPSERT, [_without_nul(values[n]) for n in _ORDER_COLUMNS])
        if cur.fetchone() is None:
            # an older version than the stored one: note that we saw it, no more
            cur.execute("UPDATE orders SET last_seen = %s WHERE id = %s", (now, oid))
            return
        cur.execute("DELETE FROM order_items WHERE order_id = %s", (oid,))
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

    def _claim(self, store_key: str) -> None:
        """Hold the store's advisory lock, and make sure this schema is its own."""
        if store_key in self._claimed:
            return
        # by identity: runs of one store under a profile and under environment
        # settings (two state keys) still exclude each other
        named = self.store.value if self.store is not None else store_key
        key = lock_key(_STORE_NAMESPACE, self.schema, named)
        if self.wait:
            self._conn.execute("SELECT pg_advisory_lock(%s)", (key,))
        else:
            row = self._conn.execute(
                "SELECT pg_try_advisory_lock(%s)", (key,)
            ).fetchone()
            if not row or not row[0]:
                self._rollback()
                raise LockedError(
                    "another miva-sync run for this store, on this or another host, "
                    f"holds its lock in {self.description} (schema {self.schema}); "
                    "use --wait to wait for it"
                )
        if self.store is not None:
            # the identity is checked when opening and recorded by the first
            # write (_ensure_store); the lock is the session's all the same
            self._claimed.add(store_key)
            return
        # a sink opened without an identity (library use): the schema is
        # claimed by the state key, as before identities
        self._conn.execute(
            "INSERT INTO sync_store (store_key, claimed_at) VALUES (%s, %s) "
            "ON CONFLICT (only_one) DO NOTHING",
            (store_key, int(time.time())),
        )
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

    def _recorded_store(self) -> str | None:
        row = self._conn.execute("SELECT store_key FROM sync_store").fetchone()
        return None if row is None else str(row[0])

    def _refuse_other(self, recorded: str | None) -> None:
        store = self.store
        if store is not None and recorded is not None and not store.owns(recorded):
            self._rollback()
            raise other_store(
                f"schema {self.schema} of {self.description}",
                recorded,
                store,
                _ONE_SCHEMA_PER_STORE,
                f"DELETE FROM {self.schema}.sync_store",  # noqa: S608 - a message
            )

    def _ensure_store(self) -> None:
        """Record this store in the open transaction, or refuse (ConfigError).

        Checked again inside the write: another store's run may have claimed
        an empty schema since this one was opened; a schema claimed by this
        store's state key (an older release) is adopted.
        """
        if self.store is None or self._store_confirmed or self._store_pending:
            return
        # concurrent first writers: the second waits on the first's row, then
        # does nothing and reads the committed claim
        self._conn.execute(
            "INSERT INTO sync_store (store_key, claimed_at) VALUES (%s, %s) "
            "ON CONFLICT (only_one) DO NOTHING",
            (self.store.value, int(time.time())),
        )
        recorded = self._recorded_store()
        self._refuse_other(recorded)
        if recorded != self.store.value:
            self._conn.execute(
                "UPDATE sync_store SET store_key = %s, claimed_at = %s",
                (self.store.value, int(time.time())),
            )
        self._store_pending = True

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
            conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)"
            )
            found = conn.execute("SELECT max(version) FROM schema_version").fetchone()
            current = (found[0] if found else None) or 0
            if current > SCHEMA_VERSION:
                raise OutputError(
                    f"schema {schema} of {self.description} was written by a newer "
                    f"miva-sync (schema {current}, this release knows "
                    f"{SCHEMA_VERSION}): upgrade miva-sync"
                )
            for version, script in MIGRATIONS:
                if version > current:
                    conn.execute(script)  # several statements: no parameters allowed
                    conn.execute(
                        "INSERT INTO schema_version (version) VALUES (%s)", (version,)
                    )
            conn.commit()
        except self._psycopg.Error as exc:
            # the caller closes this session: nothing to roll back
            raise OutputError(
                f"cannot prepare {self.description}: {self._why(exc)}"
            ) from None
        return str(schema)

    def _rollback(self) -> None:
        self._store_pending = False
        with contextlib.suppress(self._psycopg.Error):
            self._conn.rollback()

    def _why(self, exc: Exception) -> str:
        """psycopg's message on one line, never with the password in it."""
        return one_line_without(exc, self._secrets)


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


def check_store(target: str, store: StoreIdentity) -> None:
    """Refuse (exit 3) a schema holding another store's orders, read-only, for
    ``verify``: it must neither create, migrate nor claim anything."""
    with reading(target) as conn:
        row = conn.execute(
            "SELECT current_schema(), to_regclass('sync_store') IS NOT NULL"
        ).fetchone()
        if not row or not row[1]:
            return  # nothing written there yet: verify says so itself
        owner = conn.execute("SELECT store_key FROM sync_store").fetchone()
    if owner is not None and not store.owns(str(owner[0])):
        raise other_store(
            f"schema {row[0]} of {redact_url(target)}",
            str(owner[0]),
            store,
            _ONE_SCHEMA_PER_STORE,
            f"DELETE FROM {row[0]}.sync_store",  # noqa: S608 - a message
        )


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

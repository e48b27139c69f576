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
from operator import itemgetter
from typing import TYPE_CHECKING, Any, TypeVar
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
from miva_sync.sinks.rows import REAL_COLUMNS, order_item_rows, storable
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

T = TypeVar("T")

CONNECT_TIMEOUT = 10  # seconds; a cron run should fail fast when the database is down
# The server probes a silent client this often, so the store lock of a worker
# whose host died (no FIN ever comes) is freed in about a minute, not hours.
SERVER_KEEPALIVES = {
    "tcp_keepalives_idle": "30",
    "tcp_keepalives_interval": "10",
    "tcp_keepalives_count": "3",
}
# An order's JSON is several KB, stored compressed (TOAST): lz4 compresses it
# about twice as fast as the default pglz, for about 30% more room (measured:
# 20,000 sandbox orders written in 40% less server time). This session's new
# rows only, and only where the server has lz4 (PostgreSQL 14 and later, when
# built with it); elsewhere nothing changes. Reading is the same either way.
_FAST_COMPRESSION = (
    "SELECT set_config(name, 'lz4', false) FROM pg_settings "
    "WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"
)
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

# A page's orders in one statement, newest wins row by row inside it, under
# each row's lock: a version not newer than the stored one updates nothing
# and returns no id. The rows travel as one JSON array, which the server reads
# into the table's own column types: one short statement, prepared once, and
# no per-value adaptation on this side. Ascending ids: every writer locks rows
# in the same order, so two transactions can never deadlock.
_UPSERT_ALL = (
    f"{INSERT_ORDERS.removesuffix('VALUES ')}SELECT {', '.join(ORDER_ROW)} "  # noqa: S608 - names are ours
    "FROM jsonb_populate_recordset(NULL::orders, %s) ORDER BY id"
    f"{ON_ORDER_CONFLICT} WHERE {REPLACES_STORED} RETURNING id"
)
_INSERT_ITEMS_ALL = (
    f"{INSERT_ITEMS.removesuffix('VALUES ')}SELECT {', '.join(ITEM_ROW)} "  # noqa: S608 - names are ours
    "FROM jsonb_populate_recordset(NULL::order_items, %s)"
)
# (now, ids): the orders of a page seen again in no newer version
_TOUCH_ALL = "UPDATE orders SET last_seen = %s WHERE id = ANY(%s)"
# (ids,): the items of the orders whose new versions replace them
_DELETE_ITEMS_OF = "DELETE FROM order_items WHERE order_id = ANY(%s)"
# where the amounts stand in a row: they go in as exact NUMERIC
_AMOUNTS = frozenset(ORDER_ROW.index(c) for c in REAL_COLUMNS)


# A schema nobody claimed yet is claimed; one claimed stays as it is. Concurrent
# first writers: the second waits on the first's row, then does nothing.
_CLAIM_IF_FREE = (
    "INSERT INTO sync_store (store_key, claimed_at) VALUES (%s, %s) "
    "ON CONFLICT (only_one) DO NOTHING"
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


def _rounds(pairs: list[tuple[int, T]]) -> list[list[tuple[int, T]]]:
    """A page as rounds in which each order is once: every order's first copy,
    then the second copies, and so on, each round in the page's order.

    One statement cannot upsert a row twice; rounds sent one after the other
    meet each order's copies in the page's order, as one statement per order.
    """
    rounds: list[list[tuple[int, T]]] = []
    copies: dict[int, int] = {}
    for pair in pairs:
        n = copies.get(pair[0], 0)
        copies[pair[0]] = n + 1
        if n == len(rounds):
            rounds.append([])
        rounds[n].append(pair)
    return rounds


class PostgresSink(DatabaseSink):
    """Upsert orders into PostgreSQL (the rules: miva_sync/sinks/database.py)."""

    SQL = Statements("%s")
    ONE = True
    # A page written but not committed is rolled back by a crash, with the
    # cursor of its transaction, so a pull may group commits (sinks/base.py):
    # a commit per page was a third of a 20,000-order pull's round trips and
    # time (measured with benchmarks/bench_postgres.py)
    replay_safe = True
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
        # (stable: an order's copies keep their order in the page)
        pairs = sorted(((order_id(o), o) for o in orders), key=itemgetter(0))
        with self._failing("write to"):
            self._ensure_store()
            if pairs:
                self._upsert_page(pairs, now)

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

    def _upsert_page(self, pairs: list[tuple[int, dict[str, Any]]], now: int) -> None:
        """Newest version wins, order by order, in two round trips for the page.

        The page's orders go out in one upsert (an order twice in the page:
        its second copy in a second statement, behind the first). The server
        still decides row by row under each row's lock, in the statement
        itself, so an order twice in the page meets its first copy and a
        concurrent writer's newer version is never replaced: the decisions of
        one statement per order, without a statement or a round trip per
        order. The ids returned say who won (reading them is the first round
        trip); the pipeline's end, the second, notes that the others were seen
        and replaces the winners' items.
        """
        from psycopg.types.json import Jsonb

        conn = self._conn
        winners: dict[int, dict[str, Any]] = {}  # the last copy that won
        with conn.pipeline():
            sent = []
            for copies in _rounds(pairs):
                rows = [
                    dict(zip(ORDER_ROW, self._row(oid, order, now), strict=True))
                    for oid, order in copies
                ]
                answer = conn.execute(_UPSERT_ALL, (Jsonb(rows, dumps=_dumps_jsonb),))
                sent.append((copies, answer))
            for copies, answer in sent:
                won = {row[0] for row in answer.fetchall()}
                winners.update((oid, o) for oid, o in copies if oid in won)
            # the others are stored in a version at least as new: seen, no more
            kept = [
                oid for oid in dict.fromkeys(i for i, _ in pairs) if oid not in winners
            ]
            if kept:
                conn.execute(_TOUCH_ALL, (now, kept))
            if not winners:
                return
            conn.execute(_DELETE_ITEMS_OF, (list(winners),))
            # one row per line: a line given twice keeps its last item
            items = {
                (oid, line_id): dict(zip(ITEM_ROW, (oid, line_id, *texts, quantity,
                                                    _amount(p), _amount(t)), strict=True))
                for oid, order in winners.items()
                for _, line_id, *texts, quantity, p, t in order_item_rows(oid, order)
            }  # fmt: skip
            if items:
                rows = list(items.values())
                conn.execute(_INSERT_ITEMS_ALL, (Jsonb(rows, dumps=_dumps_jsonb),))

    def _row(self, oid: int, order: dict[str, Any], now: int) -> list[Any]:
        """An order's row in :data:`ORDER_ROW` order, amounts as exact text."""
        row = list(
            order_row(
                order, oid, cursor_value(order, "dt_updated"), order, now, self.source
            )
        )
        for i in _AMOUNTS:
            row[i] = _amount(row[i])
        return row

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
            conn.execute(_FAST_COMPRESSION)
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


def _amount(value: float | None) -> str | None:
    # repr: the shortest text that reads back as the same float, so 19.99 is
    # stored as 19.99, not as the binary float's 19.989999999999998...; as
    # text, since JSON has no NaN or infinity and NUMERIC reads "nan", "inf"
    return None if value is None else repr(value)


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

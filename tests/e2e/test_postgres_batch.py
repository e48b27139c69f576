"""PostgreSQL writes a page in a few round trips, deciding newest-wins as one order at a time.

Issue 23: rows go in batches (a round trip per page, not per order), with
exactly the decisions of one upsert per order: an order twice in a page meets
its first copy, an older (or the same) version than the stored one only moves
``last_seen``, and only the orders that won have their items replaced.
Round trips are counted from libpq's own trace of the sink's connection: a
turn is every time the client speaks again after the server answered.
"""

from __future__ import annotations

import json
import os
import sqlite3
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sinks.postgres import PostgresSink
from miva_sync.sinks.sqlite import SqliteSink
from tests.support import pg_fixtures

pg_server = pg_fixtures.pg_server
pg_url = pg_fixtures.pg_url
query = pg_fixtures.query

RECORD = {
    "mode": "date",
    "cursors": {"date": {"start": 100, "watermark": 200}},
    "dedupe": {},
    "held": {},
}


def order(
    oid: int, updated: int | None, sku: str = "A", lines: int = 1
) -> dict[str, Any]:
    return {
        "id": oid,
        "orderdate": 10,
        "dt_updated": updated,
        "status": updated,
        "total": 1.5,
        "items": [
            {"line_id": n, "sku": sku, "quantity": 1, "price": 1.5, "total": 1.5}
            for n in range(1, lines + 1)
        ],
    }


@pytest.fixture
def connections(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every psycopg connection opened during the test (the sink's among them)."""
    pg_fixtures.require_psycopg()
    import psycopg

    opened: list[Any] = []
    connect = psycopg.connect

    def recording(*args: Any, **kwargs: Any) -> Any:
        conn = connect(*args, **kwargs)
        opened.append(conn)
        return conn

    monkeypatch.setattr(psycopg, "connect", recording)
    return opened


def round_trips(conn: Any, action: Callable[[], object], tmp_path: Path) -> int:
    """How many times ``action`` made the client wait for the server on ``conn``:
    libpq traces every protocol message, F(rontend) or B(ackend), in order."""
    from psycopg import pq

    path = tmp_path / "trace.txt"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        conn.pgconn.trace(fd)
        conn.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS)
        try:
            action()
        finally:
            conn.pgconn.untrace()  # flushes the trace
    finally:
        os.close(fd)
    turns, last = 0, ""
    for line in path.read_text(errors="replace").splitlines():
        side = line[:1]
        if side == "F" and last != "F":
            turns += 1
        if side in ("F", "B"):
            last = side
    return turns


def test_postgres_page_round_trips_do_not_grow_with_orders_per_page(
    pg_url: str, connections: list[Any], tmp_path: Path
) -> None:
    sink = PostgresSink(pg_url)
    conn = connections[-1]
    sink.load_checkpoint("k")
    first = [order(i, 100, lines=2) for i in range(1, 301)]
    again = [order(i, 200 if i % 2 else 50, sku="B") for i in range(1, 301)]
    trips = []
    for pages in (first, again):
        for start in range(0, 300, 100):
            page = pages[start : start + 100]
            trips.append(round_trips(conn, lambda p=page: sink.write(p), tmp_path))
        sink.commit("k", RECORD)
    small = round_trips(conn, lambda: sink.write(first[:10]), tmp_path)
    sink.commit("k", RECORD)
    sink.close()
    # a page's upserts and its items in one pipeline: two turns, and one more
    # where the page opens the transaction; one per order would be 100 or more
    assert max(trips) <= 3, trips
    assert sum(trips) <= 2 * len(trips) + 2, trips  # BEGIN once per commit
    assert small <= 3
    # the writes landed: odd ids newer (replaced), even ids older (kept)
    rows = query(pg_url, "SELECT id, dt_updated FROM orders ORDER BY id")
    assert rows == [(i, 200 if i % 2 else 100) for i in range(1, 301)]
    assert query(pg_url, "SELECT count(*) FROM order_items") == [(150 * 1 + 150 * 2,)]


def stored(url: str) -> dict[int, tuple[Any, ...]]:
    rows = query(
        url, "SELECT id, dt_updated, status, source, first_seen, last_seen FROM orders"
    )
    return {r[0]: r[1:] for r in rows}


def items(url: str) -> dict[int, list[tuple[Any, ...]]]:
    found: dict[int, list[tuple[Any, ...]]] = {}
    for oid, line, sku, price in query(
        url, "SELECT order_id, line_id, sku, price FROM order_items ORDER BY 1, 2"
    ):
        found.setdefault(oid, []).append(
            (line, sku, None if price is None else float(price))
        )
    return found


# Stored first (source "pull"), then one page from a receiver (source "webhook").
BEFORE = [order(1, 100), order(2, 100), order(3, 100), order(4, 100), order(6, None)]
PAGE = [
    order(1, 150, "B"),  # newer: replaced, items too
    order(2, 50, "B", lines=3),  # older: kept, items untouched
    order(3, 100, "B", lines=2),  # the same version: kept (SQLite's rule too)
    order(5, 300, "B"),  # twice in one page: the newer copy first...
    order(5, 200, "C", lines=2),  # ...so the older second copy loses
    order(4, 120, "B", lines=2),  # twice: older first...
    order(4, 130, "C"),  # ...then newer: the second copy's items stay
    order(6, 50, "B"),  # stored without dt_updated: cannot compare, replaced
    # new, one line given twice: the last item stays, as one upsert per item did
    dict(order(7, 10), items=[{"line_id": 1, "sku": "X"}, {"line_id": 1, "sku": "Y"}]),
]


def test_postgres_page_decisions_match_one_order_at_a_time(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    sink.write(BEFORE)
    sink.commit("k", RECORD)
    sink.close()
    query(pg_url, "UPDATE orders SET first_seen = 0, last_seen = 0")
    receiver = PostgresSink(pg_url, source="webhook")
    receiver.write(PAGE)
    receiver.commit("webhook", None)
    receiver.close()
    rows = stored(pg_url)
    assert {oid: row[:3] for oid, row in rows.items()} == {
        1: (150, 150, "webhook"),
        2: (100, 100, "pull"),
        3: (100, 100, "pull"),
        4: (130, 130, "webhook"),
        5: (300, 300, "webhook"),
        6: (50, 50, "webhook"),
        7: (10, 10, "webhook"),
    }
    # every order of the page was seen now; none lost its first sighting
    assert all(row[3] == 0 and row[4] > 0 for oid, row in rows.items() if oid < 5)
    assert items(pg_url) == {
        1: [(1, "B", 1.5)],
        2: [(1, "A", 1.5)],
        3: [(1, "A", 1.5)],
        4: [(1, "C", 1.5)],
        5: [(1, "B", 1.5)],
        6: [(1, "B", 1.5)],
        7: [(1, "Y", None)],
    }


def test_postgres_and_sqlite_keep_the_same_rows_from_the_same_pages(
    pg_url: str, tmp_path: Path
) -> None:
    path = tmp_path / "o.db"
    for source, page in (
        ("pull", BEFORE),
        ("webhook", PAGE),
        ("pull", list(reversed(PAGE))),
    ):
        for sink in (
            PostgresSink(pg_url, source=source),
            SqliteSink(path, source=source),
        ):
            sink.write(page)
            sink.commit("k", None)
            sink.close()
    with sqlite3.connect(path) as conn:
        lite = conn.execute(
            "SELECT id, dt_updated, status, source, total, order_json FROM orders ORDER BY id"
        ).fetchall()
        lite_items = conn.execute(
            "SELECT order_id, line_id, sku, price FROM order_items ORDER BY 1, 2"
        ).fetchall()
    pg = query(
        pg_url,
        "SELECT id, dt_updated, status, source, total, order_json::text FROM orders ORDER BY id",
    )
    pg_rows = [(*r[:4], float(r[4]), r[5]) for r in pg]
    assert [(*r[:5], json.loads(r[5])) for r in pg_rows] == [
        (*r[:5], json.loads(r[5])) for r in lite
    ]
    pg_items = query(
        pg_url, "SELECT order_id, line_id, sku, price FROM order_items ORDER BY 1, 2"
    )
    assert [
        (*r[:3], float(r[3]) if isinstance(r[3], Decimal) else r[3]) for r in pg_items
    ] == lite_items


def test_postgres_amounts_are_exact_and_may_be_non_finite(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    sink.write(
        [
            dict(order(1, 1), total=19.99, total_tax="NaN", total_ship="inf"),
            dict(order(2, 1), total=-0.1, total_tax=None, total_ship="-inf"),
        ]
    )
    sink.commit("k", None)
    sink.close()
    rows = query(pg_url, "SELECT total, total_tax, total_ship FROM orders ORDER BY id")
    # as text: NaN equals nothing, not even itself
    assert [tuple(map(str, row)) for row in rows] == [
        ("19.99", "NaN", "Infinity"),
        ("-0.1", "None", "-Infinity"),
    ]

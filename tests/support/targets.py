"""Reading back what an output target holds: JSON Lines files, folders, SQLite files."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

SINCE = "2000-01-01"  # before every order a sandbox generates: the whole store

Orders = dict[int, dict[str, Any]]

# Two versions of one order, for the rule that a database target never
# replaces a newer version (dt_updated) with an older one
NEWER: dict[str, Any] = {
    "id": 5,
    "orderdate": 10,
    "dt_updated": 200,
    "status": 200,
    "items": [{"line_id": 1, "sku": "B", "quantity": 2, "price": 1, "total": 2}],
}
OLDER: dict[str, Any] = {
    "id": 5,
    "orderdate": 10,
    "dt_updated": 100,
    "status": 100,
    "items": [{"line_id": 1, "sku": "A", "quantity": 1, "price": 1, "total": 1}],
}


def newest(orders: Iterable[dict[str, Any]]) -> Orders:
    """The newest version (by dt_updated; the first one on a tie) of each order."""
    latest: Orders = {}
    for order in orders:
        if (
            order["id"] not in latest
            or order["dt_updated"] > latest[order["id"]]["dt_updated"]
        ):
            latest[order["id"]] = order
    return latest


def db_orders(path: Path) -> Orders:
    """A SQLite target's orders; each row's columns agree with its JSON."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute("SELECT id, order_json, dt_updated FROM orders").fetchall()
    out = {}
    for oid, text, updated in rows:
        order = json.loads(text)
        assert order["id"] == oid and order["dt_updated"] == updated
        out[oid] = order
    return out


def db_items(path: Path) -> dict[int, list[tuple[Any, ...]]]:
    """A SQLite target's order_items rows, by order id, in line order."""
    with sqlite3.connect(path) as conn:
        rows = conn.execute(
            "SELECT order_id, line_id, code, sku, name, quantity, price, total FROM order_items "
            "ORDER BY order_id, line_id"
        ).fetchall()
    items: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        items.setdefault(row[0], []).append(row[1:])
    return items


def expected_items(order: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The order_items rows a database target should hold for ``order``."""
    return sorted(
        (
            i["line_id"],
            i["code"],
            i["sku"],
            i["name"],
            i["quantity"],
            float(i["price"]),
            float(i["total"]),
        )
        for i in order.get("items", [])
    )


def dir_orders(folder: Path) -> Orders:
    """A folder target's orders: one ID.json file each."""
    files = [p for p in folder.iterdir() if p.suffix == ".json"]
    return {int(p.stem): json.loads(p.read_text()) for p in files}


def jsonl_latest(paths: list[Path]) -> Orders:
    """The newest version of each order in these JSON Lines files (missing ones skipped)."""
    return newest(
        json.loads(line)
        for path in paths
        if path.exists()
        for line in path.read_text().splitlines()
    )


def read_target(kind: str, target: str) -> Orders:
    """The newest version of each order a ``jsonl``, ``dir`` or ``sqlite`` target
    holds; nothing yet (no file, no table) is no orders."""
    if kind == "sqlite":
        path = target[len("sqlite:///") :]
        if not Path(path).exists():
            return {}
        with sqlite3.connect(path) as conn:
            try:
                rows = conn.execute("SELECT order_json FROM orders").fetchall()
            except sqlite3.OperationalError:
                return {}
        return newest(json.loads(r[0]) for r in rows)
    if kind == "dir":
        folder = Path(target)
        if not folder.exists():
            return {}
        return newest(json.loads(p.read_text()) for p in folder.glob("*.json"))
    return jsonl_latest([Path(target)])

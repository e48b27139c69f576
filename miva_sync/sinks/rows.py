"""Order objects as table rows: the query columns every database target shares.

The SQLite and PostgreSQL targets copy the same fields out of an order for
queries, typed the same defensive way, so a column means the same in both.
Everything else stays in the stored order object, exactly as the store
returned it.
"""

from __future__ import annotations

from typing import Any

# Ship-to and customer essentials copied out of the order object for queries;
# everything else stays in order_json, exactly as the store returned it.
TEXT_COLUMNS = (
    "cust_login", "bill_fname", "bill_lname", "bill_email", "bill_comp", "bill_city",
    "bill_state", "bill_cntry", "ship_fname", "ship_lname", "ship_email", "ship_comp",
    "ship_addr1", "ship_addr2", "ship_city", "ship_state", "ship_zip", "ship_cntry",
    "ship_method", "payment_module",
)  # fmt: skip
INTEGER_COLUMNS = ("status", "pay_status", "cust_id")
REAL_COLUMNS = (
    "total",
    "total_ship",
    "total_tax",
    "total_auth",
    "total_capt",
    "total_rfnd",
)
# The columns of order_items after (order_id, line_id), in row order.
ITEM_COLUMNS = ("code", "sku", "name", "quantity", "price", "total")


# The query columns in the order of order_column_values.
QUERY_COLUMNS = (*TEXT_COLUMNS, *INTEGER_COLUMNS, *REAL_COLUMNS)


def order_column_values(order: dict[str, Any]) -> tuple[Any, ...]:
    """The query columns of one order, in :data:`QUERY_COLUMNS` order (the hot
    path); a value of the wrong type becomes None."""
    get = order.get
    return (
        *[as_text(get(name)) for name in TEXT_COLUMNS],
        *[as_integer(get(name)) for name in INTEGER_COLUMNS],
        *[as_real(get(name)) for name in REAL_COLUMNS],
    )


def order_item_rows(oid: int, order: dict[str, Any]) -> list[tuple[Any, ...]]:
    """``(order_id, line_id, code, sku, name, quantity, price, total)`` per item.

    An item without a line id gets a negative one from its position, so it
    still has a row and can never collide with a real line id.
    """
    items = order.get("items")
    if not isinstance(items, list):
        return []
    rows = []
    for position, item in enumerate(items):
        if not isinstance(item, dict):
            continue
        line_id = as_integer(item.get("line_id"))
        rows.append((
            oid,
            line_id if line_id is not None else -(position + 1),
            as_text(item.get("code")),
            as_text(item.get("sku")),
            as_text(item.get("name")),
            as_integer(item.get("quantity")),
            as_real(item.get("price")),
            as_real(item.get("total")),
        ))  # fmt: skip
    return rows


def as_integer(value: Any) -> int | None:
    """An integer column value: ints (and whole floats) only."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return None


def as_real(value: Any) -> float | None:
    """An amount column value: numbers, or strings that read as one."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(str(value))
    except ValueError:
        return None


def as_text(value: Any) -> str | None:
    """A text column value: strings only, and only text a database can hold."""
    return storable(value) if isinstance(value, str) else None


def storable(text: str) -> str:
    """``text`` with U+FFFD for each lone surrogate (a store sending ``"\ud800"``):
    no character, so no database text can hold it."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else c for c in text)
    return text

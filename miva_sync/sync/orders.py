"""Facts about one order object: its cursor values and its version key."""

from __future__ import annotations

import hashlib
import json
from typing import Any

from miva_sync.errors import ApiError

# Fields that change without the order changing (the customer's last login,
# running totals over the customer's other orders). Left out of the content
# hash so an unchanged order is never mistaken for an updated one.
VOLATILE_CUSTOMER_FIELDS = frozenset(
    {
        "dt_login",
        "order_cnt",
        "order_avg",
        "formatted_order_avg",
        "order_tot",
        "formatted_order_tot",
        "note_count",
        "credit",
        "formatted_credit",
    }
)


def timestamp(value: Any) -> int | None:
    """A Miva timestamp as unix seconds: an int, or a JSON_DateTime object."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    if isinstance(value, dict):
        return timestamp(value.get("time_t"))
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return None


def cursor_value(order: dict[str, Any], field: str) -> int | None:
    """The order's value of a cursor field (``id``, ``orderdate``, ``dt_updated``)."""
    return timestamp(order.get(field))


def order_id(order: dict[str, Any]) -> int:
    """The order number; anything but a non-negative integer is a bad answer."""
    value = order.get("id")
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ApiError(
            f"the store returned an order whose id is not a number: {str(value)[:40]!r}"
        )
    return value


def version_key(order: dict[str, Any]) -> int | str:
    """``dt_updated`` where the store has it, else a hash of the order's content."""
    updated = cursor_value(order, "dt_updated")
    if updated is not None:
        return updated
    content = dict(order)
    customer = content.get("customer")
    if isinstance(customer, dict):
        content["customer"] = {
            k: v for k, v in customer.items() if k not in VOLATILE_CUSTOMER_FIELDS
        }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "h" + hashlib.sha256(canonical.encode()).hexdigest()[:24]

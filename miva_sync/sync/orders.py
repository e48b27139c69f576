"""Facts about one order object: its cursor values and its version key."""

from __future__ import annotations

import hashlib
import json
import math
from typing import Any, TypeGuard

from miva_sync.errors import ApiError

# Times outside years 1..9999 fit no datetime (nor, far out, a 64-bit column):
# a store sending one sent no usable time; ids must fit a 64-bit column too.
MIN_TIME = -62_135_596_800
MAX_TIME = 253_402_300_799
MAX_ID = 2**63 - 1

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
    if type(value) is int:  # what stores send: the fast path (several per order)
        return value if MIN_TIME <= value <= MAX_TIME else None
    if isinstance(value, bool):
        return None
    if isinstance(value, dict):
        return timestamp(value.get("time_t"))
    digits = isinstance(value, str) and value.isascii() and value.isdigit()
    if (isinstance(value, float) and math.isfinite(value)) or (
        digits and len(value) < 20
    ):
        value = int(value)
    if isinstance(value, int) and MIN_TIME <= value <= MAX_TIME:
        return value
    return None  # NaN, Infinity, 10**30, "x": no usable time


def cursor_value(order: dict[str, Any], field: str) -> int | None:
    """The order's value of a cursor field (``id``, ``orderdate``, ``dt_updated``)."""
    if field == "id":
        value = order.get("id")
        return value if _is_id(value) else None
    return timestamp(order.get(field))


def _is_id(value: Any) -> TypeGuard[int]:
    # exactly int: bool (and other int subclasses) are no order numbers
    return type(value) is int and 0 <= value <= MAX_ID


def order_id(order: dict[str, Any]) -> int:
    """The order number; anything but a non-negative integer is a bad answer."""
    value = order.get("id")
    if not _is_id(value):
        raise ApiError(
            f"the store returned an order whose id is not a number: {str(value)[:40]!r}"
        )
    return value


def version_key(order: dict[str, Any]) -> int | str:
    """``dt_updated`` where the store has it, else a hash of the order's content."""
    updated = cursor_value(order, "dt_updated")
    if updated is not None:
        return updated
    # saved in state files: this exact serialisation, so hashes stay the same
    canonical = json.dumps(
        stable_content(order), sort_keys=True, separators=(",", ":"), default=str
    )
    return "h" + hashlib.sha256(canonical.encode()).hexdigest()[:24]


def stable_content(order: dict[str, Any]) -> dict[str, Any]:
    """The order without the customer fields that change on their own."""
    content = dict(order)
    customer = content.get("customer")
    if isinstance(customer, dict):
        content["customer"] = {
            k: v for k, v in customer.items() if k not in VOLATILE_CUSTOMER_FIELDS
        }
    return content

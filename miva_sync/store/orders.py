"""Facts about one order object: its cursor values, its version key and its
content fingerprint.

**The content fingerprint** (:func:`fingerprint`) is what "unchanged" means
wherever miva-sync decides it from an order's content: the version key on
stores without ``dt_updated`` (dedupe in every pull mode), the queue's re-read
after an acknowledgement, and the webhook receiver's newest-wins comparison.
It is ``"h"`` + 24 hex digits of the SHA-256 of the order's canonical JSON
(keys sorted, compact, UTF-8), leaving out what a store changes without the
order changing:

* ``dt_updated``: the version stamp, compared on its own where a store has it;
* ``CustomField_Values.orderworkflow``: the order workflow module's own
  bookkeeping (which queues the order is in). An acknowledgement may rewrite
  it (docs/miva-api.md §6), and the default columns (``CustomField_Values:*``)
  return it, so without this an acknowledgement would make every order look
  updated and be emitted a second time;
* the customer's running figures and account times
  (:data:`VOLATILE_CUSTOMER_FIELDS`): a login or another order changes them.

Fingerprints are saved in state files and database checkpoints (dedupe
entries), so the serialisation is part of the state format. Releases before
this fingerprint saved a different hash of the same shape;
:func:`legacy_fingerprints` recomputes it so an upgrade re-emits nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from typing import Any, Final, TypeGuard

from miva_sync.base import jsonio
from miva_sync.errors import ApiError

# Times outside years 1..9999 fit no datetime (nor, far out, a 64-bit column):
# a store sending one sent no usable time; ids must fit a 64-bit column too.
MIN_TIME = -62_135_596_800
MAX_TIME = 253_402_300_799
MAX_ID = 2**63 - 1

# The field each pull mode pages by: its cursor, Singer's replication key,
# what `state show` and `verify` name
CURSOR_FIELDS: Final[Mapping[str, str]] = {
    "date": "orderdate",
    "updated": "dt_updated",
    "number": "id",
}

# Customer fields that change without the order changing (the customer's last
# login and password change, running totals over the customer's other orders,
# store credit). Left out of the fingerprint so an unchanged order is never
# mistaken for an updated one. The customer's addresses and custom fields stay
# in: the order carries the customer object, and a user wants it current.
VOLATILE_CUSTOMER_FIELDS = frozenset(
    {
        "dt_login",
        "dt_pwchg",
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
# The set as releases before the fingerprint used it: frozen, for legacy hashes.
_LEGACY_VOLATILE_CUSTOMER_FIELDS = VOLATILE_CUSTOMER_FIELDS - {"dt_pwchg"}

CUSTOM_FIELDS = "CustomField_Values"  # {"<module code>": {"<field code>": value}}
# The order workflow module's code: its custom fields are its queue bookkeeping
WORKFLOW_MODULE = "orderworkflow"


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
    """``dt_updated`` where the store has it, else the order's :func:`fingerprint`.

    A store that bumps ``dt_updated`` when it acknowledges an order makes the
    acknowledged order a new version: that is the store's word, and it is
    emitted (docs/design.md §5.4).
    """
    return versioned(order)[0]


def versioned(order: dict[str, Any]) -> tuple[int | str, int | None]:
    """:func:`version_key` and ``dt_updated`` (None if the store has none)."""
    updated = cursor_value(order, "dt_updated")
    return (updated if updated is not None else fingerprint(order)), updated


def fingerprint(order: dict[str, Any]) -> str:
    """The order's content fingerprint (see the module docstring): equal for two
    reads of an order that differ only in its version stamp, the workflow
    module's bookkeeping or the customer's volatile fields."""
    # orjson (jsonio) with sorted keys: several times faster than json.dumps in
    # this per-order hot path. The bytes are part of the state format: orjson
    # and jsonio's standard-library fallback agree on them except for floats
    # below 1e-4 in magnitude (rare in an order; at worst such an order is
    # emitted once more if orjson goes missing).
    canonical = jsonio.dumps(stable_content(order), sort_keys=True)
    return "h" + hashlib.sha256(canonical).hexdigest()[:24]


def stable_content(order: dict[str, Any]) -> dict[str, Any]:
    """What :func:`fingerprint` covers: the order without ``dt_updated``, the
    workflow module's custom fields and the customer's volatile fields.

    A shallow copy: only the objects it leaves something out of are copied.
    """
    content = _without_customer_fields(order, VOLATILE_CUSTOMER_FIELDS)
    content.pop("dt_updated", None)
    _drop_workflow_fields(content)
    return content


def legacy_fingerprints(order: dict[str, Any]) -> tuple[str, ...]:
    """The content hashes releases before :func:`fingerprint` would have saved
    for this order (the same ``"h"`` + 24 hex shape), so a dedupe entry written
    by one still matches after an upgrade.

    Two: the order as it is now, and, when it carries workflow fields, the order
    without them (the entry was saved before an acknowledgement wrote them).
    An entry saved while the flags had other values cannot be matched: that
    release emitted such an order again after its acknowledgement anyway.
    Computed only where an entry differs from the new fingerprint (for a
    plain-ASCII order without workflow fields or ``dt_pwchg`` the two
    serialisations give the same bytes, so most entries match at once).
    """
    content = _without_customer_fields(order, _LEGACY_VOLATILE_CUSTOMER_FIELDS)
    hashes = [_legacy_hash(content)]
    if _drop_workflow_fields(content):
        hashes.append(_legacy_hash(content))
    return tuple(hashes)


def _without_customer_fields(
    order: dict[str, Any], fields: frozenset[str]
) -> dict[str, Any]:
    """A shallow copy of ``order`` whose customer object lacks ``fields``."""
    content = dict(order)
    customer = content.get("customer")
    if isinstance(customer, dict):
        content["customer"] = {k: v for k, v in customer.items() if k not in fields}
    return content


def _drop_workflow_fields(content: dict[str, Any]) -> bool:
    """Leave the workflow module's custom fields out of ``content`` (a copy of
    its custom field object replaces the order's); False when it has none."""
    custom = content.get(CUSTOM_FIELDS)
    if not (isinstance(custom, dict) and WORKFLOW_MODULE in custom):
        return False
    # the object itself stays (even if now empty): other modules' fields
    # are the user's data, and an empty one is still what was requested
    content[CUSTOM_FIELDS] = {k: v for k, v in custom.items() if k != WORKFLOW_MODULE}
    return True


def _legacy_hash(content: dict[str, Any]) -> str:
    # exactly the old serialisation (standard library, ASCII escapes): frozen
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), default=str)
    return "h" + hashlib.sha256(canonical.encode()).hexdigest()[:24]

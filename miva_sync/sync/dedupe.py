"""Exact dedupe over the whole re-query window, with bounded state.

One entry per order id still inside the window: ``[version, orderdate,
dt_updated]``. An order whose version matches its entry was already emitted
unchanged; a newer version is emitted again. Entries fall out once their
cursor is below anything a later run can query.

The version is ``dt_updated``, or on stores without it the order's content
fingerprint (``store/orders.py``). An entry saved by a release before the
fingerprint holds that release's content hash: it is recognised, and replaced
by the new fingerprint, the first time its order is seen unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from miva_sync.state.record import DedupeEntry
from miva_sync.store.orders import (
    cursor_value,
    legacy_fingerprints,
    order_id,
    versioned,
)


class DedupeWindow:
    def __init__(self, entries: dict[str, DedupeEntry] | None = None) -> None:
        self.entries: dict[str, DedupeEntry] = dict(entries or {})

    def __contains__(self, order: dict[str, Any]) -> bool:
        """Seen before in exactly this version?"""
        return self.seen(*facts(order), order)

    def seen(self, key: str, entry: DedupeEntry, order: dict[str, Any]) -> bool:
        """:meth:`__contains__` for an order whose :func:`facts` are known."""
        saved = self.entries.get(key)
        if saved is None:
            return False
        version = entry[0]
        if saved[0] == version:
            return True
        saved_version = saved[0]
        if not (isinstance(version, str) and isinstance(saved_version, str)):
            return False
        # a content hash that differs: a changed order, or one saved by an older
        # release (same shape, other serialisation). Only here is the old hash
        # computed, so an unchanged window costs nothing extra after one run.
        if saved_version not in legacy_fingerprints(order):
            return False
        # a new list, not saved[0] = …: snapshots of the window (pull.snapshot)
        # share entry lists and must not see this change
        self.entries[key] = [version, saved[1], saved[2]]
        return True

    def knows(self, oid: int) -> bool:
        return str(oid) in self.entries

    def add(self, order: dict[str, Any]) -> None:
        key, entry = facts(order)
        self.entries[key] = entry

    def prune(self, keep: Callable[[int, DedupeEntry], bool]) -> None:
        """Drop entries a later run can no longer read back."""
        self.entries = {k: e for k, e in self.entries.items() if keep(int(k), e)}


def facts(order: dict[str, Any]) -> tuple[str, DedupeEntry]:
    """The order's key in the window and the entry it gets there, worked out
    once per order (the pull loop uses both, and the cursor values in them)."""
    version, updated = versioned(order)
    return str(order_id(order)), [version, cursor_value(order, "orderdate"), updated]


def keep_from(field: str, floor: int) -> Callable[[int, DedupeEntry], bool]:
    """Keep entries whose cursor ``field`` is at or above ``floor`` (or unknown)."""
    position = {"orderdate": 1, "dt_updated": 2}

    def keep(oid: int, entry: DedupeEntry) -> bool:
        value = oid if field == "id" else entry[position[field]]
        # None (or, from a hand-edited state file, anything but an int): unknown
        return not isinstance(value, int) or value >= floor

    return keep

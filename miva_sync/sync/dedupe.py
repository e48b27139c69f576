"""Exact dedupe over the whole re-query window, with bounded state.

One entry per order id still inside the window: ``[version, orderdate,
dt_updated]``. An order whose version matches its entry was already emitted
unchanged; a newer version is emitted again. Entries fall out once their
cursor is below anything a later run can query.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from miva_sync.sync.orders import cursor_value, order_id, version_key

Entry = list[Any]  # [version, orderdate, dt_updated]


class DedupeWindow:
    def __init__(self, entries: dict[str, Entry] | None = None) -> None:
        self.entries: dict[str, Entry] = dict(entries or {})

    def __contains__(self, order: dict[str, Any]) -> bool:
        """Seen before in exactly this version?"""
        entry = self.entries.get(str(order_id(order)))
        return entry is not None and entry[0] == version_key(order)

    def knows(self, oid: int) -> bool:
        return str(oid) in self.entries

    def add(self, order: dict[str, Any]) -> None:
        self.entries[str(order_id(order))] = [
            version_key(order),
            cursor_value(order, "orderdate"),
            cursor_value(order, "dt_updated"),
        ]

    def prune(self, keep: Callable[[int, Entry], bool]) -> None:
        """Drop entries a later run can no longer read back."""
        self.entries = {k: e for k, e in self.entries.items() if keep(int(k), e)}


def keep_from(field: str, floor: int) -> Callable[[int, Entry], bool]:
    """Keep entries whose cursor ``field`` is at or above ``floor`` (or unknown)."""
    position = {"orderdate": 1, "dt_updated": 2}

    def keep(oid: int, entry: Entry) -> bool:
        value = oid if field == "id" else entry[position[field]]
        # None (or, from a hand-edited state file, anything but an int): unknown
        return not isinstance(value, int) or value >= floor

    return keep

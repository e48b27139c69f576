"""Held orders: unpaid admin orders wait for payment (docs/design.md §5.8).

Miva's guide warns that orders created in the admin exist before they are
paid. With ``--require-payment`` an order with no payment record and
``pay_status`` 0 is held instead of emitted. Held ids live in the store's
record (``held``), are re-checked by id on later runs, and are emitted once
paid — or, with a warning, when the hold expires: orders paid by check, PO or
terms legitimately have no payment record and must not vanish.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from miva_sync.state.record import HeldEntry, StateRecord
from miva_sync.store.orders import cursor_value, order_id
from miva_sync.store.query import Condition, ListQuery, chunked

if TYPE_CHECKING:  # the client (and requests) only when a run reads the store
    from miva_sync.store.client import MivaClient

DEFAULT_HOLD_FOR = 24 * 3600

FetchByIds = Callable[[list[int]], list[dict[str, Any]]]


def is_unpaid(order: dict[str, Any]) -> bool:
    """No payment record and pay_status 0: an admin order not yet paid."""
    return not order.get("payments") and order.get("pay_status") in (0, "0", None)


def fetcher(client: MivaClient, base: ListQuery) -> FetchByIds:
    """Read orders by id, one ``id IN`` query per 100 ids.

    ``base`` carries the on-demand columns (and a passphrase, if any).
    """

    def fetch(ids: list[int]) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for batch in chunked(sorted(ids)):
            query = base.page(max(len(batch), 1)).where(Condition("id", "IN", batch))
            found.extend(client.list_orders(query).orders)
        return found

    return fetch


def with_payments(columns: tuple[str, ...]) -> tuple[str, ...]:
    """Payment records are needed to tell paid from unpaid."""
    return columns if "payments" in columns else (*columns, "payments")


@dataclass
class HeldOrders:
    """The held set of one store, and the decisions about it."""

    entries: dict[str, HeldEntry]
    require_payment: bool
    hold_for: int = DEFAULT_HOLD_FOR
    released: int = 0
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def from_record(
        cls, record: StateRecord | None, *, require_payment: bool, hold_for: int
    ) -> HeldOrders:
        held = record.get("held") if record else None
        return cls(dict(held or {}), require_payment, hold_for)

    def __len__(self) -> int:
        return len(self.entries)

    def ids(self) -> list[int]:
        return [int(k) for k in self.entries]

    def admit(self, order: dict[str, Any], now: int) -> bool:
        """Emit this order now? Otherwise it is (still) held."""
        key = str(order_id(order))
        entry = self.entries.get(key)
        if not self.require_payment or not is_unpaid(order):
            if entry is not None:
                self._release(key)
            return True
        if entry is None:
            self.entries[key] = {
                "since": now,
                "orderdate": cursor_value(order, "orderdate"),
            }
            return False
        if now - entry["since"] >= self.hold_for:
            self._release(key)
            self.warnings.append(
                f"order {key} is still unpaid after the {_hours(self.hold_for)} hold "
                "(paid by check, PO or terms?): emitted anyway"
            )
            return True
        return False

    def recheck(self, fetch: FetchByIds, now: int) -> list[dict[str, Any]]:
        """Re-read every held order by id; return those to emit now."""
        if not self.entries:
            return []
        found = {order_id(o): o for o in fetch(self.ids())}
        ready = []
        for oid in self.ids():
            order = found.get(oid)
            if order is None:
                self._release(str(oid))
                self.warnings.append(
                    f"held order {oid} is no longer in the store: dropped"
                )
            elif self.admit(order, now):
                ready.append(order)
        return ready

    def _release(self, key: str) -> None:
        del self.entries[key]
        self.released += 1


def _hours(seconds: int) -> str:
    return f"{seconds / 3600:g} h"

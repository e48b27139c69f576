"""The in-memory store: orders, their pre-serialised JSON, sorted indexes and queues.

Rows are serialised once when an order is created or changed (a base fragment
and one fragment per on-demand column), so a page is a string join. Sorted
indexes per column are built lazily and dropped on any change.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import time
import zlib
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from miva_sync.sandbox import catalog
from miva_sync.sandbox.columns import (
    BASE_COLUMNS,
    CUSTOM_FIELDS,
    ONDEMAND_COLUMNS,
    ORDER_KEYS,
    PAYMENT_DATA,
    SEARCHABLE,
    SORTABLE,
)
from miva_sync.sandbox.filters import (
    ParsedFilter,
    QueryError,
    RangeHint,
    parse_filters,
    parse_sort,
    sort_key,
)
from miva_sync.sandbox.generator import OrderFactory, generate_store, shift_dates
from miva_sync.sandbox.quirks import NO_QUIRKS, Quirks

Order = dict[str, Any]
Listener = Callable[[str, Order], None]
TIE_ORDERS = ("id", "id-desc", "random")
DEFAULT_QUEUE = "new_updated_orders"
WORKFLOW_MODULE = "orderworkflow"  # the module code of the queue functions
RECEIVED_QUEUE = "received_orders"


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


@dataclass
class Row:
    """One order and its JSON fragments."""

    order: Order
    base: str  # the base columns as a JSON object missing its closing brace
    ondemand: dict[str, str]  # column -> ',"column":<json>'


@dataclass
class Queue:
    """A workflow queue; ``ack`` False means a download moves orders out at once."""

    code: str
    ack: bool = True
    feed: bool = True  # new and updated orders enter it
    ids: set[int] = field(default_factory=set)


@dataclass
class Columns:
    """The on-demand columns one request asked for, resolved."""

    names: list[str]
    custom_fields: list[tuple[str, str]] | None = None  # None: not requested
    payment_data: bool = False


class Store:
    """A Miva store's orders and order-workflow queues; every method is thread-safe."""

    def __init__(
        self,
        orders: int = 100,
        seed: int = 1,
        *,
        tie_order: str = "random",
        supports_dt_updated: bool = True,
        clock: Callable[[], float] = time.time,
        burst_size: int | None = None,
        late_numbers: int | None = None,
        default_queue: str = DEFAULT_QUEUE,
        anchor: float | None = None,
        quirks: Quirks = NO_QUIRKS,
    ) -> None:
        if tie_order not in TIE_ORDERS:
            raise ValueError(f"tie_order must be one of {TIE_ORDERS}")
        self.tie_order = tie_order
        self.supports_dt_updated = supports_dt_updated
        self.quirks = quirks
        self.clock = clock
        self.default_queue = default_queue
        self.searchable = (
            SEARCHABLE | {"dt_updated"} if supports_dt_updated else SEARCHABLE
        )
        self.sortable = SORTABLE | {"dt_updated"} if supports_dt_updated else SORTABLE
        self._base_columns = [
            c for c in BASE_COLUMNS if supports_dt_updated or c != "dt_updated"
        ]
        self._lock = threading.RLock()
        self._tie_rng = random.Random(f"ties:{seed}")
        self._seed = seed  # the unsorted-queue quirk's scramble
        self._listeners: list[Listener] = []
        self._index: dict[str, tuple[list[Any], list[int]]] = {}
        self._results: dict[tuple[str, str | None], tuple[list[Any], list[int]]] = {}
        # generated dates are offsets back from the anchor (default: now); a fixed
        # anchor gives the same data on every start, e.g. for a resumable demo
        now = int(anchor) if anchor is not None else self.now()
        self._factory = OrderFactory(random.Random(f"orders:{seed}"), now)
        generated = generate_store(
            orders,
            seed,
            now,
            burst_size=burst_size,
            late_numbers=late_numbers,
            factory=self._factory,
        )
        self._rows = {o["id"]: self._serialise(o) for o in generated.orders}
        self._hidden = generated.hidden
        # orders a test took out of view (hide), to come back unchanged (unhide)
        self._withheld: dict[int, Order] = {}
        self._next_id = generated.next_id
        self.skipped_ids: list[int] = generated.skipped
        self.bursts: list[list[int]] = generated.bursts
        self.late_ids: list[int] = generated.late
        self._queues = {
            default_queue: Queue(default_queue, ack=True, ids=set(self._rows)),
            RECEIVED_QUEUE: Queue(RECEIVED_QUEUE, ack=True, feed=False),
        }

    # --- clock and listeners --------------------------------------------------------

    def now(self) -> int:
        """The store's clock in unix seconds."""
        return int(self.clock())

    def subscribe(self, listener: Listener) -> None:
        """Call ``listener(event, order)`` after each new, updated, revealed or paid order."""
        self._listeners.append(listener)

    # --- reading ----------------------------------------------------------------------

    def orders_snapshot(self) -> list[Order]:
        """Deep copies of the visible orders, by id."""
        with self._lock:
            return [copy.deepcopy(self._rows[i].order) for i in sorted(self._rows)]

    def ids(self) -> list[int]:
        """The visible order ids, sorted (cheap: no copies)."""
        with self._lock:
            return sorted(self._rows)

    def order(self, order_id: int) -> Order:
        """A deep copy of one visible order (KeyError if not visible)."""
        with self._lock:
            return copy.deepcopy(self._rows[order_id].order)

    def hidden_ids(self) -> list[int]:
        """Reserved ("late") order numbers that are not visible yet."""
        with self._lock:
            return sorted(self._hidden)

    def __len__(self) -> int:
        return len(self._rows)

    # --- changing orders ----------------------------------------------------------------

    def add_order(self, **overrides: Any) -> Order:
        """Create an order now (next id unless ``id=`` is given); it enters the queues.

        ``kind=`` picks "card", "paypal", "check" or "admin" (unpaid).
        """
        kind = overrides.pop("kind", None)
        _check_keys(overrides, extra={"id"})
        with self._lock:
            order_id = overrides.pop("id", None) or self._next_id
            if (
                order_id in self._rows
                or order_id in self._hidden
                or order_id in self._withheld
            ):
                raise ValueError(f"order {order_id} already exists")
            now = self.now()
            order = self._factory.make(order_id, now, now, kind=kind)
            order.update(overrides)
            order.setdefault("dt_updated", now)
            self._next_id = max(self._next_id, order_id + 1)
            return self._put(order, "created")

    def update_order(
        self, order_id: int, dt_updated: int | None = None, **changes: Any
    ) -> Order:
        """Change an order; dt_updated moves to now (or the given time); it re-enters queues."""
        with self._lock:
            order = self._changed_copy(order_id, changes)
            order["dt_updated"] = self.now() if dt_updated is None else dt_updated
            return self._put(order, "updated")

    def reveal(self, order_id: int) -> Order:
        """A reserved number completes now: it becomes visible with orderdate = now."""
        with self._lock:
            order = self._hidden.pop(order_id)
            now = self.now()
            shift_dates(order, now - order["orderdate"])
            order["orderdate"] = order["dt_updated"] = now
            return self._put(order, "created")

    def pay(self, order_id: int) -> Order:
        """An unpaid admin order gets a captured payment; dt_updated moves to now."""
        with self._lock:
            order = copy.deepcopy(self._rows[order_id].order)
            if (
                order["payments"]
                or order["payment_module"] == catalog.CHECK_MODULE_CODE
            ):
                raise ValueError(f"order {order_id} is not an unpaid admin order")
            now = self.now()
            self._factory.add_payment(order, catalog.CARD_MODULE, 5, now)
            order["dt_updated"] = now
            return self._put(order, "updated")

    def _changed_copy(self, order_id: int, changes: dict[str, Any]) -> Order:
        """A copy of the order with ``changes`` applied (note_count follows notes)."""
        _check_keys(changes)
        order = copy.deepcopy(self._rows[order_id].order)
        order.update(changes)
        if "notes" in changes:
            order["note_count"] = len(order["notes"])
        return order

    # --- behind a tool's back (how tests force gaps for `verify`) ----------------------------

    def hide(self, order_id: int) -> None:
        """Take a visible order out of every answer, unchanged, until :meth:`unhide`.

        No event, no queue change: a pull running meanwhile simply never sees it,
        which is how a test forces a gap in an output.
        """
        with self._lock:
            self._withheld[order_id] = self._rows.pop(order_id).order
            self._changed(orders=True)

    def unhide(self, order_id: int) -> Order:
        """Bring a hidden order back exactly as it was (same dates, no event)."""
        with self._lock:
            order = self._withheld.pop(order_id)
            self._rows[order_id] = self._serialise(order)
            self._changed(orders=True)
            return copy.deepcopy(order)

    def set_silently(self, order_id: int, **changes: Any) -> Order:
        """Change an order without the store noticing: dt_updated moves only if
        given, the order enters no queue and no listener (webhook) hears of it."""
        with self._lock:
            order = self._changed_copy(order_id, changes)
            self._rows[order_id] = self._serialise(order)
            self._changed(orders=True)
            return copy.deepcopy(order)

    def delete(self, order_id: int) -> None:
        """Remove an order for good (visible or hidden): gone from every queue too."""
        with self._lock:
            if self._rows.pop(order_id, None) is None:
                del self._withheld[order_id]  # KeyError for an unknown order
            for queue in self._queues.values():
                queue.ids.discard(order_id)
            self._changed(orders=True)

    # --- queues ---------------------------------------------------------------------------

    def create_queue(self, code: str, ack: bool = True, fill: bool = True) -> None:
        """Add (or reconfigure) a queue fed with new and updated orders.

        ``fill`` puts every visible order in it at once, like a fresh default queue.
        """
        if code == RECEIVED_QUEUE:
            raise ValueError(f"{RECEIVED_QUEUE} is the sandbox's received queue")
        with self._lock:
            queue = self._queues.setdefault(code, Queue(code))
            queue.ack = ack
            if fill:
                queue.ids |= set(self._rows)
            self._changed()

    def queue_ids(self, code: str) -> list[int]:
        """Ids currently in a queue (KeyError for an unknown queue)."""
        with self._lock:
            return sorted(self._queues[code].ids)

    def enqueue(self, order_id: int, code: str | None = None) -> None:
        """Put a visible order in a queue (the default queue unless ``code``)."""
        with self._lock:
            if order_id not in self._rows:
                raise KeyError(order_id)
            self._queues[code or self.default_queue].ids.add(order_id)
            self._changed()

    def acknowledge(self, order_ids: Any) -> int:
        """OrderList_Acknowledge: 1 when every id is a visible order, else 0 and no change.

        Acknowledged orders leave every acknowledgement-mode queue and enter the
        received queue, even if updated since they were downloaded.
        """
        if not isinstance(order_ids, list) or not order_ids:
            return 0
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in order_ids):
            return 0
        with self._lock:
            if not all(i in self._rows for i in order_ids):
                return 0
            if self.quirks.strict_ack and not set(order_ids) <= self._waiting_ids():
                return 0
            for queue in self._queues.values():
                if queue.feed and queue.ack:
                    queue.ids.difference_update(order_ids)
            self._queues[RECEIVED_QUEUE].ids.update(order_ids)
            if self.quirks.ack_rewrites_order:
                for order_id in order_ids:
                    self._write_queue_flags(order_id)
            self._changed(orders=self.quirks.ack_rewrites_order)
        return 1

    def _waiting_ids(self) -> set[int]:
        """Orders waiting for an acknowledgement in some queue."""
        waiting: set[int] = set()
        for queue in self._queues.values():
            if queue.feed and queue.ack:
                waiting |= queue.ids
        return waiting

    def _write_queue_flags(self, order_id: int) -> None:
        """The ack-rewrites-order quirk: the workflow module records the order's
        queue membership in its own custom fields (dt_updated stays, no event)."""
        order = copy.deepcopy(self._rows[order_id].order)
        order[CUSTOM_FIELDS][WORKFLOW_MODULE] = {
            code: "1" if order_id in queue.ids else "0"
            for code, queue in sorted(self._queues.items())
        }
        self._rows[order_id] = self._serialise(order)

    # --- the list query -------------------------------------------------------------------

    def query(self, payload: dict[str, Any], queue_code: str | None = None) -> str:
        """Answer OrderList_Load_Query (or a queue's) as the response's JSON text."""
        count = _paging(payload, "Count")
        offset = _paging(payload, "Offset")
        lenient = self.quirks.lenient_fields
        parsed = parse_filters(payload.get("Filter"), self.searchable, lenient=lenient)
        sort_field, descending = parse_sort(
            payload.get("Sort"), self.sortable, lenient=lenient
        )
        if sort_field in self.quirks.ignore_sort:
            sort_field, descending = "id", False  # accepted, then ignored
        columns = self._columns(parsed.columns, payload.get("Passphrase"))
        with self._lock:
            queue = None
            if queue_code is not None:
                queue = self._queues.get(queue_code)
                if queue is None and self.quirks.unknown_queue_empty:
                    return (
                        '{"success":1,"data":{"total_count":0,'
                        f'"start_offset":{offset},"data":[]}}}}'
                    )
                if queue is None:
                    raise QueryError(
                        "invalid_queue", f"Invalid queue code '{queue_code}'"
                    )
            keys, ids = self._cached_matches(payload, parsed, sort_field, queue)
            if queue is not None and self.quirks.unsorted_queue:
                keys, ids = self._scrambled(ids)  # Sort accepted, then ignored
            elif descending:
                keys, ids = keys[::-1], ids[::-1]
            page = self._window(keys, ids, offset, count)
            rows = [self._render(self._rows[i], columns) for i in page]
            if queue is not None and not queue.ack and queue.feed and page:
                queue.ids.difference_update(page)
                self._queues[RECEIVED_QUEUE].ids.update(page)
                self._changed()
        return (
            f'{{"success":1,"data":{{"total_count":{len(ids)},'
            f'"start_offset":{offset},"data":[{",".join(rows)}]}}}}'
        )

    def _scrambled(self, ids: list[int]) -> tuple[list[Any], list[int]]:
        """The unsorted-queue quirk: the store's own order, stable for a seed
        (as a real store's storage order would be) and not by id. The keys are
        the ids themselves, so no two rows count as a tie."""
        order = sorted(ids, key=lambda i: zlib.crc32(f"{self._seed}:{i}".encode()))
        return list(order), order

    def _columns(self, requested: list[str], passphrase: Any) -> Columns:
        wanted = set(requested)
        names = [c for c in ONDEMAND_COLUMNS if c in wanted]
        result = Columns(names)
        for col in requested:
            module, _, rest = col.partition(":")
            if module == CUSTOM_FIELDS and rest:
                scope, _, code = rest.partition(":")
                result.custom_fields = result.custom_fields or []
                result.custom_fields.append((scope, code or "*"))
        if PAYMENT_DATA in wanted:
            if not passphrase:
                raise QueryError(
                    "passphrase_required",
                    "payment_data requires a Passphrase",
                    "Passphrase",
                )
            result.payment_data = True
        return result

    def _cached_matches(
        self,
        payload: dict[str, Any],
        parsed: ParsedFilter,
        sort_field: str,
        queue: Queue | None,
    ) -> tuple[list[Any], list[int]]:
        """Matches, remembered until the store changes: a client paging through one
        query at growing offsets pays for the filter once."""
        key = (
            _dumps([payload.get("Filter"), sort_field]),
            queue.code if queue is not None else None,
        )
        found = self._results.get(key)
        if found is None:
            found = self._matches(parsed, sort_field, queue)
            if len(self._results) >= 16:
                self._results.pop(next(iter(self._results)))
            self._results[key] = found
        return found

    def _matches(
        self, parsed: ParsedFilter, sort_field: str, queue: Queue | None
    ) -> tuple[list[Any], list[int]]:
        """Matching rows as parallel (sort keys, ids) lists, ascending by key then id."""
        members = queue.ids if queue is not None else None
        hint = self._tightest(parsed.ranges)
        if (
            hint is not None
            and parsed.exact
            and members is None
            and all(h.field == hint.field for h in parsed.ranges)
        ):
            # The whole filter is ranges on one indexed field (GE lo, or a
            # window GE lo AND LE hi): answer from the index alone, as a
            # database would, intersecting the bisections, no row scan.
            keys, ids = self._sorted(hint.field)
            bounds = [self._bounds(keys, h) for h in parsed.ranges]
            lo = max(b[0] for b in bounds)
            hi = max(lo, min(b[1] for b in bounds))
            if hint.field == sort_field:
                return keys[lo:hi], ids[lo:hi]
            return self._order(set(ids[lo:hi]), sort_field)
        candidates: Iterable[int] = self._rows
        if hint is not None:
            keys, ids = self._sorted(hint.field)
            lo, hi = self._bounds(keys, hint)
            candidates = ids[lo:hi]
        predicate = parsed.predicate
        if members is None and predicate is None:
            return self._sorted(sort_field)
        rows = self._rows
        matched = {
            i
            for i in candidates
            if (members is None or i in members)
            and (predicate is None or predicate(rows[i].order))
        }
        return self._order(matched, sort_field)

    def _order(self, matched: set[int], sort_field: str) -> tuple[list[Any], list[int]]:
        if len(matched) * 4 > len(self._rows):
            # Many matches: walk the sorted index rather than sorting again.
            all_keys, all_ids = self._sorted(sort_field)
            keep = [n for n, i in enumerate(all_ids) if i in matched]
            return [all_keys[n] for n in keep], [all_ids[n] for n in keep]
        key = sort_key(sort_field)
        pairs = sorted((key(self._rows[i].order), i) for i in matched)
        return [k for k, _ in pairs], [i for _, i in pairs]

    def _tightest(self, hints: list[RangeHint]) -> RangeHint | None:
        """The range hint that leaves the fewest rows, found by bisection."""
        best, size = None, -1
        for hint in hints:
            lo, hi = self._bounds(self._sorted(hint.field)[0], hint)
            if best is None or hi - lo < size:
                best, size = hint, hi - lo
        return best

    @staticmethod
    def _bounds(keys: list[Any], hint: RangeHint) -> tuple[int, int]:
        lo, hi, v = 0, len(keys), hint.value
        if hint.operator in ("EQ", "GE"):
            lo = bisect_left(keys, v)
        elif hint.operator == "GT":
            lo = bisect_right(keys, v)
        if hint.operator in ("EQ", "LE"):
            hi = bisect_right(keys, v)
        elif hint.operator == "LT":
            hi = bisect_left(keys, v)
        return lo, max(lo, hi)

    def _sorted(self, name: str) -> tuple[list[Any], list[int]]:
        cached = self._index.get(name)
        if cached is None:
            key = sort_key(name)
            pairs = sorted((key(r.order), i) for i, r in self._rows.items())
            cached = ([k for k, _ in pairs], [i for _, i in pairs])
            self._index[name] = cached
        return cached

    def _window(
        self, keys: list[Any], ids: list[int], offset: int, count: int
    ) -> list[int]:
        """The page's ids, ties (equal sort keys) ordered by the tie order."""
        n = len(ids)
        if offset >= n:
            return []
        end = n if count == 0 else min(n, offset + count)
        start = offset
        while start > 0 and keys[start - 1] == keys[offset]:
            start -= 1
        stop = end
        while stop < n and keys[stop] == keys[end - 1]:
            stop += 1
        out: list[int] = []
        i = start
        while i < stop:
            j = i + 1
            while j < stop and keys[j] == keys[i]:
                j += 1
            group = ids[i:j]
            if self.tie_order == "id":
                group.sort()
            elif self.tie_order == "id-desc":
                group.sort(reverse=True)
            elif len(group) > 1:
                self._tie_rng.shuffle(group)
            out.extend(group)
            i = j
        return out[offset - start : end - start]

    def _render(self, row: Row, columns: Columns) -> str:
        parts = [row.base]
        for name in columns.names:
            if name == "payments" and columns.payment_data:
                continue
            parts.append(row.ondemand[name])
        if columns.payment_data:
            parts.append(
                ',"payments":' + _dumps(_with_payment_data(row.order["payments"]))
            )
        if columns.custom_fields is not None:
            parts.append(_custom_fields(row, columns.custom_fields))
        parts.append("}")
        return "".join(parts)

    # --- internals ---------------------------------------------------------------------------

    def _serialise(self, order: Order) -> Row:
        base = _dumps({c: order[c] for c in self._base_columns})[:-1]
        ondemand = {c: f',"{c}":{_dumps(order[c])}' for c in ONDEMAND_COLUMNS}
        ondemand[CUSTOM_FIELDS] = f',"{CUSTOM_FIELDS}":{_dumps(order[CUSTOM_FIELDS])}'
        return Row(order, base, ondemand)

    def _changed(self, orders: bool = False) -> None:
        """Forget remembered results after a change; indexes too if orders changed."""
        if orders:
            self._index.clear()
        self._results.clear()

    def _put(self, order: Order, event: str) -> Order:
        """Store a changed order, put it in every feed queue, tell the listeners."""
        order = copy.deepcopy(order)
        self._rows[order["id"]] = self._serialise(order)
        self._changed(orders=True)
        for queue in self._queues.values():
            if queue.feed:
                queue.ids.add(order["id"])
        for listener in self._listeners:
            listener(event, copy.deepcopy(order))
        return copy.deepcopy(order)


def _check_keys(changes: dict[str, Any], extra: Iterable[str] = ()) -> None:
    unknown = set(changes) - ORDER_KEYS - set(extra)
    if unknown:
        raise ValueError(f"unknown order fields: {', '.join(sorted(unknown))}")


def _paging(payload: dict[str, Any], name: str) -> int:
    raw = payload.get(name)
    if raw is None or raw == "":
        return 0
    try:
        if isinstance(raw, bool):
            raise ValueError
        value = int(raw) if not isinstance(raw, float) or raw.is_integer() else -1
    except (TypeError, ValueError):
        value = -1
    if value < 0:
        raise QueryError(
            "invalid_paging", f"{name} must be a non-negative integer", name
        )
    return value


def _with_payment_data(payments: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for payment in payments:
        row = dict(payment, decrypt_status="Decrypted", decrypt_error="")
        last4 = (
            payment["description"][-4:] if payment["description"][-4:].isdigit() else ""
        )
        row["data"] = {"cc_last4": last4, "cc_exp": "12/30"} if last4 else {}
        out.append(row)
    return out


def _custom_fields(row: Row, wanted: list[tuple[str, str]]) -> str:
    values: dict[str, dict[str, Any]] = row.order[CUSTOM_FIELDS]
    if ("*", "*") in wanted:
        return row.ondemand[CUSTOM_FIELDS]
    picked: dict[str, dict[str, Any]] = {}
    for scope, code in wanted:
        for module, fields in values.items():
            if scope not in ("*", module):
                continue
            chosen = (
                fields
                if code == "*"
                else {k: v for k, v in fields.items() if k == code}
            )
            picked.setdefault(module, {}).update(chosen)
    return f',"{CUSTOM_FIELDS}":{_dumps(picked)}'

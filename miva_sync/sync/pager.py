"""The tie-order-proof keyset pager (design.md §5, "Ties and paging").

Timestamps are whole seconds and hundreds of orders can share one; the order
of ties is undocumented. So: read ``cursor >= lo`` sorted by the cursor; a
short page is the last; otherwise yield the rows below the page's last value
``v`` and read again from ``v``. Only when a whole page is one tie group is
that group paged by ``cursor = v AND id > last`` sorted by id (ids are
unique), and the walk continues with ``cursor > v``. No offsets: orders that
change while we page cannot shift others out of view.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any

from miva_sync.client import Page
from miva_sync.errors import ApiError
from miva_sync.query import Condition, ListQuery
from miva_sync.sync.orders import cursor_value, order_id

Fetch = Callable[[ListQuery], Page]


@dataclass(frozen=True)
class Chunk:
    """Orders to emit, and how far the output is complete once they are written.

    ``complete_below``: every matching order whose cursor is below it has been
    yielded by now (None: no new bound). ``last`` marks the final chunk.
    """

    orders: list[dict[str, Any]]
    complete_below: int | None
    total_count: int | None = None
    last: bool = False


def iter_chunks(
    fetch: Fetch,
    base: ListQuery,
    field: str,
    lo: int,
    hi: int | None = None,
) -> Generator[Chunk, None, None]:
    """Walk every order with ``lo <= field [<= hi]`` exactly once per run."""
    unique = field == "id"
    size = base.count
    lower = Condition(field, "GE", lo)
    first = True
    while True:
        query = base.where(lower)
        if hi is not None:
            query = query.where(Condition(field, "LE", hi))
        page = fetch(query.sorted_by(field))
        total = page.total_count if first else None
        first = False
        rows = page.orders
        values = [cursor_value(r, field) for r in rows]
        known = [v for v in values if v is not None]
        _check_progress(known, lower)
        if len(rows) < size or not known:
            top = max(known) if known else None
            yield Chunk(rows, top, total, last=True)
            return
        v = max(known)
        if unique:
            yield Chunk(rows, v, total)
            lower = Condition(field, "GT", v)
            continue
        below = [
            r
            for r, value in zip(rows, values, strict=True)
            if value is None or value < v
        ]
        if below:
            yield Chunk(below, v, total)
            lower = Condition(field, "GE", v)
            continue
        # the whole page shares one value: page that tie group by id
        yield from _tie_group(fetch, base, field, v, total)
        lower = Condition(field, "GT", v)


def _tie_group(
    fetch: Fetch, base: ListQuery, field: str, v: int, total: int | None
) -> Iterator[Chunk]:
    last_id: int | None = None
    while True:
        query = base.where(Condition(field, "EQ", v))
        if last_id is not None:
            query = query.where(Condition("id", "GT", last_id))
        rows = fetch(query.sorted_by("id")).orders
        if rows:
            ids = [order_id(r) for r in rows]
            if last_id is not None:
                _check_progress(ids, Condition("id", "GT", last_id))
            last_id = max(ids)
        # rows at v are not complete until the group ends: bound stays at v
        yield Chunk(rows, v, total)
        total = None
        if len(rows) < base.count:
            return


def _check_progress(values: list[int], lower: Condition) -> None:
    """Refuse a page that breaks its own filter: paging on it could loop forever."""
    bound = int(lower.value)
    if any(v < bound or (lower.operator == "GT" and v == bound) for v in values):
        raise ApiError(
            f"the store returned orders outside the requested range ({lower.field} "
            f"{lower.operator} {bound}); it does not apply the filter, so paging "
            "cannot be trusted"
        )

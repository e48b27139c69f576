"""Every page is verified before anything of it is emitted (issue 18, findings 1-2).

A store that ignores the sort, or answers without the cursor field, must stop
the walk with exit 5 and a line naming the mode, what the store did and the way
out, never exit 0 with a gap. These cases drive the pager with a scripted store
(each check alone); tests/e2e/test_pager_verify.py runs the real CLI against
the sandbox with the matching quirk (miva_sync/sandbox/quirks.py).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from miva_sync.errors import UntrustedAnswerError
from miva_sync.store.client import Page
from miva_sync.store.query import ListQuery
from miva_sync.sync.pager import iter_chunks

Order = dict[str, Any]


def orders(pairs: list[tuple[int, int]]) -> list[Order]:
    """Orders as ``(id, dt_updated)`` pairs."""
    return [{"id": i, "dt_updated": v} for i, v in pairs]


def store_answering(
    rows: list[Order], *, sort_by: Callable[[Order], Any] | None = None
) -> Callable[[ListQuery], Page]:
    """A store that filters honestly and sorts by ``sort_by`` (None: as asked)."""

    def fetch(query: ListQuery) -> Page:
        matching = [r for r in rows if all(_matches(r, g) for g in query.groups)]
        field = (query.sort or "id").lstrip("-")
        key = sort_by or (lambda r: (r.get(field, 0), r["id"]))
        matching.sort(key=key)
        return Page(matching[: query.count], len(matching), 0)

    return fetch


def _matches(row: Order, group: tuple[Any, ...]) -> bool:
    ops = {
        "GE": lambda a, b: a >= b,
        "GT": lambda a, b: a > b,
        "LE": lambda a, b: a <= b,
        "EQ": lambda a, b: a == b,
    }
    # a row without the field matches: the store ignores what it does not know
    return any(
        c.field not in row or ops[c.operator](row[c.field], int(c.value)) for c in group
    )


def walk(fetch: Callable[[ListQuery], Page], field: str = "dt_updated") -> list[int]:
    base = ListQuery(count=3)
    return [o["id"] for c in iter_chunks(fetch, base, field, 0) for o in c.orders]


def test_an_honest_store_is_walked_whole() -> None:
    rows = orders([(1, 10), (2, 20), (3, 30), (4, 40), (5, 50), (6, 60), (7, 15)])
    assert sorted(walk(store_answering(rows))) == [1, 2, 3, 4, 5, 6, 7]


def test_a_page_out_of_order_is_refused() -> None:
    # id order, and id 2 was updated after id 3: 10, 99, 30
    rows = orders([(1, 10), (2, 99), (3, 30), (4, 40), (5, 50)])
    fetch = store_answering(rows, sort_by=lambda r: r["id"])
    with pytest.raises(UntrustedAnswerError, match="out of order"):
        walk(fetch)


def test_an_in_order_page_that_skipped_rows_is_caught_by_the_count() -> None:
    # pages in id order happen to be sorted, but id 7 (15) sits between them:
    # the first page moves the bound to 30 and 15 would never be asked for again
    rows = orders([(1, 10), (2, 20), (3, 30), (4, 40), (5, 50), (6, 60), (7, 15)])
    fetch = store_answering(rows, sort_by=lambda r: r["id"])
    with pytest.raises(UntrustedAnswerError, match="skipped orders between pages"):
        walk(fetch)


def test_a_row_without_the_cursor_field_is_refused() -> None:
    rows = orders([(1, 10), (2, 20), (3, 30), (4, 40)])
    del rows[1]["dt_updated"]
    fetch = store_answering(rows, sort_by=lambda r: r["id"])
    with pytest.raises(UntrustedAnswerError, match="without a usable dt_updated"):
        walk(fetch)


def test_number_mode_needs_ids_strictly_ascending() -> None:
    rows = [{"id": i} for i in (1, 2, 3, 4, 5)]
    fetch = store_answering(rows, sort_by=lambda r: -r["id"])
    with pytest.raises(UntrustedAnswerError, match="out of order"):
        walk(fetch, field="id")


def test_a_tie_group_is_paged_by_ascending_id() -> None:
    # a whole page at one second: the pager pages the group by id; a store that
    # ignores that sort (ids descending) would make it skip the group's rest
    rows = orders([(i, 50) for i in range(1, 8)] + [(8, 60)])
    assert sorted(walk(store_answering(rows))) == list(range(1, 9))
    descending = store_answering(rows, sort_by=lambda r: (r["dt_updated"], -r["id"]))
    with pytest.raises(UntrustedAnswerError, match="out of order"):
        walk(descending)


def test_a_tie_group_filter_that_is_ignored_is_refused() -> None:
    rows = orders([(i, 50) for i in range(1, 8)] + [(8, 60)])
    honest = store_answering(rows)

    def ignores_eq(query: ListQuery) -> Page:
        if any(c.operator == "EQ" for g in query.groups for c in g):
            return Page(sorted(rows, key=lambda r: r["id"])[: query.count], 8, 0)
        return honest(query)

    # the group's second page: ids above the last one, but also at 60
    with pytest.raises(UntrustedAnswerError):
        walk(ignores_eq)


def test_orders_updated_out_of_a_tie_group_while_it_is_paged_are_no_alarm() -> None:
    """An update moves dt_updated up to now, out of a range closed at the top:
    there the count cannot prove a skip, and must not raise a false one."""
    rows = orders([(i, 50) for i in range(1, 11)] + [(11, 60)])
    honest = store_answering(rows)
    tie_queries = 0

    def updates_while_paging(query: ListQuery) -> Page:
        nonlocal tie_queries
        if any(c.operator == "EQ" for g in query.groups for c in g):
            tie_queries += 1
            if tie_queries == 2:  # orders 9 and 10 are updated now
                rows[8]["dt_updated"] = rows[9]["dt_updated"] = 999
        return honest(query)

    assert sorted(walk(updates_while_paging)) == list(range(1, 12))
    assert tie_queries >= 2


# -- end to end: the real CLI against the sandbox with each quirk -------------------


def test_rows_above_an_upper_bound_of_zero_are_refused() -> None:
    """``--to-order 0`` is a bound too: a store ignoring ``id LE 0`` is caught."""
    rows = [{"id": i} for i in (0, 1, 2)]

    def ignores_filters(query: ListQuery) -> Page:
        return Page(rows[: query.count], len(rows), 0)

    with pytest.raises(UntrustedAnswerError, match="outside the requested range"):
        list(iter_chunks(ignores_filters, ListQuery(count=5), "id", 0, hi=0))

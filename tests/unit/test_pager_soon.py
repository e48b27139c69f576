"""The next page is on its way while this one is written (docs/design.md §5.2).

The pager guesses the next query from a page's raw bytes (store/peek.py) and
sends it before the parse; the early answer is used only for the very query
the verified page calls for. A wrong guess costs one request and stops the
guessing; it never changes what is written.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from miva_sync.store.client import Page
from miva_sync.store.peek import cursor_span, total_count
from miva_sync.store.query import ListQuery
from miva_sync.sync.pager import iter_chunks

Order = dict[str, Any]


class Store:
    """Answers list queries over fixed rows and logs each one sent."""

    def __init__(self, rows: list[Order]) -> None:
        self.rows = rows
        self.sent: list[ListQuery] = []
        self.discarded: list[ListQuery] = []
        self.events: list[str] = []  # "send" and "parse", in order

    def answer(self, query: ListQuery) -> Page:
        matching = [r for r in self.rows if all(_matches(r, g) for g in query.groups)]
        field = (query.sort or "id").lstrip("-")
        matching.sort(key=lambda r: (r[field], r["id"]))
        return Page(matching[: query.count], len(matching), 0)

    def fetch(self, query: ListQuery) -> Page:
        self.sent.append(query)
        return self.answer(query)

    def fetch_soon(self, query: ListQuery) -> Pending:
        self.sent.append(query)
        self.events.append("send")
        return Pending(self, query)


class Pending:
    """A page sent at once; its bytes are the store's JSON answer."""

    def __init__(self, store: Store, query: ListQuery) -> None:
        self.store, self.query = store, query
        self._page = store.answer(query)

    def content(self) -> bytes:
        body = {
            "success": 1,
            "data": {"total_count": self._page.total_count, "data": self._page.orders},
        }
        return json.dumps(body).encode()

    def page(self) -> Page:
        self.store.events.append("parse")
        return self._page

    def discard(self) -> None:
        self.store.discarded.append(self.query)


def _matches(row: Order, group: tuple[Any, ...]) -> bool:
    ops: dict[str, Callable[[int, int], bool]] = {
        "GE": lambda a, b: a >= b,
        "GT": lambda a, b: a > b,
        "LE": lambda a, b: a <= b,
        "EQ": lambda a, b: a == b,
    }
    return any(ops[c.operator](row[c.field], int(c.value)) for c in group)


def walk(store: Store, field: str = "orderdate", count: int = 10) -> list[int]:
    chunks = iter_chunks(
        store.fetch, ListQuery(count=count), field, 0, fetch_soon=store.fetch_soon
    )
    return [o["id"] for chunk in chunks for o in chunk.orders]


def test_every_guess_is_the_next_query_so_no_request_is_wasted() -> None:
    store = Store([{"id": i, "orderdate": 100 + 3 * i} for i in range(1, 96)])
    assert sorted(walk(store)) == list(range(1, 96))
    # 95 orders in pages of 10 (each re-reading its last second): 11 queries,
    # each sent once, and none dropped
    assert len(store.sent) == len(set(store.sent)) == 11
    assert store.discarded == []
    # each next page was sent before the one before it was parsed
    assert store.events[:4] == ["send", "send", "parse", "send"]
    assert "parse, parse" not in ", ".join(store.events[:-1])  # (the last: no next)


def test_by_order_number_too() -> None:
    store = Store([{"id": i, "orderdate": 5} for i in range(1, 46)])
    assert walk(store, field="id") == list(range(1, 46))
    assert len(store.sent) == 5 and store.discarded == []


def test_a_wrong_guess_is_dropped_and_guessing_stops() -> None:
    # every order nests a later "orderdate" (a line item, say): the last one in
    # a page's bytes is not the page's last value, so the guess is wrong
    rows = [
        {"id": i, "orderdate": 100 + i, "items": [{"orderdate": 10_000 + i}]}
        for i in range(1, 46)
    ]
    store = Store(rows)
    assert sorted(walk(store)) == list(range(1, 46))
    assert len(store.discarded) == 1  # one wasted request, then no more guesses
    assert len(store.sent) == 6  # the five pages and the wrong guess


def test_a_tie_page_drops_its_guess() -> None:
    # 12 orders in one second, then more: the first page is a tie group
    rows = [{"id": i, "orderdate": 50} for i in range(1, 13)]
    rows += [{"id": i, "orderdate": 60 + i} for i in range(13, 40)]
    store = Store(rows)
    assert sorted(walk(store)) == list(range(1, 40))
    assert len(store.discarded) <= 1


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b'{"data":{"total_count":12,"data":[]}}', 12),
        (b'{"data":{"total_count" : 7 ,"data":[]}}', 7),
        (b'{"note":"total_count","total_count":3}', None),  # a value, not the key
        (b'{"total_count":"12"}', None),
        (b'{"total_count":1.5}', None),
        (b'{"total_count":-1}', None),
        (b"{}", None),
    ],
)
def test_total_count_is_read_only_where_it_is_a_plain_integer(
    content: bytes, expected: int | None
) -> None:
    assert total_count(content) == expected


def test_cursor_span_is_the_first_and_last_value() -> None:
    page = b'[{"id":1,"orderdate":10},{"id":2,"orderdate": 12},{"id":3,"orderdate":15}]'
    assert cursor_span(page, "orderdate") == (10, 15)
    assert cursor_span(page, "dt_updated") is None
    assert cursor_span(b'[{"orderdate":{"time_t":5}}]', "orderdate") is None
    # an escaped key inside a string is no key
    assert cursor_span(b'[{"n":"\\"orderdate\\":9","orderdate":4}]', "orderdate") == (
        4,
        4,
    )

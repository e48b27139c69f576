"""The tie-order-proof keyset pager (docs/design.md §5.2).

Timestamps are whole seconds and hundreds of orders can share one; the order
of ties is undocumented. So: read ``cursor >= lo`` sorted by the cursor; a
short page is the last; otherwise yield the rows below the page's last value
``v`` and read again from ``v``. Only when a whole page is one tie group is
that group paged by ``cursor = v AND id > last`` sorted by id (ids are
unique), and the walk continues with ``cursor > v``. No offsets: orders that
change while we page cannot shift others out of view.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from miva_sync.base.timespec import iso
from miva_sync.errors import UntrustedAnswerError
from miva_sync.store.client import Page
from miva_sync.store.orders import cursor_value, order_id
from miva_sync.store.peek import cursor_span, total_count
from miva_sync.store.query import Condition, ListQuery

Fetch = Callable[[ListQuery], Page]


class Upcoming(Protocol):
    """A page on its way (miva_sync.store.client.PendingPage)."""

    def content(self) -> bytes | None: ...

    def page(self) -> Page: ...

    def discard(self) -> None: ...


FetchSoon = Callable[[ListQuery], Upcoming]


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
    *,
    fetch_soon: FetchSoon | None = None,
) -> Generator[Chunk, None, None]:
    """Walk every order with ``lo <= field [<= hi]`` exactly once per run.

    Every page is verified before anything of it is yielded (docs/design.md
    §5.2): sorting and filtering on ``dt_updated`` are not
    confirmed for every store (docs/miva-api.md §4.3), and a store that ignores
    the sort would make the pager skip orders without a word. A page that
    fails raises :class:`UntrustedAnswerError`; nothing of it is yielded.

    ``fetch_soon``: sends a query at once and returns the page on its way.
    With it, the walk keeps the store busy while it parses and writes: as a
    page's bytes come in, the next query is guessed from them (store/peek.py)
    and sent before the page is parsed. The early answer is used only if the
    query the verified page calls for is that same query; a wrong guess is
    discarded (one wasted request) and guessing stops for the walk. At most
    one request is in flight.
    """
    unique = field == "id"
    size = base.count
    lower = Condition(field, "GE", lo)
    counts = _CountCheck(field, holds=hi is None or field != "dt_updated")
    # A page's rows are yielded as soon as the page is verified, but the bound
    # it claims (every order below its last value is out) only with the next
    # page's chunk: only the next query's count can show that the store skipped
    # none below it (no extra request: the walk makes that query anyway).
    # So no page is held back, and a page that fails the count check still
    # moves no cursor past a page it cannot vouch for.
    claim: int | None = None  # the last page's bound, waiting for that check
    upcoming: Upcoming | None = None
    guessed: tuple[ListQuery, Upcoming] | None = None
    guessing = fetch_soon is not None
    first = True
    try:
        while True:
            if upcoming is not None:
                if guessing and fetch_soon is not None:
                    query = _next_query(upcoming.content(), base, field, hi, unique)
                    guessed = (query, fetch_soon(query)) if query is not None else None
                page, upcoming = upcoming.page(), None
            else:
                page = fetch(_window(base, lower, field, hi))
            total = page.total_count if first else None
            first = False
            rows = page.orders
            values = _verified_values(rows, field, lower, hi, strictly=unique)
            counts.check(page.total_count, lower)
            if len(rows) < size:
                # a short page holds every order left, whatever order it came in
                bound = max(values) if values else claim
                yield Chunk(rows, bound, total, last=True)
                return
            v = values[-1]  # verified non-decreasing: the page's highest value
            if unique:
                chunk = Chunk(rows, claim, total)
                lower = Condition(field, "GT", v)
            else:
                below = [r for r, value in zip(rows, values, strict=True) if value < v]
                if not below:
                    # the whole page shares one value: page that tie group by id (its
                    # chunks keep the bound at v, so they claim nothing a later check covers)
                    if guessed is not None:  # a guess here was wasted: stop guessing
                        guessed[1].discard()
                        guessed, guessing = None, False
                    if claim is not None:
                        yield Chunk([], claim, total)  # this page's count vouched for it
                        total = None
                    tied = 0
                    for tie_chunk in _tie_group(fetch, base, field, v, total):
                        tied += len(tie_chunk.orders)
                        yield tie_chunk
                    counts.emitted(tied)
                    lower = Condition(field, "GT", v)
                    claim = None
                    continue
                chunk = Chunk(below, claim, total)
                del below  # (the chunk holds it)
                lower = Condition(field, "GE", v)
            counts.emitted(len(chunk.orders))
            claim = v
            if fetch_soon is not None:
                query = _window(base, lower, field, hi)
                if guessed is not None and guessed[0] == query:
                    upcoming = guessed[1]
                else:
                    if guessed is not None:  # a wrong guess: stop guessing
                        guessed[1].discard()
                        guessing = False
                    upcoming = fetch_soon(query)
                guessed = None
            yield chunk
            # the consumer is done with it: let the page go before the next one
            # is parsed (one parsed page in memory at a time, not two)
            del chunk, page, rows, values
    finally:
        # the walk ends early (an error, a consumer that stops): a page on its
        # way is not wanted
        for left in (upcoming, guessed[1] if guessed is not None else None):
            if left is not None:
                left.discard()


def _next_query(
    content: bytes | None, base: ListQuery, field: str, hi: int | None, unique: bool
) -> ListQuery | None:
    """The query that follows the page whose bytes are ``content``, if they
    show a full page that ends above where it starts (a guess: see iter_chunks)."""
    if content is None:
        return None
    remaining = total_count(content)
    span = cursor_span(content, field)
    if remaining is None or remaining <= base.count or span is None:
        return None  # the last page, or nothing to go by
    low, high = span
    if high < low or (high == low and not unique):
        return None  # a tie page is walked by id: no query to guess
    return _window(base, Condition(field, "GT" if unique else "GE", high), field, hi)


def _window(base: ListQuery, lower: Condition, field: str, hi: int | None) -> ListQuery:
    """The query for the rest of the walk: from ``lower`` (up to ``hi``), sorted."""
    query = base.where(lower)
    if hi is not None:
        query = query.where(Condition(field, "LE", hi))
    return query.sorted_by(field)


def _tie_group(
    fetch: Fetch, base: ListQuery, field: str, v: int, total: int | None
) -> Iterator[Chunk]:
    last_id: int | None = None
    counts = _CountCheck("id", holds=field != "dt_updated")
    while True:
        query = base.where(Condition(field, "EQ", v))
        after = Condition("id", "GT", last_id) if last_id is not None else None
        if after is not None:
            query = query.where(after)
        page = fetch(query.sorted_by("id"))
        rows = page.orders
        _verify_tie_page(rows, field, v, after)
        counts.check(page.total_count, after)
        if rows:
            last_id = order_id(rows[-1])  # verified ascending: the highest id
        # rows at v are not complete until the group ends: bound stays at v
        yield Chunk(rows, v, total)
        counts.emitted(len(rows))
        total = None
        if len(rows) < base.count:
            return


def _verified_values(
    rows: list[dict[str, Any]],
    field: str,
    lower: Condition,
    hi: int | None,
    *,
    strictly: bool,
) -> list[int]:
    """The rows' cursor values, once the page is shown to be what was asked for:
    every row has a usable value, inside the filter, in the requested order."""
    values: list[int] = []
    for row in rows:
        value = cursor_value(row, field)
        if value is None:
            raise UntrustedAnswerError(
                f"order {_shown_id(row)} came back without a usable {field} "
                f"(got {str(row.get(field))[:40]!r}), so the walk by {field} "
                "cannot go on from it"
            )
        values.append(value)
    _check_range(values, lower, hi)
    for before, after in itertools.pairwise(values):
        if after < before or (strictly and after == before):
            raise UntrustedAnswerError(
                f"a page sorted by {field} came back out of order "
                f"({_shown(field, before)} before {_shown(field, after)}): the store "
                f"does not sort on {field}, so paging by it would skip orders"
            )
    return values


def _verify_tie_page(
    rows: list[dict[str, Any]], field: str, v: int, after: Condition | None
) -> None:
    """A page of one tie group: every row at ``v``, ids ascending past ``after``."""
    for row in rows:
        if cursor_value(row, field) != v:
            raise UntrustedAnswerError(
                f"the store returned order {_shown_id(row)} for {field} EQ {v} "
                f"with {field} {str(row.get(field))[:40]!r}: it does not apply "
                "the filter, so paging cannot be trusted"
            )
    _verified_values(rows, "id", after or Condition("id", "GE", 0), None, strictly=True)


def _check_range(values: list[int], lower: Condition, hi: int | None) -> None:
    """Refuse a page that breaks its own filter: paging on it could loop forever."""
    bound = int(lower.value)
    outside = [
        v
        for v in values
        if v < bound
        or (lower.operator == "GT" and v == bound)
        or (hi is not None and v > hi)
    ]
    if outside:
        upper = f" and <= {hi}" if hi is not None else ""
        raise UntrustedAnswerError(
            f"the store returned orders outside the requested range ({lower.field} "
            f"{lower.operator} {bound}{upper}); it does not apply the filter, so "
            "paging cannot be trusted"
        )


class _CountCheck:
    """``total_count`` along one walk must agree with honest sorting.

    Each query asks for what is left above the last page's bound; the rows the
    walk emitted below that bound are all the matching rows below it, if the
    store sorted as asked. So the next count is at least the previous one less
    those rows (orders only join a range while we page: new, or updated to
    now). A store that ignores the sort yet happens to return an in-order page
    breaks this: the rows it never showed drop out of the next count.

    It holds only where no order can leave the range while we page: a range
    open at the top, or a field that never changes (``orderdate``, ``id``).
    An update moves an order's ``dt_updated`` up to now, out of a range closed
    at the top (a tie group, a ``--until`` window), so there the count proves
    nothing and is not checked; the order checks still run on every page.
    """

    def __init__(self, sort: str, *, holds: bool) -> None:
        self.sort = sort
        self.enabled = holds
        self.previous: int | None = None
        self.below = 0

    def emitted(self, rows: int) -> None:
        self.below += rows

    def check(self, total: int, lower: Condition | None) -> None:
        if self.enabled and self.previous is not None and lower is not None:
            least = self.previous - self.below
            if total < least:
                raise UntrustedAnswerError(
                    f"the store counted {total} orders with {lower.field} "
                    f"{lower.operator} {lower.value} where at least {least} were "
                    f"left: it skipped orders between pages, so it does not sort "
                    f"on {self.sort} as asked"
                )
        self.previous, self.below = total, 0


def _shown(field: str, value: int) -> str:
    """A cursor value as people read it: an order number, or a UTC time."""
    return f"#{value}" if field == "id" else iso(value)


def _shown_id(row: dict[str, Any]) -> str:
    value = row.get("id")
    return str(value)[:20] if value is not None else "(no id)"

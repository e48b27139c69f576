"""Property tests (issue 11): random data, random queries, random event sequences.

1. The query builder plus the sandbox agree with a brute-force evaluation of the
   same conditions over the store's orders: every operator, AND across groups,
   OR within one, nested SUBWHERE groups, sort order and Count/Offset paging.
2. The keyset pager (``iter_chunks``) returns every order exactly once whatever
   the tie order, page size and start, and ``complete_below`` never claims an
   order that has not been yielded yet.
3. Repeated pulls interleaved with store activity (new orders, late and
   back-dated ones within the lookback, updates, bursts in one second, changes
   made while a pull pages) never drop an order and never emit one version twice.

The evaluator below is written from the API facts (docs/miva-api.md §3.3-§3.4) and the
sandbox's documented choices (docs/sandbox.md, "Faithful vs. inferred"), not from
miva_sync/sandbox/filters.py, so that it can disagree with it. Where both sources
are silent it reads a number the way its column compares: text operators on a
number see its decimal text (``106`` for 106.0) and on a boolean ``1`` or ``0``.
"""

from __future__ import annotations

import json
import operator
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from miva_sync.sandbox import TIE_ORDERS, Sandbox, Store
from miva_sync.store.client import MivaClient, Page
from miva_sync.store.query import Condition, ListQuery, sub_and, sub_or
from miva_sync.sync.pager import iter_chunks

Order = dict[str, Any]

# No example database (a rerun does not replay old failures on its own): a
# failure prints its falsifying example and a @reproduce_failure blob instead.
SETTINGS = {
    "deadline": None,
    "database": None,
    "print_blob": True,
    # the autouse isolated_home fixture is function-scoped; nothing here uses it
    # per example (each pull example makes its own home folder)
    "suppress_health_check": [
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
    ],
}

OPERATORS = (
    "EQ", "NE", "GT", "GE", "LT", "LE", "CO", "NC", "LIKE", "NOTLIKE",
    "TRUE", "FALSE", "NULL", "IN", "NOT_IN",
)  # fmt: skip
VALUELESS = frozenset({"TRUE", "FALSE", "NULL"})
TEXT_OPERATORS = frozenset({"CO", "NC", "LIKE", "NOTLIKE"})

# =============================================================================
# 1. query builder + sandbox == brute force
# =============================================================================

NUMBER_FIELDS = (
    "id", "orderdate", "dt_updated", "status", "pay_status", "total", "ship_res",
)  # fmt: skip
INDEXED_FIELDS = ("id", "orderdate", "dt_updated")  # the sandbox bisects these
TEXT_FIELDS = ("ship_state", "bill_lname", "ship_addr2")
QUERY_FIELDS = NUMBER_FIELDS + TEXT_FIELDS
SORTS = (
    None,
    "id",
    "orderdate",
    "status",
    "total",
    "ship_res",
    "bill_lname",
    "ship_state",
)
SCRATCH_ORDERS = 8  # orders whose searchable fields each example sets anew

_COMPARE: dict[str, Callable[[Any, Any], bool]] = {
    "EQ": operator.eq,
    "NE": operator.ne,
    "GT": operator.gt,
    "GE": operator.ge,
    "LT": operator.lt,
    "LE": operator.le,
}


def number_text(value: Any) -> str:
    """A number as text operators read it: decimal, no ``.0``; a boolean is 1 or 0."""
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def as_number(value: Any) -> float:
    return float(int(value) if isinstance(value, bool) else value)


def like(text: str, pattern: str) -> bool:
    """SQL LIKE, case-insensitive: ``%`` any run, ``_`` one character, ``\\`` escapes.

    A set-of-positions matcher (no regular expressions, unlike the sandbox).
    """
    tokens: list[str | None] = []  # None = %, "" = _, else one literal character
    chars = iter(pattern.lower())
    for ch in chars:
        if ch == "\\":
            tokens.append(next(chars, "\\"))
        else:
            tokens.append(None if ch == "%" else "" if ch == "_" else ch)
    subject = text.lower()
    positions = {0}
    for token in tokens:
        reached: set[int] = set()
        for p in positions:
            if token is None:
                reached.update(range(p, len(subject) + 1))
            elif p < len(subject) and (token == "" or subject[p] == token):
                reached.add(p + 1)
        positions = reached
    return len(subject) in positions


def text_matches(text: str, op: str, value: Any) -> bool:
    """A text column: comparisons ignore case; NULL is empty; TRUE is not empty or 0."""
    if op == "TRUE":
        return text not in ("", "0")
    if op == "FALSE":
        return text in ("", "0")
    if op == "NULL":
        return text == ""
    if op in ("IN", "NOT_IN"):
        return (text.lower() in {str(v).lower() for v in value}) == (op == "IN")
    if op in ("LIKE", "NOTLIKE"):
        return like(text, value) == (op == "LIKE")
    if op in ("CO", "NC"):
        return (value.lower() in text.lower()) == (op == "CO")
    return _COMPARE[op](text.lower(), value.lower())


@dataclass(frozen=True)
class Leaf:
    """One intended search entry: ``field operator value``."""

    field: str
    op: str
    value: Any = None

    def build(self) -> Condition:
        if self.op in VALUELESS:
            return Condition(self.field, self.op)
        return Condition(self.field, self.op, self.value)


@dataclass(frozen=True)
class Nest:
    """An intended SUBWHERE group, joined to what precedes it by AND or OR."""

    join: str
    entries: tuple[Leaf | Nest, ...]

    def build(self) -> Condition:
        made = [e.build() for e in self.entries]
        return sub_and(*made) if self.join == "AND" else sub_or(*made)


@dataclass(frozen=True)
class QuerySpec:
    """What a query means; evaluated here, and built with the query builder."""

    groups: tuple[tuple[Leaf | Nest, ...], ...]  # AND across groups, OR within
    sort: str | None = None
    descending: bool = False
    count: int = 1000

    def build(self) -> ListQuery:
        query = ListQuery(count=self.count)
        for group in self.groups:
            query = query.where(*(e.build() for e in group))
        if self.sort is not None:
            query = query.sorted_by(self.sort, descending=self.descending)
        return query


def leaf_matches(order: Order, leaf: Leaf) -> bool:
    raw = order[leaf.field]
    if leaf.field not in NUMBER_FIELDS:
        return text_matches(raw, leaf.op, leaf.value)
    if leaf.op in TEXT_OPERATORS:  # id LIKE '10%': the number's decimal text
        return text_matches(number_text(raw), leaf.op, leaf.value)
    number = as_number(raw)
    if leaf.op == "TRUE":
        return number != 0
    if leaf.op in ("FALSE", "NULL"):  # a number is "null" when it is zero
        return number == 0
    if leaf.op in ("IN", "NOT_IN"):
        hit = number in {as_number(v) for v in leaf.value}
        return hit == (leaf.op == "IN")
    return _COMPARE[leaf.op](number, as_number(leaf.value))


def group_matches(order: Order, entries: tuple[Leaf | Nest, ...]) -> bool | None:
    """Fold left to right: a plain entry ORs, an AND group ANDs, an OR group ORs;
    an empty group is ignored (None: the whole list constrains nothing)."""
    acc: bool | None = None
    for entry in entries:
        if isinstance(entry, Nest):
            sub = group_matches(order, entry.entries)
            if sub is None:
                continue
            both = entry.join == "AND"
        else:
            sub, both = leaf_matches(order, entry), False
        acc = sub if acc is None else (acc and sub) if both else (acc or sub)
    return acc


def query_matches(order: Order, spec: QuerySpec) -> bool:
    """Separate groups (top-level search filters) are ANDed."""
    return all(group_matches(order, group) is not False for group in spec.groups)


# -- strategies ---------------------------------------------------------------

# no commas (IN lists are comma-joined) and no spaces at the ends of a value
TEXT_ALPHABET = "aAbzZéÉü0_%-'\\"
short_text = st.text(alphabet=TEXT_ALPHABET, max_size=5)


def scratch_fields() -> st.SearchStrategy[dict[str, Any]]:
    """Values for one scratch order: edge cases the generated data may lack."""
    return st.fixed_dictionaries(
        {
            "status": st.sampled_from([0, 100, 200, 300]),
            "pay_status": st.sampled_from([0, 100, 200]),
            "total": st.one_of(
                st.sampled_from([0.0, 100.0, 12.5, 0.01]),
                st.integers(0, 50_000).map(lambda cents: cents / 100),
            ),
            "ship_state": st.one_of(
                st.sampled_from(["", "CA", "ca", "Ca", "NY", "0", "QC"]), short_text
            ),
            "bill_lname": st.one_of(
                st.sampled_from(
                    ["Müller", "MÜLLER", "O'Brien", "Zoë", "José", "lee", "50%", "a_b"]
                ),
                short_text,
            ),
            "ship_res": st.booleans(),
            "ship_addr2": st.sampled_from(["", "Apt 7", "APT 7", "0", "apt 12"]),
        }
    )


def pattern_from(draw: st.DrawFn, text: str) -> str:
    """A LIKE pattern that often matches ``text``: characters kept, replaced by
    ``_``, dropped or collapsed into ``%``; sometimes case-changed."""
    out = ["%"] if draw(st.booleans()) else []
    for ch in text:
        how = draw(st.sampled_from(["keep", "keep", "keep", "one", "any", "drop"]))
        out.append({"keep": ch, "one": "_", "any": "%", "drop": ""}[how])
    if draw(st.booleans()):
        out.append("%")
    pattern = "".join(out)
    return pattern.upper() if draw(st.booleans()) else pattern


def text_value(draw: st.DrawFn, pool: list[str], op: str) -> str:
    base = draw(st.one_of(st.sampled_from(pool), short_text))
    if op in ("LIKE", "NOTLIKE"):
        return pattern_from(draw, base)
    how = draw(st.sampled_from(["same", "upper", "swap", "part"]))
    if how == "upper":
        return base.upper()
    if how == "swap":
        return base.swapcase()
    if how == "part" and base:
        i = draw(st.integers(0, len(base) - 1))
        j = draw(st.integers(i, len(base)))
        return base[i:j]
    return base


def number_value(draw: st.DrawFn, field: str, pool: list[Any]) -> Any:
    if field == "ship_res":
        return draw(st.sampled_from([True, False, 0, 1, 2]))
    value = draw(st.sampled_from(pool))
    if field == "total":
        return round(value + draw(st.sampled_from([0, 0, 0.01, -0.01, 0.5])), 2)
    return value + draw(st.sampled_from([0, 0, 1, -1]))


@st.composite
def leaves(draw: st.DrawFn, pools: dict[str, list[Any]], op: str | None = None) -> Leaf:
    field = draw(st.sampled_from(QUERY_FIELDS))
    op = op or draw(st.sampled_from(OPERATORS))
    if op in VALUELESS:
        return Leaf(field, op)
    numeric = field in NUMBER_FIELDS
    if op in TEXT_OPERATORS:
        texts = [number_text(v) for v in pools[field]] if numeric else pools[field]
        return Leaf(field, op, text_value(draw, texts, op))
    if op in ("IN", "NOT_IN"):
        size = draw(st.integers(1, 3))
        if numeric:
            values = [number_value(draw, field, pools[field]) for _ in range(size)]
        else:
            values = [text_value(draw, pools[field], "EQ") for _ in range(size)]
        return Leaf(field, op, tuple(values))
    if numeric:
        return Leaf(field, op, number_value(draw, field, pools[field]))
    return Leaf(field, op, text_value(draw, pools[field], op))


def entries(pools: dict[str, list[Any]], depth: int) -> st.SearchStrategy[Leaf | Nest]:
    """A plain entry, or (above depth 0) a nested group of 0..3 entries."""
    leaf = leaves(pools)
    if depth == 0:
        return leaf
    nested = st.builds(
        Nest,
        st.sampled_from(["AND", "OR"]),
        st.lists(entries(pools, depth - 1), max_size=3).map(tuple),
    )
    return st.one_of(leaf, leaf, nested)


@st.composite
def query_specs(draw: st.DrawFn, pools: dict[str, list[Any]]) -> QuerySpec:
    groups = draw(
        st.lists(
            st.lists(entries(pools, 2), min_size=1, max_size=3).map(tuple), max_size=3
        )
    )
    # the pull's own shapes, which the sandbox answers from sorted indexes:
    # ranges and windows on a cursor, alone or ANDed with the rest
    for _ in range(draw(st.integers(0, 2))):
        field = draw(st.sampled_from(INDEXED_FIELDS))
        op = draw(st.sampled_from(["EQ", "GT", "GE", "LT", "LE"]))
        bound = Leaf(field, op, number_value(draw, field, pools[field]))
        groups.insert(draw(st.integers(0, len(groups))), (bound,))
    sort = draw(st.sampled_from(SORTS))
    return QuerySpec(
        groups=tuple(groups),
        sort=sort,
        descending=sort is not None and draw(st.booleans()),
        # unique keys: Count/Offset paging is safe
        count=draw(st.sampled_from([1000, 7, 25, 60]))
        if sort in (None, "id")
        else 1000,
    )


# -- the test -----------------------------------------------------------------


def client_for(sb: Sandbox) -> MivaClient:
    return MivaClient(
        sb.url,
        sb.store_code,
        sb.api_token,
        signing_key=sb.signing_key,
        sleep=lambda s: None,
    )


@dataclass(repr=False)  # a failing example prints no 150 orders
class QueryStore:
    sandbox: Sandbox
    client: MivaClient
    scratch: list[int]
    # the searchable fields of every order, by id (the scratch ones change)
    rows: dict[int, Order]


@pytest.fixture(scope="module")
def query_store() -> Iterator[QueryStore]:
    """150 generated orders (a big burst: many orderdate ties) plus scratch orders."""
    with Sandbox(orders=150, seed=23, tie_order="random") as sb:
        scratch = [sb.store.add_order()["id"] for _ in range(SCRATCH_ORDERS)]
        rows = {
            o["id"]: {f: o[f] for f in QUERY_FIELDS} for o in sb.store.orders_snapshot()
        }
        yield QueryStore(sb, client_for(sb), scratch, rows)


def fetch_all(client: MivaClient, query: ListQuery) -> tuple[list[Order], int]:
    """Every row of the query, paged by Count/Offset; and the first total_count."""
    rows: list[Order] = []
    total: int | None = None
    while True:
        page = client.list_orders(query.page(query.count, len(rows)))
        total = page.total_count if total is None else total
        rows += page.orders
        if not page.orders or len(rows) >= page.total_count:
            return rows, total


def sort_key(field: str) -> Callable[[Order], Any]:
    if field in TEXT_FIELDS:
        return lambda o: o[field].lower()
    return lambda o: as_number(o[field])


def with_scratch(
    query_store: QueryStore, data: st.DataObject
) -> tuple[list[Order], dict[str, list[Any]]]:
    """Give the scratch orders this example's values; the rows, and each field's
    values (what conditions draw from, so that they often match)."""
    rows = query_store.rows
    for oid in query_store.scratch:
        fields = data.draw(scratch_fields(), label=f"order {oid}")
        query_store.sandbox.store.set_silently(oid, **fields)
        rows[oid].update(fields)
    snapshot = list(rows.values())
    pools = {
        f: sorted({o[f] for o in snapshot}, key=lambda v: (type(v).__name__, v))
        for f in QUERY_FIELDS
    }
    return snapshot, pools


@settings(max_examples=100, **SETTINGS)
@given(data=st.data())
def test_every_operator_agrees_with_brute_force(
    query_store: QueryStore, data: st.DataObject
) -> None:
    """Each operator alone, on a random field: nothing around it to mask a slip."""
    snapshot, pools = with_scratch(query_store, data)
    for op in OPERATORS:
        leaf = data.draw(leaves(pools, op), label=op)
        query = QuerySpec(groups=((leaf,),)).build()
        found, total = fetch_all(query_store.client, query)
        got = [o["id"] for o in found]
        want = {o["id"] for o in snapshot if leaf_matches(o, leaf)}
        assert len(got) == len(set(got)) and set(got) == want, (
            f"{leaf}: sandbox only {sorted(set(got) - want)}, "
            f"evaluator only {sorted(want - set(got))}"
        )
        assert total == len(want)


@settings(max_examples=250, **SETTINGS)
@given(data=st.data())
def test_query_builder_and_sandbox_agree_with_brute_force(
    query_store: QueryStore, data: st.DataObject
) -> None:
    """AND of groups, OR within, nested groups, index ranges, sort, paging."""
    snapshot, pools = with_scratch(query_store, data)
    spec = data.draw(query_specs(pools), label="query")
    query = spec.build()

    found, total = fetch_all(query_store.client, query)

    got = [o["id"] for o in found]
    want = {o["id"] for o in snapshot if query_matches(o, spec)}
    assert len(got) == len(set(got)), "an order came back twice"
    assert set(got) == want, (
        f"sandbox only: {sorted(set(got) - want)}; evaluator only: "
        f"{sorted(want - set(got))}; filter: {query.to_params().get('Filter')}"
    )
    assert total == len(want)
    if spec.sort is not None:
        keys = [sort_key(spec.sort)(o) for o in found]
        expected = sorted(keys, reverse=spec.descending)
        assert keys == expected, f"rows are not sorted by {spec.sort}"
    else:
        assert got == sorted(got), "no Sort means id ascending"


def test_regression_sandbox_boolean_text_operators_read_1_or_0(
    query_store: QueryStore,
) -> None:
    """Found by the property above: ``ship_res CO 0`` matched no order, because
    text operators read a boolean column as "True"/"False" while every other
    operator (EQ 1, IN, TRUE, sort) treats it as the number 1 or 0."""
    rows = query_store.rows.values()
    for op, text, want in [
        ("CO", "0", {o["id"] for o in rows if not o["ship_res"]}),
        ("LIKE", "1", {o["id"] for o in rows if o["ship_res"]}),
        ("NC", "1", {o["id"] for o in rows if not o["ship_res"]}),
        ("CO", "tru", set()),
    ]:
        query = ListQuery(count=1000).where(Condition("ship_res", op, text))
        found, _ = fetch_all(query_store.client, query)
        assert {o["id"] for o in found} == want, (op, text)


# =============================================================================
# 2. the pager returns every order, once, whatever the tie order
# =============================================================================

NOW = 1_790_000_000


class Clock:
    """A store clock tests move by hand."""

    def __init__(self, value: int) -> None:
        self.value = value

    def __call__(self) -> float:
        return float(self.value)


def store_fetch(store: Store, log: list[ListQuery]) -> Callable[[ListQuery], Page]:
    """The pager's fetch, answered by the sandbox's store in-process (no HTTP)."""

    def fetch(query: ListQuery) -> Page:
        log.append(query)
        assert len(log) < 5000, "the pager does not terminate"
        answer = json.loads(store.query(query.to_params()))
        assert answer["success"] == 1, answer
        data = answer["data"]
        return Page(data["data"], data["total_count"], data["start_offset"])

    return fetch


@dataclass(frozen=True)
class StoreSpec:
    """A small generated store plus groups of orders that share one orderdate
    and/or one dt_updated (often more than a page), in one of the tie orders."""

    orders: int
    seed: int
    tie_order: str
    burst_size: int | None
    # (orderdate moment, dt_updated moment, how many), indexes into the moments
    groups: tuple[tuple[int, int, int], ...]

    def build(self) -> tuple[Store, Clock]:
        clock = Clock(NOW)
        store = Store(
            orders=self.orders,
            seed=self.seed,
            tie_order=self.tie_order,
            clock=clock,
            burst_size=self.burst_size,
        )
        # a few seconds before now, and the dates of the first generated orders
        moments = [NOW - k for k in range(4)]
        moments += [o["orderdate"] for o in store.orders_snapshot()[:3]]
        for placed, updated, count in self.groups:
            at = moments[placed % len(moments)]
            changed = max(at, moments[updated % len(moments)])
            for _ in range(count):
                store.add_order(orderdate=at, dt_updated=changed)
        return store, clock


store_specs = st.builds(
    StoreSpec,
    orders=st.integers(0, 30),
    seed=st.integers(0, 1000),
    tie_order=st.sampled_from(TIE_ORDERS),
    burst_size=st.one_of(st.none(), st.integers(0, 25)),
    groups=st.lists(
        st.tuples(st.integers(0, 6), st.integers(0, 6), st.integers(1, 25)),
        max_size=4,
    ).map(tuple),
)


def pick_bound(draw: st.DrawFn, values: list[int]) -> int:
    """A value of the field, or just outside the range of values."""
    if not values:
        return draw(st.sampled_from([0, NOW]))
    return draw(
        st.one_of(
            st.sampled_from(values), st.sampled_from([values[0] - 1, values[-1] + 1])
        )
    )


@settings(max_examples=150, **SETTINGS)
@given(
    spec=store_specs,
    field=st.sampled_from(["orderdate", "dt_updated", "id"]),
    size=st.integers(1, 20),
    filtered=st.booleans(),
    data=st.data(),
)
def test_pager_returns_every_order_once_whatever_the_tie_order(
    spec: StoreSpec,
    field: str,
    size: int,
    filtered: bool,
    data: st.DataObject,
) -> None:
    store, _ = spec.build()
    snapshot = store.orders_snapshot()
    values = sorted({o[field] for o in snapshot})
    lo = pick_bound(data.draw, values)
    hi = data.draw(
        st.one_of(st.none(), st.sampled_from([v for v in values if v >= lo] or [lo]))
    )
    base = ListQuery(count=size)
    if filtered:  # the pull's own filters ride along on every query, ties included
        base = base.where(Condition("status", "NE", 0))
    want = {
        o["id"]: o[field]
        for o in snapshot
        if lo <= o[field]
        and (hi is None or o[field] <= hi)
        and (not filtered or o["status"] != 0)
    }
    log: list[ListQuery] = []

    chunks = list(iter_chunks(store_fetch(store, log), base, field, lo, hi))

    yielded: list[int] = []
    bounds: list[int] = []
    for n, chunk in enumerate(chunks):
        yielded += [o["id"] for o in chunk.orders]
        assert chunk.last == (n == len(chunks) - 1)
        if chunk.complete_below is None:
            continue
        assert not bounds or chunk.complete_below >= bounds[-1], "bound went back"
        bounds.append(chunk.complete_below)
        missing = {i for i, v in want.items() if v < chunk.complete_below} - set(
            yielded
        )
        assert not missing, (
            f"chunk {n} claims complete below {chunk.complete_below} "
            f"but {sorted(missing)} were not yielded yet"
        )
    assert len(yielded) == len(set(yielded)), "an order was yielded twice"
    assert set(yielded) == set(want)
    assert chunks[0].total_count == len(want)
    assert all(q.count == size for q in log), "a query asked for another page size"


@settings(max_examples=60, **SETTINGS)
@given(
    spec=store_specs,
    size=st.integers(1, 12),
    updates=st.lists(st.tuples(st.integers(1, 30), st.integers(0, 10**6)), max_size=8),
)
def test_pager_reads_orders_updated_while_it_pages(
    spec: StoreSpec, size: int, updates: list[tuple[int, int]]
) -> None:
    """An order updated while the walk pages (the clock moves on, so its new
    dt_updated is above every value so far) is read in its new version, and no
    version is read twice. Updates land just before a fetch, so a read follows."""
    store, clock = spec.build()
    lo = min((o["dt_updated"] for o in store.orders_snapshot()), default=0)
    log: list[ListQuery] = []
    fetch = store_fetch(store, log)
    due = dict(updates)  # before fetch k, update the order at this index

    def update_then_fetch(query: ListQuery) -> Page:
        pick = due.pop(len(log) + 1, None)
        ids = store.ids()
        if pick is not None and ids:
            clock.value += 1
            store.update_order(ids[pick % len(ids)], status=300)
        return fetch(query)

    chunks = iter_chunks(update_then_fetch, ListQuery(count=size), "dt_updated", lo)
    versions = [(o["id"], o["dt_updated"]) for c in chunks for o in c.orders]

    assert len(versions) == len(set(versions)), "an order version was read twice"
    final = {(o["id"], o["dt_updated"]) for o in store.orders_snapshot()}
    assert final <= set(versions), (
        f"not read in the final version: {final - set(versions)}"
    )


# =============================================================================
# 3. repeated pulls with store activity never drop an order
# =============================================================================

# Events between pulls. Back-dating is bounded by the lookback (docs/design.md §5.1:
# late-visible orders are caught by the lookback); events made while a pull
# pages happen at the store's "now", which does not move during a pull.
# which order an update hits: -k is the k-th most recently changed one (whose
# last version is still inside the dedupe window), k >= 0 any order
which = st.one_of(st.integers(-6, -1), st.integers(0, 10**6))
between_pulls = st.one_of(
    st.tuples(st.just("tick"), st.integers(0, 5)),
    st.tuples(
        st.just("add"),
        st.integers(1, 4),
        st.floats(0, 1),  # back-dated by this fraction of the lookback
        st.sampled_from([None, "admin", "check"]),
    ),
    st.tuples(st.just("burst"), st.integers(2, 15)),
    st.tuples(st.just("update"), which),
    st.tuples(st.just("update_back"), which, st.floats(0, 1)),
    st.tuples(st.just("reveal"), st.integers(0, 10**6)),
)
during_pull = st.one_of(
    st.tuples(st.just("add"), st.integers(1, 3), st.just(0.0), st.just(None)),
    st.tuples(st.just("burst"), st.integers(2, 8)),
    st.tuples(st.just("update"), which),
)
hooks = st.lists(st.tuples(st.integers(1, 6), during_pull), max_size=3)
pull_step = st.tuples(st.just("pull"), hooks)
programs = st.lists(st.one_of(pull_step, between_pulls), min_size=1, max_size=10)


def pick(store: Store, which: int) -> int:
    if which >= 0:
        ids = store.ids()
        return ids[which % len(ids)]
    newest = sorted(store.orders_snapshot(), key=lambda o: (o["dt_updated"], o["id"]))
    return int(newest[max(which, -len(newest))]["id"])


def apply_event(
    store: Store, clock: Clock, lookback: int, event: tuple[Any, ...]
) -> None:
    kind = event[0]
    now = store.now()
    ids = store.ids()
    if kind == "tick":
        clock.value += event[1]
    elif kind == "add":
        placed = now - int(event[2] * lookback)
        for _ in range(event[1]):
            store.add_order(orderdate=placed, kind=event[3])
    elif kind == "burst":  # one second, for both cursors
        for _ in range(event[1]):
            store.add_order(orderdate=now, dt_updated=now)
    elif kind == "update" and ids:
        store.update_order(pick(store, event[1]), status=300)
    elif kind == "update_back" and ids:
        # dt_updated a little in the past (another app server's clock), but
        # still after the order's last version, so versions stay distinct
        oid = pick(store, event[1])
        earliest = store.order(oid)["dt_updated"] + 1
        store.update_order(
            oid, dt_updated=min(now, max(earliest, now - int(event[2] * lookback)))
        )
    elif kind == "reveal" and store.hidden_ids():
        hidden = store.hidden_ids()
        store.reveal(hidden[event[1] % len(hidden)])


class PullDriver:
    """Runs ``miva-sync pull`` in-process, always into the same JSONL file."""

    def __init__(self, run: Any, sb: Sandbox, clock: Clock, folder: Path) -> None:
        self.run, self.sb, self.clock = run, sb, clock
        self.out = folder / "orders.jsonl"
        self.env = {**sb.env(), "MIVA_SYNC_HOME": str(folder / "home")}
        self.state = folder / "home" / "state.json"
        self.pending: dict[int, tuple[Any, ...]] = {}
        self.watermarks: list[int | None] = []
        sb.on_request(self._during)

    def _during(self, n: int, _entry: Any) -> None:
        event = self.pending.pop(n, None)
        if event is not None:
            apply_event(self.sb.store, self.clock, 0, event)

    def pull(self, args: list[str], during: list[tuple[int, Any]], mode: str) -> None:
        done = self.sb.request_count  # during: (k-th request of this pull, event)
        self.pending = {done + k: event for k, event in during}
        result = self.run(
            ["pull", *args, "-o", str(self.out), "--no-progress"], env=self.env
        )
        self.pending = {}  # a hook the pull never reached must not fire later
        assert result.exit_code == 0, result.stderr
        record = next(iter(json.loads(self.state.read_text())["stores"].values()))
        watermark = record["cursors"][mode]["watermark"]
        if watermark is not None:
            assert watermark <= min(int(time.time()), self.sb.store.now()), (
                "the watermark passed the signpost or the newest order"
            )
            known = [w for w in self.watermarks if w is not None]
            assert not known or watermark >= known[-1], "the watermark went back"
        self.watermarks.append(watermark)

    def emitted(self) -> list[Order]:
        if not self.out.exists():
            return []
        return [json.loads(line) for line in self.out.read_text().splitlines()]


@pytest.mark.parametrize("mode", ["date", "updated"])
@settings(max_examples=25, **SETTINGS)
@given(
    seed=st.integers(0, 1000),
    orders=st.integers(0, 40),
    tie_order=st.sampled_from(TIE_ORDERS),
    skew=st.sampled_from([-86400, 0, 3600]),  # store clock vs this machine's
    lookback=st.sampled_from([1, 7, 600]),
    size=st.integers(1, 12),
    first_during=hooks,
    program=programs,
)
def test_pulls_never_drop_an_order_over_random_events(
    run: Any,
    mode: str,
    seed: int,
    orders: int,
    tie_order: str,
    skew: int,
    lookback: int,
    size: int,
    first_during: list[tuple[int, Any]],
    program: list[tuple[Any, ...]],
) -> None:
    clock = Clock(int(time.time()) + skew)
    with (
        Sandbox(
            orders=orders,
            seed=seed,
            tie_order=tie_order,
            now=clock,
            timestamp_window=0,  # the store's clock is not this machine's
            late_numbers=3,
        ) as sb,
        tempfile.TemporaryDirectory() as tmp,
    ):
        store = sb.store
        start = store.now() - 30 * 86400
        driver = PullDriver(run, sb, clock, Path(tmp))
        updated = ["--updated"] if mode == "updated" else []
        paging = ["--page-size", str(size)]
        driver.pull(
            ["--since", str(start), *updated, "--lookback", f"{lookback}s", *paging],
            first_during,
            mode,
        )
        for step in program:
            if step[0] == "pull":
                driver.pull(paging, step[1], mode)
            else:
                apply_event(store, clock, lookback, step)
        driver.pull(paging, [], mode)  # the final pull, with nothing happening

        emitted = driver.emitted()
        snapshot = store.orders_snapshot()
    versions = [(o["id"], o["dt_updated"]) for o in emitted]
    assert len(versions) == len(set(versions)), "an order version was emitted twice"
    field = "dt_updated" if mode == "updated" else "orderdate"
    covered = {o["id"]: o["dt_updated"] for o in snapshot if o[field] >= start}
    assert {o["id"] for o in emitted} <= set(covered), (
        "emitted an order outside the window"
    )
    if mode == "updated":  # every order in its newest version
        missing = set(covered.items()) - set(versions)
    else:
        missing = set(covered) - {o["id"] for o in emitted}
    assert not missing, f"dropped: {sorted(missing)}"

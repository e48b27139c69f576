"""orjson and the standard library agree: the same values, types, key order and bytes."""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest

from miva_sync.base import jsonio
from miva_sync.sinks.jsonl import encode_lines
from miva_sync.store.client import encode_body

TEXT = 'aZ09 é ñ ß 中文 😀 "quote" back\\slash \t\n\r \x00\x1f \u2028\u2029 </script>'


def random_float(rng: random.Random) -> float:
    kind = rng.random()
    if kind < 0.4:  # amounts: 12.34
        return round(rng.uniform(-1000, 100000), 2)
    if kind < 0.6:
        return rng.uniform(-1, 1) * 10 ** rng.randint(-3, 15)
    if kind < 0.8:
        return rng.choice(
            [0.0, -0.0, 1.0, 0.1, 1e16, 1e22, 5e-324, 1.7976931348623157e308]
        )
    return rng.uniform(-1, 1) * 10 ** rng.randint(-300, 300)


def random_value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 3 or roll < 0.5:
        return rng.choice(
            [
                lambda: rng.randint(-(2**63), 2**64 - 1),
                lambda: rng.randint(-5, 5),
                lambda: random_float(rng),
                lambda: "".join(rng.choice(TEXT) for _ in range(rng.randint(0, 12))),
                lambda: str(rng.randint(10**19, 10**24)),  # a tracking number
                lambda: rng.choice([True, False, None]),
            ]
        )()
    if roll < 0.65:  # a JSON_DateTime object
        return {"time_t": rng.randint(0, 2**31), "timezone": "UTC", "formatted": "x"}
    if roll < 0.8:
        return [random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    keys = [
        f"k{rng.randint(0, 99)}{rng.choice(TEXT)}" for _ in range(rng.randint(0, 6))
    ]
    return {k: random_value(rng, depth + 1) for k in keys}


def random_order(rng: random.Random) -> dict[str, Any]:
    order: dict[str, Any] = {
        "id": rng.randint(1, 10**6),
        "orderdate": rng.randint(0, 2**31),
    }
    for n in range(rng.randint(0, 12)):
        order[f"f{n}_{rng.choice(TEXT)}"] = random_value(rng)
    return order


def same(a: Any, b: Any) -> bool:
    """Equal values of the same types all the way down (and the same key order)."""
    if type(a) is not type(b) and not (isinstance(a, float) and isinstance(b, float)):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        if math.isnan(a):
            return math.isnan(b)
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return bool(a == b)


def tiny_floats(value: Any) -> bool:
    """Floats below 1e-4 in magnitude: the one place the bytes may differ."""
    if isinstance(value, float):
        return value != 0 and abs(value) < 1e-4
    if isinstance(value, dict):
        return any(tiny_floats(v) for v in value.values())
    if isinstance(value, list):
        return any(tiny_floats(v) for v in value)
    return False


@pytest.mark.parametrize("seed", range(20))
def test_jsonio_round_trips_random_orders_like_the_stdlib(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(50):
        order = random_order(rng)
        # the store's bytes, in either spacing style
        raw = json.dumps(order, ensure_ascii=rng.random() < 0.5).encode()
        parsed = jsonio.loads(raw)
        assert same(parsed, json.loads(raw))
        line = jsonio.dumps(parsed)
        assert same(json.loads(line), order)
        if not tiny_floats(order):
            assert line == jsonio.dumps_std(order)


def test_jsonio_keeps_big_integers_as_integers() -> None:
    raw = b'{"a":18446744073709551616,"b":[-99999999999999999999],"c":"12345678901234567890123"}'
    parsed = jsonio.loads(raw)
    assert parsed == {
        "a": 2**64,
        "b": [-99999999999999999999],
        "c": "12345678901234567890123",
    }
    assert isinstance(parsed["a"], int)
    assert jsonio.dumps(parsed) == raw


@pytest.mark.parametrize("backend", ["orjson", "json"])
def test_jsonio_lines_are_each_value_dumped_then_a_newline(
    backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a page with one value orjson refuses (a >64-bit int) among plain ones
    rng = random.Random(7)
    page = [random_order(rng) for _ in range(5)]
    page.insert(2, {"id": 1, "n": 2**70})
    if backend == "json":
        monkeypatch.setattr(jsonio, "orjson", None)
    for values in (page[:2], page):
        assert jsonio.lines(values) == b"".join(jsonio.dumps(v) + b"\n" for v in values)
    assert jsonio.lines([]) == b""


def test_jsonio_tracking_numbers_in_strings_keep_the_fast_parser() -> None:
    raw = b'{"tracking":"9400111899223197428490","code":"x12345678901234567890"}'
    assert not jsonio._may_hold_long_int(raw)
    assert jsonio._may_hold_long_int(b'{"n": -12345678901234567890}')


def test_jsonio_non_finite_numbers_are_written_back_as_read() -> None:
    raw = b'{"a":NaN,"b":-Infinity,"c":1e400}'
    parsed = jsonio.loads(raw)
    assert math.isnan(parsed["a"]) and parsed["b"] == -math.inf
    assert (
        jsonio.dumps(parsed)
        == json.dumps(json.loads(raw), separators=(",", ":")).encode()
    )


def test_jsonio_rejects_broken_json_with_value_error() -> None:
    for raw in (b'{"a":1', b"<html>", b"", b'{"a":"\xff"}'):
        with pytest.raises(ValueError):
            jsonio.loads(raw)


@pytest.mark.parametrize("seed", range(5))
def test_jsonio_stdlib_fallback_gives_the_same_output(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = random.Random(seed)
    orders = [random_order(rng) for _ in range(30)]
    raws = [json.dumps(o).encode() for o in orders]
    fast = [jsonio.dumps(jsonio.loads(r)) for r in raws]
    monkeypatch.setattr(jsonio, "orjson", None)
    slow = [jsonio.dumps(jsonio.loads(r)) for r in raws]
    for a, b in zip(fast, slow, strict=True):
        assert same(json.loads(a), json.loads(b))
    assert [a for a, o in zip(fast, orders, strict=True) if not tiny_floats(o)] == [
        b for b, o in zip(slow, orders, strict=True) if not tiny_floats(o)
    ]


def test_jsonio_documents_are_sorted_and_indented_either_way(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    document = {
        "stores": {"b": {"10": [1, 2, None]}, "a": {"x": "ü"}},
        "version": 2**70,
    }
    fast = jsonio.dumps_document(document)  # orjson refuses 2**70: the stdlib writes it
    small = {**document, "version": 1}
    orjson_bytes = jsonio.dumps_document(small)
    monkeypatch.setattr(jsonio, "orjson", None)
    assert b'"version": 1180591620717411303424' in fast  # written whole, as an int
    assert jsonio.dumps_document(small) == orjson_bytes  # the same bytes from both
    assert json.loads(fast) == document
    assert orjson_bytes.decode().splitlines()[:3] == [
        "{",
        '  "stores": {',
        '    "a": {',
    ]


def test_jsonio_request_bodies_match_the_stdlib_bytes() -> None:
    payload = {
        "Store_Code": "PS",
        "Function": "OrderList_Load_Query",
        "Count": 100,
        "Filter": [{"name": "search", "value": [{"field": "x", "value": "é😀"}]}],
        "Order_Ids": [1, 2, 3],
        "Miva_Request_Timestamp": 1700000000,
    }
    expected = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    assert encode_body(payload) == expected


def test_jsonl_lines_are_one_compact_object_each() -> None:
    orders = [{"id": 1, "total": 12.5, "name": "é"}, {"id": 2, "d": {"time_t": 5}}]
    assert (
        encode_lines(orders)
        == b'{"id":1,"total":12.5,"name":"\xc3\xa9"}\n{"id":2,"d":{"time_t":5}}\n'
    )
    assert encode_lines([]) == b""


def page_of(
    orders: list[Any], *, indent: int | None = None, after: bool = False
) -> bytes:
    """A list answer as a store sends it (total_count before or after the list)."""
    data: dict[str, Any] = {"total_count": len(orders), "start_offset": 0}
    data["data"] = orders
    if after:
        data = {"data": orders, "total_count": len(orders)}
    return json.dumps({"success": 1, "data": data}, indent=indent).encode()


def tricky_order(rng: random.Random, oid: int) -> dict[str, Any]:
    """Text that looks like the place between two orders, inside an order."""
    order = random_order(rng)
    order["id"] = oid
    order["note"] = rng.choice(['},{"id":5', '"},{"id":', "}]", "[{", "x"])
    order["items"] = [{"id": n, "code": "},{"} for n in range(rng.randint(0, 3))]
    return order


@pytest.mark.parametrize("seed", range(12))
def test_jsonio_a_page_parsed_in_slices_is_the_page(seed: int) -> None:
    rng = random.Random(seed)
    orders = [tricky_order(rng, n) for n in range(rng.randint(40, 120))]
    # big enough to be sliced (random orders are small)
    for order in orders:
        order["pad"] = "p" * rng.randint(2000, 8000)
    raw = page_of(orders, indent=rng.choice([None, 1]), after=rng.random() < 0.3)
    assert len(raw) > 2 * jsonio.PAGE_SLICE
    assert same(jsonio.loads_page(raw), jsonio.loads(raw))


def test_jsonio_a_page_is_sliced_where_it_can_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # a nested list whose second object also opens with "id": a false end
    orders = [
        {"id": n, "pad": "p" * 6000, "x": [{"a": n}, {"id": n}]} for n in range(100)
    ]
    calls: list[int] = []
    parse = jsonio.orjson.loads

    def counted(data: Any) -> Any:
        calls.append(len(data))
        return parse(data)

    monkeypatch.setattr(jsonio.orjson, "loads", counted)
    page = page_of(orders)
    assert same(jsonio.loads_page(page), json.loads(page))
    # the envelope, then slices of about PAGE_SLICE bytes: no call parses it all
    assert len(calls) > 3 and max(calls) < 2 * jsonio.PAGE_SLICE


@pytest.mark.parametrize(
    "odd",
    [
        {"id": 1, "n": 2**70},  # orjson would read a float: the whole page, stdlib
        {"id": 1, "n": float("nan")},  # orjson refuses it
        7,  # not an object
    ],
)
def test_jsonio_a_page_that_cannot_be_sliced_is_parsed_whole(odd: Any) -> None:
    orders: list[Any] = [{"id": n, "pad": "p" * 6000} for n in range(60)]
    orders.insert(30, odd)
    raw = page_of(orders)
    assert same(jsonio.loads_page(raw), jsonio.loads(raw))

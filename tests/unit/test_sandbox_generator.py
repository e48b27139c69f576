"""The order generator: deterministic, realistic, and its totals add up."""

from __future__ import annotations

from typing import Any

import pytest

from miva_sync.sandbox import generate_store
from miva_sync.sandbox.generator import GeneratedStore

NOW = 1_750_000_000
Order = dict[str, Any]


def cents(value: float) -> int:
    return round(value * 100)


@pytest.fixture(scope="module")
def store() -> GeneratedStore:
    return generate_store(500, 42, NOW)


def test_sandbox_generator_is_deterministic() -> None:
    assert generate_store(80, 9, NOW) == generate_store(80, 9, NOW)
    assert generate_store(80, 9, NOW).orders != generate_store(80, 10, NOW).orders


def test_sandbox_generator_dates_follow_now() -> None:
    early, late = generate_store(80, 9, NOW), generate_store(80, 9, NOW + 5000)
    for a, b in zip(early.orders, late.orders, strict=True):
        assert b["orderdate"] - a["orderdate"] == 5000
        assert b["dt_updated"] - a["dt_updated"] == 5000
        assert {**a, "orderdate": 0, "dt_updated": 0, "customer": 0, "payments": 0,
                "notes": 0, "shipments": 0, "items": 0} == {
            **b, "orderdate": 0, "dt_updated": 0, "customer": 0, "payments": 0,
            "notes": 0, "shipments": 0, "items": 0}  # fmt: skip


def test_sandbox_generator_count_and_dates(store: GeneratedStore) -> None:
    assert len(store.orders) == 500
    for order in store.orders:
        assert NOW - 90 * 86400 <= order["orderdate"] <= order["dt_updated"] <= NOW
    assert max(o["orderdate"] for o in store.orders) > NOW - 3600


def test_sandbox_generator_totals_add_up(store: GeneratedStore) -> None:
    for order in store.orders:
        items = sum(cents(i["total"]) for i in order["items"])
        assert all(
            cents(i["total"]) == cents(i["price"]) * i["quantity"]
            for i in order["items"]
        )
        charges = {c["type"]: cents(c["amount"]) for c in order["charges"]}
        discount = -charges.get("DISCOUNT", 0)
        assert cents(order["total"]) == items - discount + charges[
            "SHIPPING"
        ] + charges.get("TAX", 0), order["id"]
        assert cents(order["total"]) == items + sum(
            cents(c["amount"]) for c in order["charges"]
        )
        assert cents(order["total_ship"]) == charges["SHIPPING"]
        assert (
            cents(order["total_tax"])
            == charges.get("TAX", 0)
            == sum(cents(i["tax"]) for i in order["items"])
        )
        assert (
            discount
            == sum(cents(d["total"]) for d in order["discounts"])
            == sum(cents(d["discount"]) for i in order["items"] for d in i["discounts"])
        )
        assert order["note_count"] == len(order["notes"])
        for payment in order["payments"]:
            assert cents(payment["amount"]) == cents(order["total"])
        assert order["formatted_total"] == f"${order['total']:,.2f}"


def test_sandbox_generator_has_store_realities(store: GeneratedStore) -> None:
    ids = [o["id"] for o in store.orders]
    assert ids == sorted(ids)
    assert store.skipped
    assert not set(store.skipped) & (set(ids) | set(store.hidden))
    assert store.hidden and min(store.hidden) < max(ids)
    big = store.bursts[0]
    burst = [o for o in store.orders if o["id"] in big]
    assert len(burst) > 100
    assert (
        len({o["orderdate"] for o in burst})
        == len({o["dt_updated"] for o in burst})
        == 1
    )
    assert len(store.bursts) > 1
    by_id = {o["id"]: o for o in store.orders}
    for late in store.late:  # completed after some higher-numbered order
        assert any(
            o["orderdate"] < by_id[late]["orderdate"]
            for o in store.orders
            if o["id"] > late
        )
    assert store.late


def _kinds(store: GeneratedStore) -> dict[str, list[Order]]:
    out: dict[str, list[Order]] = {}
    for o in store.orders:
        if o["payment_module"] == "check":
            out.setdefault("check", []).append(o)
        elif not o["payments"]:
            out.setdefault("admin_unpaid", []).append(o)
        if o["cust_id"] == 0:
            out.setdefault("guest", []).append(o)
        if o["dt_updated"] > o["orderdate"]:
            out.setdefault("updated", []).append(o)
        if any(i["options"] for i in o["items"]):
            out.setdefault("options", []).append(o)
        if o["coupons"]:
            out.setdefault("coupon", []).append(o)
        if o["shipments"]:
            out.setdefault("shipped", []).append(o)
        if any(ch in o["bill_lname"] + o["bill_fname"] for ch in "éüöëáå"):
            out.setdefault("accents", []).append(o)
    return out


def test_sandbox_generator_has_every_kind(store: GeneratedStore) -> None:
    kinds = _kinds(store)
    assert set(kinds) == {"check", "admin_unpaid", "guest", "updated", "options", "coupon",
                          "shipped", "accents"}  # fmt: skip
    for order in kinds["check"]:
        assert order["payments"] == [] and order["pay_status"] == 0
    for order in kinds["admin_unpaid"]:
        assert order["pay_status"] == 0 and order["payment_module"] == ""
        assert order["status"] == 0 and order["notes"][0]["admin_user"] == "admin"
    for order in kinds["guest"]:
        assert order["customer"] == {} and order["cust_login"] == ""
    for order in kinds["shipped"]:
        assert order["status"] == 200
        assert (
            order["dt_updated"]
            >= order["shipments"][0]["ship_date"]
            >= order["orderdate"]
        )


def test_sandbox_generator_small_stores() -> None:
    assert generate_store(0, 1, NOW).orders == []
    tiny = generate_store(3, 1, NOW)
    assert len(tiny.orders) == 3 and not tiny.hidden and not tiny.bursts

"""OrderList_Load_Query over HTTP: paging, every operator, nesting, sort, columns."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from miva_sync.sandbox.columns import BASE_COLUMNS
from tests.support import sandbox_fixtures
from tests.support.sandbox_fixtures import (
    SDK_EMPTY_FILTER,
    RawClient,
    columns,
    entry,
    search,
)

# Fixtures shared with the other sandbox test modules.
shared_raw = sandbox_fixtures.shared_raw
shared_sandbox = sandbox_fixtures.shared_sandbox

Order = dict[str, Any]


@pytest.fixture(scope="module")
def snapshot(shared_sandbox: Sandbox) -> list[Order]:
    return shared_sandbox.store.orders_snapshot()


def _error(raw: RawClient, **fields: Any) -> str:
    result = raw.call(**fields)
    assert result["success"] == 0, result
    assert result["error_message"]
    return str(result["error_code"])


# --- paging ----------------------------------------------------------------------------


def test_sandbox_accepts_sdk_minimal_body(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    result = shared_raw.call(Sort=None, Offset=0, Count=0, Filter=SDK_EMPTY_FILTER)
    data = result["data"]
    assert data["total_count"] == len(snapshot) == len(data["data"]) == 300
    assert data["start_offset"] == 0
    assert [o["id"] for o in data["data"]] == [o["id"] for o in snapshot]


def test_sandbox_pages_cover_every_order_once(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    seen: list[int] = []
    for offset in range(0, 300, 70):
        data = shared_raw.call(Count=70, Offset=offset, Sort="orderdate")["data"]
        assert data["total_count"] == 300
        assert data["start_offset"] == offset
        seen += [o["id"] for o in data["data"]]
    assert sorted(seen) == [o["id"] for o in snapshot]


def test_sandbox_offset_past_the_end_is_empty(shared_raw: RawClient) -> None:
    data = shared_raw.call(Count=10, Offset=1000)["data"]
    assert data == {"total_count": 300, "start_offset": 1000, "data": []}


def test_sandbox_count_zero_returns_all_from_offset(shared_raw: RawClient) -> None:
    assert len(shared_raw.ids(Count=0, Offset=250)) == 50


def test_sandbox_accepts_string_paging(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    assert shared_raw.ids(Count="5", Offset="2") == [o["id"] for o in snapshot[2:7]]


@pytest.mark.parametrize(
    ("name", "value"), [("Count", -1), ("Offset", "x"), ("Count", 2.5)]
)
def test_sandbox_rejects_bad_paging(
    shared_raw: RawClient, name: str, value: Any
) -> None:
    assert _error(shared_raw, **{name: value}) == "invalid_paging"


# --- operators ---------------------------------------------------------------------------


def _like(name: str, pattern: str) -> Callable[[Order], bool]:
    glob = pattern.replace("%", "*").replace("_", "?")
    return lambda o: fnmatch.fnmatchcase(o[name].casefold(), glob.casefold())


OPERATOR_CASES: list[tuple[str, str, Any, Callable[[Order], bool]]] = [
    ("id", "EQ", "1100", lambda o: o["id"] == 1100),
    ("id", "EQ", 1100, lambda o: o["id"] == 1100),
    ("ship_lname", "EQ", "smith", lambda o: o["ship_lname"] == "Smith"),
    ("ship_state", "NE", "CA", lambda o: o["ship_state"] != "CA"),
    ("total", "GT", "50.5", lambda o: o["total"] > 50.5),
    ("total", "GE", 40, lambda o: o["total"] >= 40),
    ("total", "LT", "30", lambda o: o["total"] < 30),
    ("pay_status", "LE", "100", lambda o: o["pay_status"] <= 100),
    ("ship_city", "CO", "AN", lambda o: "an" in o["ship_city"].lower()),
    ("ship_city", "NC", "an", lambda o: "an" not in o["ship_city"].lower()),
    ("bill_lname", "LIKE", "m%", _like("bill_lname", "m%")),
    ("bill_fname", "LIKE", "_a%", lambda o: o["bill_fname"][1:2].lower() == "a"),
    (
        "bill_lname",
        "NOTLIKE",
        "%z",
        lambda o: not o["bill_lname"].lower().endswith("z"),
    ),
    ("id", "LIKE", "11%", lambda o: str(o["id"]).startswith("11")),
    ("ship_res", "TRUE", None, lambda o: o["ship_res"] is True),
    ("ship_res", "FALSE", "None", lambda o: o["ship_res"] is False),
    ("ship_addr2", "NULL", None, lambda o: o["ship_addr2"] == ""),
    ("ship_addr2", "TRUE", "None", lambda o: o["ship_addr2"] != ""),
    ("id", "IN", "1001,1100,1200", lambda o: o["id"] in (1001, 1100, 1200)),
    ("ship_state", "IN", "ca,NY", lambda o: o["ship_state"] in ("CA", "NY")),
    ("status", "NOT_IN", "200,300", lambda o: o["status"] not in (200, 300)),
    ("ship_res", "EQ", "1", lambda o: o["ship_res"] is True),
    ("cust_login", "CO", "smith", lambda o: "smith" in o["cust_login"].lower()),
    ("business_title", "NULL", None, lambda o: o["business_title"] == ""),
    ("note_count", "GT", "0", lambda o: o["note_count"] > 0),
    ("dt_updated", "GT", "0", lambda o: True),
]


@pytest.mark.parametrize(("field", "operator", "value", "expect"), OPERATOR_CASES)
def test_sandbox_operator_matches_reference(
    shared_raw: RawClient,
    snapshot: list[Order],
    field: str,
    operator: str,
    value: Any,
    expect: Callable[[Order], bool],
) -> None:
    got = shared_raw.ids(Filter=[search(entry(field, operator, value))])
    wanted = [o["id"] for o in snapshot if expect(o)]
    assert got == wanted
    assert len(wanted) > 0 or operator == "EQ"  # the case really selects something


def test_sandbox_operators_cover_the_documented_set() -> None:
    used = {case[1] for case in OPERATOR_CASES} | {"SUBWHERE"}
    documented = (
        "EQ GT GE LT LE CO NC LIKE NOTLIKE NE TRUE FALSE NULL IN NOT_IN SUBWHERE"
    )
    assert used == set(documented.split())


def test_sandbox_range_on_dates_uses_same_answer_as_scan(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    cut = sorted(o["orderdate"] for o in snapshot)[150]
    indexed = shared_raw.ids(Filter=[search(entry("orderdate", "GE", str(cut)))])
    # An OR with a never-true entry defeats the index and forces a scan.
    scanned = shared_raw.ids(
        Filter=[search(entry("orderdate", "GE", cut), entry("id", "EQ", "-1"))]
    )
    assert indexed == scanned == [o["id"] for o in snapshot if o["orderdate"] >= cut]


@pytest.mark.parametrize(
    ("entries", "code"),
    [
        ([entry("nope", "EQ", "1")], "invalid_search_field"),
        ([entry("cust_id", "EQ", "1")], "invalid_search_field"),  # use Customer_ID
        ([entry("payment_module", "EQ", "x")], "invalid_search_field"),  # sort only
        ([entry("id", "BEGINS", "1")], "invalid_search_operator"),
        ([entry("id", "NOT_NULL")], "invalid_search_operator"),
        ([entry("id", "eq", "1")], "invalid_search_operator"),
        ([entry("orderdate", "GE", "2024-01-01")], "invalid_search_value"),
        ([entry("id", "EQ")], "invalid_search_value"),
        ([entry("id", "IN", "1,x")], "invalid_search_value"),
        ([entry("search_XOR", "SUBWHERE", [])], "invalid_search_field"),
        ([entry("search_AND", "SUBWHERE", "x")], "invalid_filter"),
    ],
)
def test_sandbox_refuses_bad_search(
    shared_raw: RawClient, entries: list[dict[str, Any]], code: str
) -> None:
    assert _error(shared_raw, Filter=[search(*entries)]) == code


def test_sandbox_refusal_names_the_field(shared_raw: RawClient) -> None:
    result = shared_raw.call(Filter=[search(entry("nope", "EQ", "1"))])
    assert result["validation_error"] is True
    assert "nope" in result["error_message"]


# --- AND / OR / SUBWHERE -----------------------------------------------------------------


def _ids(snapshot: list[Order], test: Callable[[Order], bool]) -> list[int]:
    return [o["id"] for o in snapshot if test(o)]


def test_sandbox_ands_separate_search_filters(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    got = shared_raw.ids(
        Filter=[
            search(entry("ship_state", "EQ", "CA")),
            search(entry("total", "GT", "40")),
        ]
    )
    assert got == _ids(snapshot, lambda o: o["ship_state"] == "CA" and o["total"] > 40)


def test_sandbox_ors_entries_within_one_filter(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    got = shared_raw.ids(
        Filter=[
            search(entry("ship_state", "EQ", "CA"), entry("ship_state", "EQ", "NY"))
        ]
    )
    assert got == _ids(snapshot, lambda o: o["ship_state"] in ("CA", "NY"))


def test_sandbox_sdk_and_chain(shared_raw: RawClient, snapshot: list[Order]) -> None:
    cut = snapshot[100]["orderdate"]
    got = shared_raw.ids(
        Filter=[search(entry("orderdate", "GE", str(cut)),
                       entry("search_AND", "SUBWHERE", [entry("id", "GT", "1200")]))]
    )  # fmt: skip
    assert got == _ids(snapshot, lambda o: o["orderdate"] >= cut and o["id"] > 1200)


def test_sandbox_sdk_or_chain(shared_raw: RawClient, snapshot: list[Order]) -> None:
    got = shared_raw.ids(
        Filter=[search(entry("ship_lname", "EQ", "Smith"),
                       entry("search_OR", "SUBWHERE", [entry("ship_lname", "EQ", "Lee")]))]
    )  # fmt: skip
    assert got == _ids(snapshot, lambda o: o["ship_lname"] in ("Smith", "Lee"))


def test_sandbox_sdk_nested_group(shared_raw: RawClient, snapshot: list[Order]) -> None:
    # status = 100 AND (pay_status = 200 OR pay_status = 0), as SDK 2.7.0 emits it
    group = [
        entry("search", "SUBWHERE", [entry("pay_status", "EQ", "200")]),
        entry("search_OR", "SUBWHERE", [entry("pay_status", "EQ", "0")]),
    ]
    got = shared_raw.ids(
        Filter=[
            search(entry("status", "EQ", "100"), entry("search_AND", "SUBWHERE", group))
        ]
    )
    want = _ids(snapshot, lambda o: o["status"] == 100 and o["pay_status"] in (0, 200))
    assert got == want
    assert want != _ids(snapshot, lambda o: o["status"] == 100)


def test_sandbox_or_of_an_and_group(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    # ship_state = OR  OR  (ship_state = CA AND total > 60)
    group = [entry("ship_state", "EQ", "CA"),
             entry("search_AND", "SUBWHERE", [entry("total", "GT", "60")])]  # fmt: skip
    got = shared_raw.ids(
        Filter=[
            search(
                entry("ship_state", "EQ", "OR"), entry("search_OR", "SUBWHERE", group)
            )
        ]
    )
    want = _ids(
        snapshot,
        lambda o: (
            o["ship_state"] == "OR" or (o["ship_state"] == "CA" and o["total"] > 60)
        ),
    )
    assert got == want


def test_sandbox_folds_left_to_right(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    # a OR b AND c reads (a OR b) AND c: no precedence (the inferred model)
    got = shared_raw.ids(
        Filter=[search(entry("ship_state", "EQ", "CA"), entry("ship_state", "EQ", "NY"),
                       entry("search_AND", "SUBWHERE", [entry("total", "LT", "50")]))]
    )  # fmt: skip
    assert got == _ids(
        snapshot, lambda o: o["ship_state"] in ("CA", "NY") and o["total"] < 50
    )


def test_sandbox_empty_search_matches_all(shared_raw: RawClient) -> None:
    assert (
        len(
            shared_raw.ids(
                Filter=[search(), search(entry("search_AND", "SUBWHERE", []))]
            )
        )
        == 300
    )


# --- custom filters --------------------------------------------------------------------------


def test_sandbox_custom_filters(shared_raw: RawClient, snapshot: list[Order]) -> None:
    customer = next(o["cust_id"] for o in snapshot if o["cust_id"])
    assert shared_raw.ids(Filter=[{"name": "Customer_ID", "value": customer}]) == _ids(
        snapshot, lambda o: o["cust_id"] == customer
    )
    assert shared_raw.ids(Filter=[{"name": "pay_id", "value": "5"}]) == _ids(
        snapshot, lambda o: o["pay_id"] == 5
    )
    assert shared_raw.ids(Filter=[{"name": "payment", "value": "auth_0_capt"}]) == _ids(
        snapshot, lambda o: o["pay_status"] == 100
    )
    assert shared_raw.ids(Filter=[{"name": "product_code", "value": "mug-01"}]) == _ids(
        snapshot, lambda o: any(i["code"] == "MUG-01" for i in o["items"])
    )
    business = next(o["customer"]["account_id"] for o in snapshot
                    if o["customer"] and o["customer"]["account_id"])  # fmt: skip
    assert shared_raw.ids(
        Filter=[{"name": "BusinessAccount_ID", "value": business}]
    ) == _ids(
        snapshot,
        lambda o: bool(o["customer"]) and o["customer"]["account_id"] == business,
    )


def test_sandbox_refuses_bad_custom_filter(shared_raw: RawClient) -> None:
    assert (
        _error(shared_raw, Filter=[{"name": "payment", "value": "paid"}])
        == "invalid_filter"
    )
    assert (
        _error(shared_raw, Filter=[{"name": "Customer_ID", "value": "x"}])
        == "invalid_filter"
    )
    assert _error(shared_raw, Filter={"name": "search"}) == "invalid_filter"


# --- sorting and tie order ----------------------------------------------------------------


def _burst(snapshot: list[Order]) -> tuple[int, list[int]]:
    by_date: dict[int, list[int]] = {}
    for o in snapshot:
        by_date.setdefault(o["orderdate"], []).append(o["id"])
    date, ids = max(by_date.items(), key=lambda kv: len(kv[1]))
    assert len(ids) > 100  # ties span more than a page of 100
    return date, sorted(ids)


@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("tie", ["id", "id-desc"])
def test_sandbox_sort_with_tie_order(
    shared_sandbox: Sandbox, snapshot: list[Order], tie: str, descending: bool
) -> None:
    raw = RawClient(shared_sandbox)
    shared_sandbox.store.tie_order = tie
    try:
        rows = raw.orders(Sort="-orderdate" if descending else "orderdate")
    finally:
        shared_sandbox.store.tie_order = "id"
    dates = [o["orderdate"] for o in rows]
    assert dates == sorted(dates, reverse=descending)
    date, burst = _burst(snapshot)
    ties = [o["id"] for o in rows if o["orderdate"] == date]
    assert ties == (burst if tie == "id" else burst[::-1])


def test_sandbox_random_ties_reshuffle_per_request() -> None:
    with Sandbox(orders=300, seed=11, tie_order="random") as sb:
        raw = RawClient(sb)
        date, burst = _burst(sb.store.orders_snapshot())
        pages = []
        for _ in range(3):
            rows = raw.orders(
                Sort="orderdate", Filter=[search(entry("orderdate", "EQ", date))]
            )
            pages.append([o["id"] for o in rows])
        assert all(sorted(p) == burst for p in pages)
        assert len({tuple(p) for p in pages}) == 3
        assert pages[0] != burst


def test_sandbox_random_ties_can_split_pages_inconsistently() -> None:
    """Paging through ties under random order loses and repeats rows, as on MySQL."""
    with Sandbox(orders=300, seed=11, tie_order="random") as sb:
        raw = RawClient(sb)
        seen = raw.ids(Sort="orderdate", Count=100, Offset=0)
        seen += raw.ids(Sort="orderdate", Count=100, Offset=100)
        seen += raw.ids(Sort="orderdate", Count=100, Offset=200)
        assert len(seen) == 300
        assert len(set(seen)) < 300


def test_sandbox_sorts_text_case_insensitively(shared_raw: RawClient) -> None:
    rows = shared_raw.orders(Sort="-ship_lname")
    names = [o["ship_lname"].casefold() for o in rows]
    assert names == sorted(names, reverse=True)


def test_sandbox_sorts_by_payment_module(shared_raw: RawClient) -> None:
    rows = shared_raw.orders(Sort="payment_module", Filter=[columns("payment_module")])
    modules = [o["payment_module"] for o in rows]
    assert modules == sorted(modules)
    assert len(set(modules)) >= 3


@pytest.mark.parametrize("sort", ["nope", "ship_id", "-", 5])
def test_sandbox_refuses_bad_sort(shared_raw: RawClient, sort: Any) -> None:
    assert _error(shared_raw, Sort=sort) == "invalid_sort"


# --- columns -----------------------------------------------------------------------------------


def test_sandbox_base_columns_only_without_ondemand(shared_raw: RawClient) -> None:
    row = shared_raw.orders(Count=1)[0]
    assert list(row) == list(BASE_COLUMNS)


def test_sandbox_adds_requested_columns_only(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    row = shared_raw.orders(
        Count=1, Filter=[columns("items", "payments", "ship_method")]
    )[0]
    assert set(row) - set(BASE_COLUMNS) == {"items", "payments", "ship_method"}
    assert row["items"] == snapshot[0]["items"]


def test_sandbox_all_columns_match_snapshot(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    names = ["ship_method", "cust_login", "cust_pw_email", "business_title", "payment_module",
             "customer", "items", "charges", "coupons", "discounts", "payments", "notes",
             "parts", "shipments", "returns", "CustomField_Values:*"]  # fmt: skip
    rows = shared_raw.orders(Filter=[columns(*names)])
    assert rows == snapshot


def test_sandbox_ignores_wrong_case_ondemand(shared_raw: RawClient) -> None:
    row = shared_raw.orders(Count=1, Filter=[columns("Items"), {"name": "OnDemandColumns",
                                                                 "value": ["items"]}])[0]  # fmt: skip
    assert "items" not in row and "Items" not in row


def test_sandbox_custom_field_columns(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    every = shared_raw.orders(
        Count=1, Filter=[columns("CustomField_Values:customfields:*")]
    )[0]
    assert every["CustomField_Values"] == snapshot[0]["CustomField_Values"]
    one = shared_raw.orders(
        Count=1, Filter=[columns("CustomField_Values:customfields:gift_message")]
    )[0]
    assert set(one["CustomField_Values"]["customfields"]) == {"gift_message"}


def test_sandbox_payment_data_needs_passphrase(shared_raw: RawClient) -> None:
    assert _error(shared_raw, Filter=[columns("payment_data")]) == "passphrase_required"
    rows = shared_raw.orders(Filter=[columns("payment_data")], Passphrase="secret")
    paid = [p for o in rows for p in o["payments"]]
    assert paid
    assert all("data" in p for p in paid)
    plain = shared_raw.orders(Filter=[columns("payments")])
    assert all("data" not in p for o in plain for p in o["payments"])


def test_sandbox_dt_updated_switch_off() -> None:
    with Sandbox(orders=20, supports_dt_updated=False) as sb:
        raw = RawClient(sb)
        assert "dt_updated" not in raw.orders(Count=1)[0]
        assert _error(raw, Filter=[search(entry("dt_updated", "GE", "0"))]) == (
            "invalid_search_field"
        )
        assert _error(raw, Sort="-dt_updated") == "invalid_sort"


def test_sandbox_sorts_and_filters_dt_updated(
    shared_raw: RawClient, snapshot: list[Order]
) -> None:
    cut = sorted(o["dt_updated"] for o in snapshot)[200]
    rows = shared_raw.orders(
        Sort="dt_updated", Filter=[search(entry("dt_updated", "GE", cut))]
    )
    stamps = [o["dt_updated"] for o in rows]
    assert stamps == sorted(stamps)
    assert [o["id"] for o in sorted(rows, key=lambda o: o["id"])] == _ids(
        snapshot, lambda o: o["dt_updated"] >= cut
    )


# --- dispatch ------------------------------------------------------------------------------------


def test_sandbox_refuses_unknown_function(shared_raw: RawClient) -> None:
    assert shared_raw.call("Order_Load")["error_code"] == "invalid_function"


def test_sandbox_refuses_wrong_module(shared_raw: RawClient) -> None:
    result = shared_raw.call("Module", Module_Code="nope", Module_Function="X")
    assert result["error_code"] == "invalid_module"


def test_sandbox_refuses_wrong_store_code(shared_raw: RawClient) -> None:
    assert shared_raw.call(Store_Code="OTHER")["error_code"] == "invalid_store"


def test_sandbox_accepts_doc_spelling_of_store_code(shared_raw: RawClient) -> None:
    body = shared_raw.body(Count=1)
    body["Store_code"] = body.pop("Store_Code")
    assert shared_raw.post(body).json()["success"] == 1


def test_sandbox_refuses_bad_json(shared_raw: RawClient) -> None:
    response = shared_raw.post(b'{"Function": ')
    assert response.status_code == 200
    assert response.json()["error_code"] == "invalid_json"
    assert shared_raw.post(b"[1]").json()["error_code"] == "invalid_json"


def test_sandbox_refuses_multicall(shared_raw: RawClient) -> None:
    body = shared_raw.body(Operations=[{"Function": "OrderList_Load_Query"}])
    assert shared_raw.post(body).json()["error_code"] == "multicall_unsupported"


def test_sandbox_other_methods_and_paths(
    shared_raw: RawClient, shared_sandbox: Sandbox
) -> None:
    session = shared_raw.session
    assert session.get(shared_sandbox.url, timeout=5).status_code == 405
    assert session.get(shared_sandbox.url, timeout=5).headers["Allow"] == "POST"
    other = shared_sandbox.url.replace("/mm5/json.mvc", "/mm5/admin.mvc")
    assert session.post(other, data=b"{}", timeout=5).status_code == 404

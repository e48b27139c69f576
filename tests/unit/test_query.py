"""Pure query builders."""

from __future__ import annotations

import pytest

from miva_sync.store.query import (
    DEFAULT_COLUMNS,
    Condition,
    ListQuery,
    chunked,
    parse_columns,
)


def test_query_and_is_separate_filters_or_is_one_filter() -> None:
    query = (
        ListQuery(count=50)
        .where(Condition("orderdate", "GE", 1700000000))
        .where(Condition("status", "EQ", 100), Condition("status", "EQ", 200))
        .sorted_by("orderdate", descending=True)
    )
    assert query.to_params() == {
        "Count": 50,
        "Offset": 0,
        "Sort": "-orderdate",
        "Filter": [
            {
                "name": "search",
                "value": [
                    {"field": "orderdate", "operator": "GE", "value": "1700000000"}
                ],
            },
            {
                "name": "search",
                "value": [
                    {"field": "status", "operator": "EQ", "value": "100"},
                    {"field": "status", "operator": "EQ", "value": "200"},
                ],
            },
        ],
    }


def test_query_in_list_and_valueless_operators() -> None:
    query = (
        ListQuery()
        .where(Condition("id", "IN", [1, 2, 3]))
        .where(Condition("ship_res", "TRUE"))
    )
    search = [f["value"][0] for f in query.to_params()["Filter"]]
    assert search == [
        {"field": "id", "operator": "IN", "value": "1,2,3"},
        {"field": "ship_res", "operator": "TRUE"},
    ]


def test_query_columns_and_custom_filters() -> None:
    params = (
        ListQuery()
        .with_columns(["items"])
        .with_custom_filter("Customer_ID", 5)
        .to_params()
    )
    assert params["Filter"] == [
        {"name": "ondemandcolumns", "value": ["items"]},
        {"name": "Customer_ID", "value": 5},
    ]


@pytest.mark.parametrize("count", [0, -1, 1001])
def test_query_never_sends_count_zero_or_too_large(count: int) -> None:
    with pytest.raises(ValueError, match="page size"):
        ListQuery(count=count)


def test_query_rejects_unknown_operator_and_payment_data_without_passphrase() -> None:
    with pytest.raises(ValueError, match="operator"):
        Condition("id", "BETWEEN", "1,2")
    with pytest.raises(ValueError, match="passphrase"):
        ListQuery(columns=("items", "payment_data"))
    # asked for by name, it is kept; the query then needs the passphrase
    assert parse_columns("items,payment_data") == ("items", "payment_data")
    query = ListQuery(columns=("payment_data",), passphrase="pw")
    assert query.to_params()["Passphrase"] == "pw"
    # a query without card columns (a boundary probe, a re-check) never carries it
    assert "Passphrase" not in query.with_columns(("items",)).to_params()
    assert "pw" not in repr(query)


def test_query_chunked_ids() -> None:
    assert [len(c) for c in chunked(list(range(250)))] == [100, 100, 50]


def test_query_parse_columns_default_expands() -> None:
    assert parse_columns("default, items") == DEFAULT_COLUMNS
    assert parse_columns("items,,charges") == ("items", "charges")

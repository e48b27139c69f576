"""The orderworkflow module: queue listing, acknowledgement and no-ack mode."""

from __future__ import annotations

from typing import Any

import pytest

from miva_sync.sandbox import DEFAULT_QUEUE, RECEIVED_QUEUE, Sandbox
from tests.support import sandbox_fixtures
from tests.support.sandbox_fixtures import RawClient, columns, entry, search

# Fixtures shared with the other sandbox test modules.
raw = sandbox_fixtures.raw
sandbox = sandbox_fixtures.sandbox

LOAD = "QueueOrderList_Load_Query"
ACK = "OrderList_Acknowledge"


def _page(raw: RawClient, queue: str = DEFAULT_QUEUE, **fields: Any) -> dict[str, Any]:
    result = raw.queue(LOAD, Queue_Code=queue, **fields)
    assert result["success"] == 1, result
    data: dict[str, Any] = result["data"]
    return data


def test_sandbox_fresh_default_queue_holds_every_order(
    sandbox: Sandbox, raw: RawClient
) -> None:
    visible = [o["id"] for o in sandbox.store.orders_snapshot()]
    assert sandbox.store.queue_ids(DEFAULT_QUEUE) == visible
    data = _page(raw, Count=0)
    assert data["total_count"] == len(visible)
    assert [o["id"] for o in data["data"]] == visible


def test_sandbox_ack_mode_keeps_orders_until_acknowledged(
    sandbox: Sandbox, raw: RawClient
) -> None:
    first = [o["id"] for o in _page(raw, Count=10)["data"]]
    assert [o["id"] for o in _page(raw, Count=10)["data"]] == first  # still there
    assert raw.queue(ACK, Order_Ids=first) == {"success": 1, "processed": 1}
    assert not set(first) & set(sandbox.store.queue_ids(DEFAULT_QUEUE))
    assert set(first) <= set(sandbox.store.queue_ids(RECEIVED_QUEUE))
    assert not set(first) & {o["id"] for o in _page(raw, Count=10)["data"]}


@pytest.mark.parametrize(
    "ids", [None, [], "1001", [1001, "x"], [True], [99999999]], ids=str
)
def test_sandbox_ack_processes_nothing_for_bad_ids(
    sandbox: Sandbox, raw: RawClient, ids: Any
) -> None:
    before = sandbox.store.queue_ids(DEFAULT_QUEUE)
    fields = {} if ids is None else {"Order_Ids": ids}
    assert raw.queue(ACK, **fields) == {"success": 1, "processed": 0}
    assert sandbox.store.queue_ids(DEFAULT_QUEUE) == before


def test_sandbox_no_ack_mode_moves_orders_on_download(
    sandbox: Sandbox, raw: RawClient
) -> None:
    sandbox.store.create_queue("fast", ack=False)
    total = len(sandbox.store.queue_ids("fast"))
    first = _page(raw, "fast", Count=10)
    assert first["total_count"] == total
    ids = [o["id"] for o in first["data"]]
    assert not set(ids) & set(sandbox.store.queue_ids("fast"))
    assert set(ids) <= set(sandbox.store.queue_ids(RECEIVED_QUEUE))
    second = _page(raw, "fast", Count=10)
    assert second["total_count"] == total - 10
    assert not set(ids) & {o["id"] for o in second["data"]}


def test_sandbox_updated_order_reenters_queue(sandbox: Sandbox, raw: RawClient) -> None:
    order_id = sandbox.store.queue_ids(DEFAULT_QUEUE)[0]
    assert raw.queue(ACK, Order_Ids=[order_id])["processed"] == 1
    assert order_id not in sandbox.store.queue_ids(DEFAULT_QUEUE)
    updated = sandbox.store.update_order(order_id, status=200)
    assert order_id in sandbox.store.queue_ids(DEFAULT_QUEUE)
    row = next(o for o in _page(raw, Count=0)["data"] if o["id"] == order_id)
    assert row["status"] == 200
    assert row["dt_updated"] == updated["dt_updated"] >= sandbox.now() - 1


def test_sandbox_new_queue_without_fill_is_empty(
    sandbox: Sandbox, raw: RawClient
) -> None:
    sandbox.store.create_queue("later", fill=False)
    assert _page(raw, "later")["total_count"] == 0
    added = sandbox.store.add_order()
    assert [o["id"] for o in _page(raw, "later")["data"]] == [added["id"]]


def test_sandbox_queue_listing_filters_sorts_and_adds_columns(
    sandbox: Sandbox, raw: RawClient
) -> None:
    data = _page(
        raw,
        Sort="-id",
        Count=5,
        Filter=[search(entry("pay_status", "EQ", "200")), columns("items")],
    )
    rows = data["data"]
    assert [o["id"] for o in rows] == sorted((o["id"] for o in rows), reverse=True)
    assert all(o["pay_status"] == 200 and "items" in o for o in rows)


@pytest.mark.parametrize("queue", [None, "", "nope"])
def test_sandbox_refuses_unknown_queue(raw: RawClient, queue: str | None) -> None:
    fields = {} if queue is None else {"Queue_Code": queue}
    assert raw.queue(LOAD, **fields)["error_code"] == "invalid_queue"


def test_sandbox_refuses_unknown_module_function(raw: RawClient) -> None:
    assert raw.queue("OrderList_Archive")["error_code"] == "invalid_module_function"


def test_sandbox_queue_function_is_a_module_function(raw: RawClient) -> None:
    result = raw.call(LOAD, Queue_Code=DEFAULT_QUEUE)
    assert result["error_code"] == "invalid_function"

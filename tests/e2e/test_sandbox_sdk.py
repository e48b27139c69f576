"""A Miva client nobody here wrote: the official merchantapi SDK 2.7.0, unchanged."""

from __future__ import annotations

import time
from collections.abc import Iterator

import merchantapi.client
import pytest
from merchantapi.request import Module, OrderListLoadQuery

from miva_sync.sandbox import DEFAULT_QUEUE, Sandbox
from miva_sync.sandbox.quirks import Quirks

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

COLUMNS = ["ship_method", "customer", "items", "charges", "coupons", "discounts",
           "payments", "notes", "shipments", "CustomField_Values:*"]  # fmt: skip


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=250, seed=21, tie_order="id") as sb:
        yield sb


def _client(sb: Sandbox, **options: object) -> merchantapi.client.Client:
    return merchantapi.client.Client(
        sb.url,
        sb.api_token,
        sb.signing_key or "",
        {"default_store_code": sb.store_code, **options},
    )


def test_sandbox_sdk_lists_filtered_orders_with_columns(sandbox: Sandbox) -> None:
    since = int(time.time()) - 30 * 86400
    request = OrderListLoadQuery(_client(sandbox))
    request.set_count(20).set_sort("-orderdate")
    request.set_filters(
        request.filter_expression()
        .greater_than_equal("orderdate", since)
        .and_x(
            request.filter_expression()
            .equal("pay_status", 200)
            .or_equal("pay_status", 100)
        )
    )
    request.set_on_demand_columns(COLUMNS)
    response = request.send()
    assert response.is_success(), response.get_error_message()
    expected = [o for o in sandbox.store.orders_snapshot()
                if o["orderdate"] >= since and o["pay_status"] in (100, 200)]  # fmt: skip
    assert response.get_total_count() == len(expected) > 20
    orders = response.get_orders()
    assert len(orders) == 20
    by_id = {o["id"]: o for o in expected}
    dates = [o.get_order_date() for o in orders]
    assert dates == sorted(dates, reverse=True)
    for order in orders:
        want = by_id[order.get_id()]
        assert order.get_dt_updated() == want["dt_updated"]
        assert float(order.get_total()) == want["total"]
        assert [i.get_code() for i in order.get_items()] == [
            i["code"] for i in want["items"]
        ]
        assert [c.get_type() for c in order.get_charges()] == [
            c["type"] for c in want["charges"]
        ]
        assert len(order.get_payments()) == len(want["payments"])
        if want["cust_id"]:
            assert order.get_customer().get_login() == want["customer"]["login"]
        assert order.get_ship_method() == want["ship_method"]
    with_options = [i for o in orders for i in o.get_items() if i.get_options()]
    assert with_options and with_options[0].get_options()[0].get_attribute_code()


def test_sandbox_sdk_pages_through_everything(sandbox: Sandbox) -> None:
    client = _client(sandbox)
    seen: list[int] = []
    offset = 0
    while True:
        request = OrderListLoadQuery(client)
        request.set_count(100).set_offset(offset).set_sort("orderdate")
        response = request.send()
        assert response.is_success()
        page = [o.get_id() for o in response.get_orders()]
        seen += page
        offset += 100
        if offset >= response.get_total_count():
            break
    assert sorted(seen) == [o["id"] for o in sandbox.store.orders_snapshot()]
    assert len(seen) == len(set(seen))


def test_sandbox_sdk_signs_with_sha1(sandbox: Sandbox) -> None:
    request = OrderListLoadQuery(_client(sandbox, signing_key_digest="sha1"))
    request.set_count(1)
    assert request.send().is_success()
    assert (
        sandbox.requests[-1]
        .headers["X-Miva-API-Authorization"]
        .startswith("MIVA-HMAC-SHA1 ")
    )


def test_sandbox_sdk_token_only() -> None:
    with Sandbox(orders=10, signing_key=None) as sb:
        request = OrderListLoadQuery(_client(sb, signing_key_digest=None))
        request.set_count(3)
        response = request.send()
        assert response.is_success() and len(response.get_orders()) == 3


WRONG_KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"


def test_sandbox_sdk_parses_access_denied_for_wrong_key(sandbox: Sandbox) -> None:
    """As from a real store: HTTP 200, and the SDK reads the refusal from the body."""
    client = merchantapi.client.Client(
        sandbox.url, sandbox.api_token, WRONG_KEY,
        {"default_store_code": sandbox.store_code},
    )  # fmt: skip
    response = OrderListLoadQuery(client).send()
    assert not response.is_success() and response.is_error()
    assert response.get_error_code() == "access_denied"
    assert response.get_error_message() == "Invalid request signature"
    assert sandbox.requests[-1].status == 200


def test_sandbox_sdk_raises_on_401_behind_a_web_server_layer() -> None:
    with Sandbox(orders=5, seed=21, quirks=Quirks(auth_error_401=True)) as sb:
        client = merchantapi.client.Client(
            sb.url, sb.api_token, WRONG_KEY, {"default_store_code": sb.store_code}
        )
        with pytest.raises(merchantapi.client.ClientHttpAuthenticationError):
            OrderListLoadQuery(client).send()
        assert sb.requests[-1].status == 401


def test_sandbox_sdk_reads_queue_and_acknowledges() -> None:
    with Sandbox(orders=40, seed=2, tie_order="id") as sb:
        client = _client(sb)
        load = Module(client)
        load.set_module_code("orderworkflow").set_module_function(
            "QueueOrderList_Load_Query"
        )
        load.set_module_field("Queue_Code", DEFAULT_QUEUE)
        load.set_module_field("Count", 5).set_module_field("Offset", 0)
        response = load.send()
        assert response.is_success()
        rows = response.get_data()["data"]["data"]  # get_data() is the whole body
        ids = [row["id"] for row in rows]
        assert len(ids) == 5
        ack = Module(client)
        ack.set_module_code("orderworkflow").set_module_function(
            "OrderList_Acknowledge"
        )
        ack.set_module_field("Order_Ids", ids)
        result = ack.send()
        assert result.is_success()
        assert result.get_data()["processed"] == 1
        assert not set(ids) & set(sb.store.queue_ids(DEFAULT_QUEUE))

"""The Python API for tests: hooks, the request log, store changes, webhooks."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from miva_sync.sandbox import DEFAULT_QUEUE, RequestLogEntry, Sandbox, Store
from tests.support import sandbox_fixtures
from tests.support.sandbox_fixtures import FixedClock, RawClient

# Fixtures shared with the other sandbox test modules.
raw = sandbox_fixtures.raw
sandbox = sandbox_fixtures.sandbox


def test_sandbox_env_and_url(sandbox: Sandbox) -> None:
    env = sandbox.env()
    assert (
        env["MIVA_URL"]
        == sandbox.url
        == f"http://127.0.0.1:{sandbox.port}/mm5/json.mvc"
    )
    assert sandbox.port > 0
    assert env["MIVA_STORE_CODE"] == "SANDBOX"
    assert env["MIVA_API_TOKEN"] == sandbox.api_token and len(sandbox.api_token) == 32
    assert env["MIVA_SIGNING_KEY"] == sandbox.signing_key


def test_sandbox_token_only_env_has_empty_key() -> None:
    sb = Sandbox(orders=1, signing_key=None, api_token="tok")
    assert sb.env()["MIVA_SIGNING_KEY"] == ""
    assert sb.env()["MIVA_API_TOKEN"] == "tok"


def test_sandbox_secrets_differ_per_instance() -> None:
    assert Sandbox(orders=0).signing_key != Sandbox(orders=0).signing_key


def test_sandbox_hook_runs_before_next_request(
    sandbox: Sandbox, raw: RawClient
) -> None:
    added: list[dict[str, Any]] = []
    sandbox.after_request(1, lambda store: added.append(store.add_order()))
    first = raw.call(Count=10)["data"]
    assert len(added) == 1
    second = raw.call(Count=10, Offset=10)["data"]
    assert second["total_count"] == first["total_count"] + 1
    last = raw.call(Count=1, Sort="-id")["data"]["data"][0]
    assert last["id"] == added[0]["id"]


def test_sandbox_hook_for_past_request_is_refused(
    sandbox: Sandbox, raw: RawClient
) -> None:
    raw.call(Count=1)
    with pytest.raises(ValueError, match="already"):
        sandbox.after_request(1, lambda store: None)


def test_sandbox_failing_hook_is_reported_on_stop() -> None:
    sb = Sandbox(orders=3).start()
    sb.after_request(1, lambda store: store.update_order(-1))
    RawClient(sb).call(Count=1)
    with pytest.raises(RuntimeError, match="hook failed"):
        sb.stop()


def test_sandbox_request_log_and_watchers(sandbox: Sandbox, raw: RawClient) -> None:
    seen: list[tuple[int, RequestLogEntry]] = []
    sandbox.on_request(lambda n, e: seen.append((n, e)))
    raw.call(Count=2)
    raw.queue("OrderList_Acknowledge", Order_Ids=[])
    raw.post(raw.body(), header="MIVA wrong")
    log = sandbox.requests
    assert [e.n for e in log] == [n for n, _ in seen] == [1, 2, 3]
    assert log[0].function == "OrderList_Load_Query" and log[0].body["Count"] == 2
    assert (
        log[1].function == "Module"
        and log[1].module_function == "OrderList_Acknowledge"
    )
    assert [e.status for e in log] == [200, 200, 200]  # a refusal is HTTP 200
    assert log[2].error_code == "access_denied"
    # parsed for the log despite the refusal
    assert log[2].function == "OrderList_Load_Query"
    assert all(e.fault is None for e in log)
    assert sandbox.request_count == 3


def test_sandbox_add_order_takes_next_id_and_enters_queue(sandbox: Sandbox) -> None:
    store = sandbox.store
    top = max([o["id"] for o in store.orders_snapshot()] + store.hidden_ids())
    order = store.add_order()
    assert order["id"] > top
    assert order["orderdate"] == order["dt_updated"] == sandbox.now()
    assert order["id"] in store.queue_ids(DEFAULT_QUEUE)


def test_sandbox_add_order_overrides(sandbox: Sandbox) -> None:
    store = sandbox.store
    admin = store.add_order(id=50, kind="admin", ship_lname="Zed")
    assert admin["id"] == 50 and admin["ship_lname"] == "Zed"
    assert admin["payments"] == [] and admin["pay_status"] == 0
    with pytest.raises(ValueError, match="exists"):
        store.add_order(id=50)
    with pytest.raises(ValueError, match="unknown"):
        store.add_order(colour="red")


def test_sandbox_update_order_bumps_dt_updated() -> None:
    clock = FixedClock()
    with Sandbox(orders=30, now=clock) as sb:
        first = sb.store.orders_snapshot()[0]
        clock.value += 3600
        updated = sb.store.update_order(first["id"], status=300)
        assert updated["dt_updated"] == int(clock.value) > first["dt_updated"]
        assert updated["orderdate"] == first["orderdate"]
        pinned = sb.store.update_order(first["id"], dt_updated=123)
        assert pinned["dt_updated"] == 123
        with pytest.raises(ValueError, match="unknown"):
            sb.store.update_order(first["id"], nope=1)


def test_sandbox_reveal_late_number(sandbox: Sandbox, raw: RawClient) -> None:
    store = sandbox.store
    hidden = store.hidden_ids()
    assert hidden
    visible_ids = [o["id"] for o in store.orders_snapshot()]
    assert hidden[0] < max(visible_ids)  # a number below ones already visible
    assert hidden[0] not in raw.ids(Count=0)
    order = store.reveal(hidden[0])
    assert order["orderdate"] == order["dt_updated"] == sandbox.now()
    assert hidden[0] in raw.ids(Count=0)
    assert hidden[0] not in store.hidden_ids()
    assert hidden[0] in store.queue_ids(DEFAULT_QUEUE)


def test_sandbox_pay_admin_order(sandbox: Sandbox) -> None:
    store = sandbox.store
    unpaid = next(o for o in store.orders_snapshot() if o["pay_status"] == 0
                  and not o["payments"] and o["payment_module"] == "")  # fmt: skip
    store.acknowledge([unpaid["id"]])
    paid = store.pay(unpaid["id"])
    assert paid["pay_status"] == 200
    assert paid["payments"][0]["amount"] == paid["total"] == paid["total_capt"]
    assert paid["dt_updated"] == sandbox.now() >= unpaid["dt_updated"]
    assert unpaid["id"] in store.queue_ids(DEFAULT_QUEUE)
    with pytest.raises(ValueError, match="unpaid"):
        store.pay(unpaid["id"])


def test_sandbox_enqueue(sandbox: Sandbox) -> None:
    store = sandbox.store
    store.create_queue("manual", fill=False)
    order_id = store.orders_snapshot()[3]["id"]
    store.enqueue(order_id, "manual")
    assert store.queue_ids("manual") == [order_id]


def test_store_rejects_unknown_tie_order() -> None:
    with pytest.raises(ValueError, match="tie_order"):
        Store(1, tie_order="stable")


def test_sandbox_injected_clock_dates_orders() -> None:
    clock = FixedClock(1_700_000_000)
    with Sandbox(orders=50, now=clock) as sb:
        dates = [o["orderdate"] for o in sb.store.orders_snapshot()]
        assert 1_700_000_000 - 90 * 86400 <= min(dates) <= max(dates) < 1_700_000_000
        # request timestamps are checked against the same clock
        assert RawClient(sb).call(Count=1)["success"] == 1


@pytest.fixture
def receiver() -> Iterator[tuple[str, list[dict[str, Any]], threading.Event]]:
    got: list[dict[str, Any]] = []
    arrived = threading.Event()

    class Hook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            got.append(json.loads(self.rfile.read(int(self.headers["Content-Length"]))))
            got[-1]["_event"] = self.headers["X-Sandbox-Event"]
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
            arrived.set()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/hook", got, arrived
    server.shutdown()
    server.server_close()


def test_sandbox_posts_new_orders_to_webhook(
    receiver: tuple[str, list[dict[str, Any]], threading.Event],
) -> None:
    url, got, arrived = receiver
    with Sandbox(orders=5, webhook_url=url) as sb:
        order = sb.store.add_order()
        assert arrived.wait(5)
    assert got[0]["id"] == order["id"] and got[0]["_event"] == "created"
    assert "items" in got[0]


def test_sandbox_webhook_must_be_loopback() -> None:
    with pytest.raises(ValueError, match="loopback"):
        Sandbox(orders=1, webhook_url="http://example.com/hook")

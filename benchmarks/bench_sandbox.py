"""How fast the sandbox serves full orders, so it is never a benchmark's bottleneck.

Run: python benchmarks/bench_sandbox.py [--orders 20000] [--count 100]

Pages through the whole store from one thread (signed requests over loopback,
every on-demand column, sorted by orderdate with an orderdate range filter), then
times the store alone without HTTP.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import time

import requests

from miva_sync.sandbox import Sandbox

COLUMNS = ["ship_method", "cust_login", "cust_pw_email", "business_title",
           "payment_module", "customer", "items", "charges", "coupons", "discounts",
           "payments", "notes", "parts", "shipments", "returns",
           "CustomField_Values:*"]  # fmt: skip


def _sign(key: str, body: bytes) -> str:
    raw = base64.b64decode(key + "=" * (-len(key) % 4))
    return base64.b64encode(hmac.new(raw, body, hashlib.sha256).digest()).decode()


def _body(sb: Sandbox, offset: int, count: int) -> dict[str, object]:
    return {
        "Store_Code": sb.store_code,
        "Function": "OrderList_Load_Query",
        "Count": count,
        "Offset": offset,
        "Sort": "orderdate",
        "Filter": [
            {
                "name": "search",
                "value": [{"field": "orderdate", "operator": "GE", "value": "0"}],
            },
            {"name": "ondemandcolumns", "value": COLUMNS},
        ],
        "Miva_Request_Timestamp": int(time.time()),
    }


def over_http(sb: Sandbox, count: int) -> tuple[int, int, int, float]:
    """Page through every order; return (orders, requests, bytes, seconds)."""
    key = sb.signing_key or ""
    session = requests.Session()
    orders = calls = size = 0
    offset, total = 0, None
    started = time.perf_counter()
    while total is None or offset < total:
        body = json.dumps(_body(sb, offset, count)).encode()
        header = f"MIVA-HMAC-SHA256 {sb.api_token}:{_sign(key, body)}"
        response = session.post(
            sb.url, data=body, headers={"X-Miva-API-Authorization": header}, timeout=60
        )
        response.raise_for_status()
        data = response.json()["data"]
        total = data["total_count"]
        orders += len(data["data"])
        size += len(response.content)
        calls += 1
        offset += count
    return orders, calls, size, time.perf_counter() - started


def store_only(sb: Sandbox, count: int) -> tuple[int, float]:
    """The same pages answered by the store directly: (requests, seconds)."""
    calls, offset = 0, 0
    started = time.perf_counter()
    while offset < len(sb.store):
        sb.store.query(_body(sb, offset, count))
        calls += 1
        offset += count
    return calls, time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--tie-order", default="random")
    args = parser.parse_args()

    started = time.perf_counter()
    sandbox = Sandbox(orders=args.orders, seed=1, tie_order=args.tie_order)
    built = time.perf_counter() - started
    print(f"generated and serialised {args.orders} orders in {built:.2f} s")
    with sandbox as sb:
        orders, calls, size, seconds = over_http(sb, args.count)
        print(
            f"HTTP, one thread, Count={args.count}, all columns: {orders} orders in "
            f"{calls} requests, {seconds:.2f} s -> {orders / seconds:,.0f} orders/s, "
            f"{calls / seconds:,.1f} requests/s, {size / seconds / 1e6:,.1f} MB/s "
            f"({size / orders / 1024:.1f} KiB/order)"
        )
        calls, seconds = store_only(sb, args.count)
        print(
            f"store alone (no HTTP, no JSON parsing): {calls} pages in {seconds:.2f} s -> "
            f"{calls * args.count / seconds:,.0f} orders/s, {calls / seconds:,.1f} pages/s"
        )


if __name__ == "__main__":
    main()

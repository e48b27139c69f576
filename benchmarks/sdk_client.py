"""The official merchantapi SDK paging the same query and writing JSON lines.

Run: python benchmarks/sdk_client.py OUT.jsonl [--count 100] [--columns a,b]
(reads MIVA_URL, MIVA_STORE_CODE, MIVA_API_TOKEN, MIVA_SIGNING_KEY)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import merchantapi.client
from merchantapi.request import OrderListLoadQuery


def main() -> None:
    warnings.simplefilter("ignore", DeprecationWarning)
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--columns", default="")
    parser.add_argument("--since", type=int, default=0)
    args = parser.parse_args()
    client = merchantapi.client.Client(
        os.environ["MIVA_URL"],
        os.environ["MIVA_API_TOKEN"],
        os.environ.get("MIVA_SIGNING_KEY", ""),
        {"default_store_code": os.environ["MIVA_STORE_CODE"]},
    )
    offset, total, calls, written = 0, None, 0, 0
    with open(args.out, "w", encoding="utf-8") as out:  # noqa: PTH123 - a plain loop
        while total is None or offset < total:
            request = OrderListLoadQuery(client)
            request.set_count(args.count).set_offset(offset).set_sort("orderdate")
            request.set_filters(
                request.filter_expression().greater_than_equal("orderdate", args.since)
            )
            if args.columns:
                request.set_on_demand_columns(args.columns.split(","))
            response = request.send()
            calls += 1
            if not response.is_success():
                raise SystemExit(f"SDK request failed: {response.get_error_message()}")
            total = response.get_total_count()
            orders = response.get_orders()
            for order in orders:
                # the SDK turns amounts into Decimal; its own encoder writes them
                out.write(
                    json.dumps(
                        order,
                        cls=merchantapi.client.ClientEncoder,
                        separators=(",", ":"),
                        ensure_ascii=False,
                    )
                )
                out.write("\n")
            written += len(orders)
            if not orders:
                break
            offset += len(orders)
    sys.stderr.write(f"{written} orders, {calls} requests\n")


if __name__ == "__main__":
    main()

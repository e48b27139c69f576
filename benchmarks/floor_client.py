"""The floor: a minimal hand-written client, the least work any client can do.

Signs and posts the same pages miva-sync asks for (``orderdate >= SINCE``,
sorted by orderdate, every on-demand column, Count per page) with requests and
the standard library's json, and writes each order's JSON line to a file. No
retries, no state, no fsync, no dedupe: a floor, not a product.

Run: python benchmarks/floor_client.py OUT.jsonl [--count 100] [--columns a,b]
(reads MIVA_URL, MIVA_STORE_CODE, MIVA_API_TOKEN, MIVA_SIGNING_KEY)
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import os
import sys
import time

import requests


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--count", type=int, default=100)
    parser.add_argument("--columns", default="")
    parser.add_argument("--since", type=int, default=0)
    args = parser.parse_args()
    url, store = os.environ["MIVA_URL"], os.environ["MIVA_STORE_CODE"]
    token, key = os.environ["MIVA_API_TOKEN"], os.environ.get("MIVA_SIGNING_KEY", "")
    raw_key = base64.b64decode(key + "=" * (-len(key) % 4)) if key else b""
    filters: list[dict[str, object]] = [
        {
            "name": "search",
            "value": [
                {"field": "orderdate", "operator": "GE", "value": str(args.since)}
            ],
        }
    ]
    if args.columns:
        filters.append({"name": "ondemandcolumns", "value": args.columns.split(",")})
    session = requests.Session()
    offset, total, calls, written = 0, None, 0, 0
    with open(args.out, "w", encoding="utf-8") as out:  # noqa: PTH123 - a plain loop
        while total is None or offset < total:
            body = json.dumps(
                {
                    "Store_Code": store,
                    "Function": "OrderList_Load_Query",
                    "Count": args.count,
                    "Offset": offset,
                    "Sort": "orderdate",
                    "Filter": filters,
                    "Miva_Request_Timestamp": int(time.time()),
                },
                separators=(",", ":"),
            ).encode()
            if raw_key:
                mac = hmac.new(raw_key, body, hashlib.sha256).digest()
                auth = f"MIVA-HMAC-SHA256 {token}:{base64.b64encode(mac).decode()}"
            else:
                auth = f"MIVA {token}"
            response = session.post(
                url,
                data=body,
                headers={
                    "Content-Type": "application/json",
                    "X-Miva-API-Authorization": auth,
                },
                timeout=60,
            )
            calls += 1
            response.raise_for_status()
            data = json.loads(response.content)["data"]
            total = data["total_count"]
            rows = data["data"]
            for order in rows:
                out.write(json.dumps(order, separators=(",", ":"), ensure_ascii=False))
                out.write("\n")
            written += len(rows)
            if not rows:
                break
            offset += len(rows)
    sys.stderr.write(f"{written} orders, {calls} requests\n")


if __name__ == "__main__":
    main()

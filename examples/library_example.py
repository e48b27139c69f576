"""Use miva-sync as a library: list the last week's orders and total them.

    python examples/library_example.py            # against a local sandbox store
    MIVA_URL=… MIVA_STORE_CODE=… MIVA_API_TOKEN=… python examples/library_example.py

Settings come from the same places as the CLI's (flags > environment > the
profile in config.toml); without any, a throwaway sandbox store is started.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from decimal import Decimal

from miva_sync import ListQuery, MivaClient, MivaSyncError, Settings, load_settings
from miva_sync.store.query import Condition


@contextlib.contextmanager
def store_settings() -> Iterator[Settings]:
    settings = load_settings()
    if settings.has_connection:
        yield settings
        return
    from miva_sync.sandbox import Sandbox

    with Sandbox(orders=200, seed=1) as sandbox:
        yield load_settings(
            {
                "url": sandbox.url,
                "store_code": sandbox.store_code,
                "api_token": sandbox.api_token,
                "signing_key": sandbox.signing_key,
            }
        )


def main() -> int:
    since = int(time.time()) - 7 * 86400
    try:
        with store_settings() as settings, MivaClient.from_settings(settings) as client:
            query = (
                ListQuery(count=100)
                .where(Condition("orderdate", "GE", since))
                .sorted_by("id")
            )
            orders, offset = [], 0
            # Offset paging is fine for a one-off report; miva-sync's own pulls
            # page by key, which stays correct while orders change.
            while True:
                page = client.list_orders(query.page(100, offset))
                orders += page.orders
                offset += len(page.orders)
                if not page.orders or offset >= page.total_count:
                    break
    except MivaSyncError as err:  # typed errors, each with the CLI's exit code
        sys.stderr.write(f"library_example: {err}\n")
        return err.exit_code
    total = sum(Decimal(str(order.get("total", 0))) for order in orders)
    sys.stdout.write(f"{len(orders)} orders in the last 7 days, total {total:.2f}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""No-ack recovery: find orders a lost download moved to the received queue.

In a queue without acknowledgement the store moves the orders of a page to its
received queue as it serves them. If the answer never arrives (timeout, cut-off
body, a gateway 5xx after the store acted), those orders are gone from the queue
and were never written. The received queue still holds them, next to every
order received before. Whatever is there in a version miva-sync has not
written is, by elimination, what was lost (or someone else's download: emitting
it too is a duplicate at worst, never a loss).
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import pairwise
from typing import Any

from miva_sync.errors import AckError, ApiError, UntrustedAnswerError
from miva_sync.store.client import QUEUE_ORDERS, MivaClient
from miva_sync.store.orders import order_id
from miva_sync.store.query import Condition, ListQuery


def scan_received(
    client: MivaClient,
    received_queue: str,
    base_query: ListQuery,
    floor: int | None,
    unwritten: Callable[[dict[str, Any]], bool],
) -> list[dict[str, Any]]:
    """Orders in ``received_queue`` that ``unwritten`` picks, read by id keyset.

    Keyset paging (``id > last``, sorted by id) rather than offsets, so orders
    entering the received queue meanwhile cannot shift a page and hide one.
    ``floor`` limits the scan to ``dt_updated >= floor`` where the store can
    filter on it; a store that cannot (before 10.03) is scanned whole.

    The next bound is the page's highest id, which skips nothing only if the
    page holds the lowest ids above the bound: a full page out of id order
    (the store ignored Sort id) is refused (exit 5); the in-flight mark stays,
    so the next run scans again. A short page is the last and read whole.
    """
    size = base_query.count
    query = base_query.sorted_by("id").page(size)
    use_floor = floor is not None
    found: list[dict[str, Any]] = []
    last = 0
    while True:
        page_query = query.where(Condition("id", "GT", last))
        if use_floor:
            page_query = page_query.where(Condition("dt_updated", "GE", floor))
        try:
            page = client.queue_orders(received_queue, page_query)
        except ApiError as err:
            if not use_floor or isinstance(err, AckError):
                raise
            # no dt_updated filter on this store: read the received queue whole
            use_floor, found, last = False, [], 0
            continue
        if len(page.orders) < size:
            return [*found, *(o for o in page.orders if unwritten(o))]
        ids = [order_id(o) for o in page.orders]
        if any(a >= b for a, b in pairwise(ids)):
            raise UntrustedAnswerError(
                f"the received queue {received_queue!r} answered a page out of id "
                "order (the store ignored Sort id), so paging it could skip a lost "
                "order; nothing was recovered from it. Way out: a --page-size larger "
                "than the received queue (up to 1000), or find the orders missing "
                "from the output in that queue in the Miva admin "
                "(docs/miva-api.md §6.1)",
                request=QUEUE_ORDERS,
            )
        found.extend(o for o in page.orders if unwritten(o))
        top = ids[-1]  # verified ascending just above
        if top <= last:
            raise ApiError(
                f"the received queue {received_queue!r} ignored the id filter "
                "(the page did not move); cannot recover from it",
                request=QUEUE_ORDERS,
            )
        last = top

"""``miva-sync pull --ids``: re-send exactly these orders, leaving every cursor alone.

For a downstream system that lost some orders: they are read by id (one
``id IN`` query per 100) and written through the normal write path of the
output (newest-wins upserts for databases and folders). No lock, no state.
"""

from __future__ import annotations

import re
from typing import IO, Any

from miva_sync.errors import UsageError

_SEPARATORS = re.compile(r"[\s,]+")


def parse_ids(text: str) -> list[int]:
    """``1020,1021 1022`` -> [1020, 1021, 1022] (order kept, repeats dropped)."""
    ids: list[int] = []
    for part in _SEPARATORS.split(text.strip()):
        if not part:
            continue
        if not part.isdigit():
            raise UsageError(f"--ids: {part[:20]!r} is not an order number")
        ids.append(int(part))
    if not ids:
        raise UsageError("--ids: no order numbers given")
    return list(dict.fromkeys(ids))


def requested_ids(options: dict[str, Any]) -> list[int]:
    conflicting = [
        flag
        for flag, key in (("--since", "since"), ("--from-order", "from_order"),
                          ("--queue", "queue_code"), ("--until", "until"),
                          ("--to-order", "to_order"), ("--dry-run", "dry_run"))
        if options.get(key)
    ]  # fmt: skip
    if conflicting:
        raise UsageError(
            f"--ids re-sends given orders; it does not go with {conflicting[0]}"
        )
    text = options.get("ids") or ""
    source: IO[str] | None = options.get("ids_from")
    if source is not None:
        text += "\n" + source.read()
    return parse_ids(text)


def run_resend(shared: dict[str, Any], options: dict[str, Any]) -> None:
    from miva_sync.app.session import (
        base_query_from,
        connection,
        reporter_from,
        store_identity,
    )
    from miva_sync.sinks import open_sink
    from miva_sync.store.client import MivaClient
    from miva_sync.store.orders import order_id
    from miva_sync.sync.held import fetcher

    ids = requested_ids(options)
    reporter = reporter_from(shared, options)
    base = base_query_from(options)
    with connection(shared, options["use_sandbox"]) as (settings, key):
        with MivaClient.from_settings(settings) as client:
            found = {order_id(o): o for o in fetcher(client, base)(ids)}
        orders = [found[i] for i in ids if i in found]
        sink = open_sink(
            options["output"],
            source="pull",
            fmt=options["fmt"],
            store=store_identity(settings, key),
        )
        try:
            if orders:
                sink.write(orders)
                sink.commit(key, None)  # no checkpoint: the cursor is not touched
        finally:
            sink.close()
    missing = [i for i in ids if i not in found]
    reporter.info(f"re-sent {len(orders)} of {len(ids)} orders; saved state untouched")
    if missing:
        shown = ", ".join(str(i) for i in missing[:30])
        raise UsageError(
            f"the store has no order {shown}" + (" …" if len(missing) > 30 else "")
        )

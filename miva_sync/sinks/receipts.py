"""Where a JSON Lines file stood at the last checkpoint, to replay what came after.

A run killed after writing a page but before saving its state leaves that page
in the file. The next run appending to the same file reads those lines back
(everything past the offset of the last checkpoint) into its dedupe window,
so they are not emitted a second time. The state file keeps the receipt
(``output``: :class:`~miva_sync.state.record.Receipt`). Only appending to the same
file can be made exactly-once this way; stdout, or a new file each run, stays
at-least-once across a crash.
"""

from __future__ import annotations

import os
from typing import Any

from miva_sync.base import jsonio
from miva_sync.sinks.base import Sink
from miva_sync.state.record import Receipt
from miva_sync.store.orders import cursor_value


def receipt(sink: Sink) -> Receipt | None:
    """The file's identity and committed length, taken right after a commit.

    The length counts whole lines only: a partial line a killed writer left is
    cut off by the next write, so an offset past it would point into that
    write's first line, which a replay would then skip (and emit it again).
    """
    from miva_sync.sinks.jsonl import FileSink, whole_lines_length

    if not isinstance(sink, FileSink):  # JSON Lines files only (not Singer, not stdout)
        return None
    try:
        status = sink.path.stat()
        length = whole_lines_length(sink.path)
    except OSError:
        return None
    return {"target": str(sink.path), "inode": status.st_ino, "offset": length}


def uncommitted(sink: Sink, saved: object) -> list[dict[str, Any]]:
    """Orders written to the same file after the saved receipt (a crashed run's page)."""
    here = receipt(sink)
    if not isinstance(saved, dict) or here is None:
        return []
    if saved.get("target") != here["target"] or saved.get("inode") != here["inode"]:
        return []
    offset = saved.get("offset")
    if not isinstance(offset, int) or not 0 <= offset < here["offset"]:
        return []
    orders = []
    with open(here["target"], "rb") as reader:  # noqa: PTH123 - seek on raw bytes
        reader.seek(offset)
        tail = reader.read()
        # only whole lines: a last line without its newline (a writer killed
        # just before it) parses, yet the next append cuts it off as partial
        for line in tail[: tail.rfind(b"\n") + 1].splitlines():
            try:
                order = jsonio.loads(line)
            except ValueError:  # UnicodeDecodeError included
                continue
            if isinstance(order, dict) and cursor_value(order, "id") is not None:
                orders.append(order)
        if orders:
            # they go into the dedupe window (and queue mode's acknowledgement
            # journal), which the state file saves next: durable first, or a
            # power loss could leave the state vouching for lines that are gone
            os.fsync(reader.fileno())
    return orders

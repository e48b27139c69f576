"""The sink interface the sync engine writes through."""

from __future__ import annotations

from typing import Any, Protocol


class Sink(Protocol):
    """An output target.

    The engine calls :meth:`write` with a page of orders, then :meth:`commit`.
    Only after ``commit`` returns are the orders durable and may state move.
    A target that stores its own copy of the cursor receives it in ``commit``
    and must make both durable together (one transaction).

    A target may also set ``write_behind = True``: a pull then calls
    ``write`` and ``commit`` from one background thread, in order, so that the
    target's work overlaps the next fetch (miva_sync/sync/writer.py).
    """

    description: str
    # True for targets that store their own copy of the cursor with the rows
    keeps_checkpoint: bool

    def write(self, orders: list[dict[str, Any]]) -> None: ...

    def commit(self, store_key: str, checkpoint: dict[str, Any] | None) -> None: ...

    def load_checkpoint(self, store_key: str) -> dict[str, Any] | None: ...

    def close(self) -> None: ...

"""The sink interface the sync engine writes through."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

from miva_sync.errors import ConfigError
from miva_sync.store.urls import StoreIdentity, describe_store, is_identity


class Sink(Protocol):
    """An output target.

    The engine calls :meth:`write` with a page of orders, then :meth:`commit`.
    Only after ``commit`` returns are the orders durable and may state move.
    A target that stores its own copy of the cursor receives it in ``commit``
    and must make both durable together (one transaction).

    A target may also set ``write_behind = True``: a pull then calls
    ``write`` and ``commit`` from one background thread, in order, so that the
    target's work overlaps the next fetch (miva_sync/sync/writer.py).

    Databases hold one store's orders: they take the store's identity when
    opened (:func:`miva_sync.sinks.open_sink`), refuse another store's
    (:func:`other_store`) and record it with their first write.
    """

    description: str
    # True for targets that store their own copy of the cursor with the rows
    keeps_checkpoint: bool

    def write(self, orders: list[dict[str, Any]]) -> None: ...

    def commit(self, store_key: str, checkpoint: dict[str, Any] | None) -> None: ...

    def load_checkpoint(self, store_key: str) -> dict[str, Any] | None: ...

    def close(self) -> None: ...


def legacy_owner(store: StoreIdentity, state_keys: Iterable[str]) -> str | None:
    """Another store that a database written before identities holds, if it shows.

    Such a database recorded no identity, only cursors under state keys
    (``sync_state``). A key that is this store's, or a profile's name (which
    cannot be told apart from this store), lets it be adopted; a key naming
    another store by URL and code means the database is that store's.
    """
    keys = list(state_keys)
    if any(store.owns(key) for key in keys):
        return None
    return next((key for key in keys if is_identity(key)), None)


def other_store(
    where: str, recorded: str, store: StoreIdentity, fix: str, reset: str
) -> ConfigError:
    """The refusal (exit 3) of a database that holds another store's orders.

    Identities are URLs without user info or query plus a store code, so
    nothing secret is named.
    """
    return ConfigError(
        f"{where} holds the orders of {describe_store(recorded)}, not of "
        f"{store.describe()}: order numbers repeat across stores, so one target for "
        f"both would overwrite one store's orders with the other's. {fix}. If it "
        f"really is the same store (its address changed), run {reset!r} once"
    )

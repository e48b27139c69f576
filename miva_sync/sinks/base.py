"""The sink interface the sync engine writes through, and what streams share."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from miva_sync.base.fsio import WriteLock
    from miva_sync.state.record import StateRecord
    from miva_sync.store.urls import StoreIdentity


class Sink(Protocol):
    """An output target.

    The engine calls :meth:`write` with a page of orders, then :meth:`commit`.
    Only after ``commit`` returns are the orders durable and may state move.
    A target that stores its own copy of the cursor receives it in ``commit``
    and must make both durable together (one transaction).

    A target sets ``replay_safe = True`` when a page it was given but that
    was never committed cannot reach the next run's output twice: a database
    rolls it back, a folder rewrites the same file, a JSON Lines file appended
    to replays it into the dedupe window (sinks/receipts.py). A pull then
    groups that target's commits (miva_sync/sync/pull.py).

    A target may also set ``write_behind = True``: a pull then calls
    ``write`` and ``commit`` from one background thread, in order, so that the
    target's work overlaps the next fetch (miva_sync/sync/writer.py).

    Databases hold one store's orders: they take the store's identity when
    opened (:func:`miva_sync.sinks.open_sink`), refuse another store's and
    record it with their first write (miva_sync/sinks/database.py).
    """

    description: str
    # True for targets that store their own copy of the cursor with the rows
    keeps_checkpoint: bool

    def write(self, orders: list[dict[str, Any]]) -> None: ...

    def commit(self, store_key: str, checkpoint: StateRecord | None) -> None: ...

    def load_checkpoint(self, store_key: str) -> StateRecord | None: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Opening:
    """How :func:`miva_sync.sinks.open_sink` opens a target, besides its name.

    ``source`` (pull, queue or webhook) is recorded by targets that keep it.
    ``wait``: a PostgreSQL target waits for another host's run of the same
    store instead of exiting 7, like ``--wait`` does for the local lock:
    without limit (True) or at most that many seconds.
    ``store``: the identity of the store whose orders go there; a database
    holding another store's refuses them (ConfigError, exit 3) and one holding
    none records it (streams and folders have no place to keep it).
    """

    source: str = "pull"
    wait: bool | float = False
    store: StoreIdentity | None = None


class SinkClass(Protocol):
    """A class in :data:`miva_sync.sinks.SCHEMES`' table: each opens its kind
    of ``-o`` from the target and takes what it has a use for."""

    def from_target(self, target: str, how: Opening) -> Sink: ...


class WithoutCursor:
    """A target that keeps no copy of the cursor: the state file holds it."""

    keeps_checkpoint = False

    def load_checkpoint(self, store_key: str) -> StateRecord | None:
        return None


class Locked(WithoutCursor):
    """A file target written under a short ``flock`` on an open descriptor,
    so that a webhook receiver and a cron pull can share it."""

    replay_safe = True  # appended lines are replayed, folder files rewritten

    _fd: int
    _lock: WriteLock

    def close(self) -> None:
        self._lock.release()
        with contextlib.suppress(OSError):
            os.close(self._fd)

"""A folder with one ``<id>.json`` per order: atomic replace, newest version wins."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from miva_sync.base import jsonio
from miva_sync.base.fsio import WriteLock, fsync_dir, replace_durably
from miva_sync.errors import OutputError
from miva_sync.sinks.base import Locked, Opening
from miva_sync.sinks.jsonl import encode_lines
from miva_sync.state.record import StateRecord
from miva_sync.store.orders import cursor_value, order_id

LOCK_NAME = ".miva-sync.lock"


class DirectorySink(Locked):
    """Write each order to ``DIR/<id>.json`` (temp file, fsync, rename).

    The id is checked to be an integer before it becomes a file name, so
    nothing can be written outside the folder. A short ``flock`` on the
    folder's lock file lets a webhook receiver and a cron pull share it.
    """

    def __init__(self, folder: Path, *, source: str = "pull") -> None:
        self.folder = folder
        self.description = f"{folder}/"
        try:
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            self._fd = os.open(folder / LOCK_NAME, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutputError(f"cannot use folder {folder}: {exc.strerror}") from None
        self._lock = WriteLock(self._fd)

    @classmethod
    def from_target(cls, target: str, how: Opening) -> DirectorySink:
        """``-o DIR/`` (or an existing folder)."""
        return cls(Path(target), source=how.source)

    def write(self, orders: list[dict[str, Any]]) -> None:
        self._lock.acquire()
        try:
            for order in orders:
                self._write_one(order)
        except OSError as exc:
            raise OutputError(
                f"cannot write to {self.folder}: {exc.strerror}"
            ) from None

    def commit(self, store_key: str, checkpoint: StateRecord | None) -> None:
        try:
            fsync_dir(self.folder)  # the renames themselves must be durable
        except OSError as exc:
            raise OutputError(f"cannot flush {self.folder}: {exc.strerror}") from None
        finally:
            self._lock.release()

    def path_of(self, oid: int) -> Path:
        return self.folder / f"{oid}.json"

    def _write_one(self, order: dict[str, Any]) -> None:
        oid = order_id(order)  # an integer: a safe file name
        target = self.path_of(oid)
        if _is_newer(target, cursor_value(order, "dt_updated")):
            return
        # the folder is synced once per page, in commit
        replace_durably(target, encode_lines([order]), sync_folder=False)


def _is_newer(path: Path, updated: int | None) -> bool:
    """Does the file already hold a newer version than ``updated``?"""
    if updated is None:
        return False
    try:
        existing = jsonio.loads(path.read_bytes())
    except (OSError, ValueError, UnicodeDecodeError):
        return False
    theirs = (
        cursor_value(existing, "dt_updated") if isinstance(existing, dict) else None
    )
    return theirs is not None and theirs > updated

"""StateStore: one versioned JSON file of per-store records, written crash-safely.

* Writes are atomic and durable: temp file, fsync, rename, fsync of the folder.
  A crash leaves either the old file or the new one, never a torn one.
* Several stores share the file, so every read-modify-write holds a short
  ``flock`` on a sibling lock file.
* A run of one store holds that store's run lock (``flock``) for its whole
  duration. The kernel drops it when the holder dies, so a dead run never
  blocks the next one.
* Anything read back is validated; a corrupt file is moved aside and reported.

The record's keys are documented in :mod:`miva_sync.state.record`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import os
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import TypeGuard, cast

from miva_sync.base import jsonio
from miva_sync.base.fsio import fsync_dir, replace_durably
from miva_sync.errors import ConfigError, LockedError
from miva_sync.state.record import MODES, QueueCursor, StateRecord

STATE_VERSION = 1


class StateStore:
    """Per-store state records in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path

    # -- records -------------------------------------------------------------

    def get(self, store_key: str) -> StateRecord | None:
        """The store's record, or None when there is none."""
        with self._file_lock():
            return self._read().get(store_key)

    def put(self, store_key: str, record: StateRecord) -> None:
        """Replace the store's record (atomic and durable)."""
        validate_record(record, where="record to save")
        with self._file_lock():
            stores = self._read()
            stores[store_key] = record
            self._write(stores)

    def delete(self, store_key: str) -> bool:
        with self._file_lock():
            stores = self._read()
            if stores.pop(store_key, None) is None:
                return False
            self._write(stores)
            return True

    def all(self) -> dict[str, StateRecord]:
        with self._file_lock():
            return self._read()

    # -- the run lock ----------------------------------------------------------

    @contextlib.contextmanager
    def run_lock(self, store_key: str, *, wait: bool = False) -> Iterator[None]:
        """Hold the store's run lock; raise :class:`LockedError` if another run has it."""
        digest = hashlib.sha256(store_key.encode()).hexdigest()[:16]
        path = self.path.with_name(f"{self.path.name}.{digest}.run.lock")
        fd = self._open_lock_file(path)
        try:
            flags = fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB
            try:
                fcntl.flock(fd, flags)
            except OSError as exc:
                if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise LockedError(
                        f"another miva-sync run for this store holds the lock ({path}); "
                        "use --wait to wait for it"
                    ) from None
                raise
            # the holder's pid, for people reading the lock file; not used for locking
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
            yield
        finally:
            os.close(fd)  # closing releases the flock

    # -- file mechanics ------------------------------------------------------

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        fd = self._open_lock_file(self.path.with_name(f"{self.path.name}.lock"))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _open_lock_file(self, path: Path) -> int:
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(
                f"cannot use the state folder {path.parent}: {exc.strerror}"
            ) from None

    def _read(self) -> dict[str, StateRecord]:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise ConfigError(
                f"cannot read state file {self.path}: {exc.strerror}"
            ) from None
        try:
            document = jsonio.loads(raw)
            return validate_document(document)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            moved = self._quarantine()
            raise ConfigError(
                f"state file {self.path} is corrupt ({_first_line(exc)}); moved it to "
                f"{moved.name}. Start again with --since, --from-order or --queue"
            ) from None

    def _quarantine(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        self.path.replace(target)
        fsync_dir(self.path.parent)
        return target

    def _write(self, stores: dict[str, StateRecord]) -> None:
        document = {"version": STATE_VERSION, "stores": stores}
        # read and written on every commit: orjson, not the standard library
        data = jsonio.dumps_document(document) + b"\n"
        try:
            replace_durably(self.path, data)
        except OSError as exc:
            raise ConfigError(
                f"cannot write state file {self.path}: {exc.strerror}"
            ) from None


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def validate_document(document: object) -> dict[str, StateRecord]:
    """Check the whole file's shape; raise ValueError when anything is off."""
    if not isinstance(document, dict) or document.get("version") != STATE_VERSION:
        raise ValueError(f"not a version {STATE_VERSION} state document")
    stores = document.get("stores")
    if not isinstance(stores, dict):
        raise ValueError("'stores' is not an object")
    return {
        key: validate_record(record, where=f"store {key!r}")
        for key, record in stores.items()
    }


def validate_record(record: object, *, where: str) -> StateRecord:
    """``record`` if it is a store record (:class:`StateRecord`), else ValueError.

    Checked: everything a run or ``state show`` reads without checking it
    itself; the keys left to their readers are listed in state/record.py.
    """
    if not isinstance(record, dict):
        raise ValueError(f"{where}: not an object")
    if record.get("mode") not in MODES:
        raise ValueError(f"{where}: unknown mode {record.get('mode')!r}")
    cursors = record.get("cursors")
    if not isinstance(cursors, dict) or record["mode"] not in cursors:
        raise ValueError(f"{where}: no cursor for the active mode")
    for mode, cursor in cursors.items():
        if mode not in MODES or not isinstance(cursor, dict):
            raise ValueError(f"{where}: bad cursor {mode!r}")
        _validate_cursor(mode, cursor, where=f"{where}: cursor {mode}")
    dedupe = record.get("dedupe", {})
    if not isinstance(dedupe, dict):
        raise ValueError(f"{where}: dedupe is not an object")
    for order_id, entry in dedupe.items():
        # the elements are left to the readers: a version that matches nothing
        # only makes its order emitted once more, and a time that is not an
        # int counts as unknown
        if not _is_id_key(order_id) or not isinstance(entry, list) or len(entry) != 3:
            raise ValueError(f"{where}: bad dedupe entry for {order_id!r}")
    held = record.get("held", {})
    if not isinstance(held, dict):
        raise ValueError(f"{where}: held is not an object")
    for order_id, entry in held.items():
        if (
            not _is_id_key(order_id)
            or not isinstance(entry, dict)
            or not is_int(entry.get("since"))
            or not (entry.get("orderdate") is None or is_int(entry["orderdate"]))
        ):
            raise ValueError(f"{where}: bad held entry for {order_id!r}")
    last_run = record.get("last_run")
    if last_run is not None and (
        not isinstance(last_run, dict)
        or not is_int(last_run.get("finished_at"))
        or not all(
            last_run.get(k) is None or is_int(last_run[k])
            for k in ("emitted", "unchanged", "held", "released")
        )
        or not (
            last_run.get("seconds") is None
            or isinstance(last_run["seconds"], int | float)
        )
    ):
        raise ValueError(f"{where}: bad last_run")
    # every key a reader relies on is checked above; TypedDicts have no isinstance
    return cast(StateRecord, record)


def is_int(value: object) -> TypeGuard[int]:
    """A JSON integer: an int, not a bool (``True`` is an ``int`` to Python)."""
    return isinstance(value, int) and not isinstance(value, bool)


def _is_id_key(key: str) -> bool:
    """An order id as a JSON object key: ASCII digits (``int()`` must take it)."""
    return 0 < len(key) <= 20 and key.isascii() and key.isdigit()


def _validate_cursor(mode: str, cursor: Mapping[str, object], *, where: str) -> None:
    """One mode's cursor: everything a run or ``state show`` will read from it."""
    if mode in ("date", "updated", "number") and not is_int(cursor.get("start")):
        raise ValueError(f"{where}: no start")
    for name in ("start", "watermark"):
        value = cursor.get(name)
        if value is not None and not is_int(value):
            raise ValueError(f"{where}: {name} is not an integer")
    lookback = cursor.get("lookback", 0)
    if not (is_int(lookback) and lookback >= 0):
        raise ValueError(f"{where}: lookback is not a number of seconds")
    overlap = cursor.get("overlap", 0)
    if not _is_overlap(overlap):
        raise ValueError(f"{where}: overlap is neither a count nor a span")
    if mode == "queue" and not (
        is_queue_cursor(cursor) and all(i >= 0 for i in cursor.get("pending_ack", []))
    ):
        raise ValueError(f"{where}: malformed queue cursor")


def is_queue_cursor(cursor: Mapping[str, object]) -> TypeGuard[QueueCursor]:
    """Does every field of a queue cursor have its type (state/record.py)?"""
    pending = cursor.get("pending_ack", [])
    received = cursor.get("received_queue")
    code = cursor.get("queue_code")
    return bool(
        isinstance(code, str)
        and code
        and isinstance(cursor.get("ack", True), bool)
        and isinstance(cursor.get("in_flight", False), bool)
        and (received is None or isinstance(received, str))
        and isinstance(pending, list)
        and all(is_int(i) for i in pending)
        # first_run_at and delivered_at: absent from files written before the
        # never-delivered alarm
        and all(
            cursor.get(k) is None or is_int(cursor.get(k))
            for k in ("drained_at", "first_run_at", "delivered_at")
        )
    )


def _is_overlap(value: object) -> bool:
    """A count of ids (30, "30") or a span ("45m"), as ``pull --overlap`` takes."""
    from miva_sync.base.timespec import parse_span

    if is_int(value):
        return value >= 0
    if not isinstance(value, str):
        return False
    if value.isascii() and value.isdigit():
        return True
    try:
        parse_span(value)
    except ValueError:
        return False
    return True

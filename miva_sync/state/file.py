"""StateStore: one versioned JSON file of per-store records, written crash-safely.

* Writes are atomic and durable: temp file, fsync, rename, fsync of the folder.
  A crash leaves either the old file or the new one, never a torn one.
* Several stores share the file, so every read-modify-write holds a short
  ``flock`` on a sibling lock file.
* A run of one store holds that store's run lock (``flock``) for its whole
  duration. The kernel drops it when the holder dies, so a dead run never
  blocks the next one. The holder writes who it is into the lock file (pid,
  host, start), so a run that finds the lock busy can say who has it; it
  waits for it without limit, at most a given span, or not at all.
* Anything read back is validated; a corrupt file is moved aside and reported.
* A store keeps the bytes it last read or wrote and the records they hold, so
  reading the same bytes again (a run reads its record before and after
  taking the run lock, then saves it) parses and checks nothing, and saving a
  record the file already holds writes nothing. Records are handed out as
  copies (:func:`~miva_sync.state.record.copy_record`): what a caller changes
  never reaches the kept ones.

The record's keys are documented in :mod:`miva_sync.state.record`.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import math
import os
import socket
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeGuard, cast

from miva_sync.base import jsonio
from miva_sync.base.fsio import fsync_dir, replace_durably
from miva_sync.base.timespec import human_span, iso
from miva_sync.errors import ConfigError, LockedError
from miva_sync.state.record import MODES, QueueCursor, StateRecord, copy_record

STATE_VERSION = 1
LOCK_POLL = 0.1  # seconds between tries of a busy run lock, while waiting a span


@dataclass(frozen=True)
class LockHolder:
    """Who holds a store's run lock, as the holder wrote it into the lock file."""

    pid: int
    host: str
    since: int  # unix seconds: when the holder took the lock

    def describe(self, now: float) -> str:
        """``pid 1234 on web1 since 2026-11-01T10:00:00Z (12m ago)``"""
        return (
            f"pid {self.pid} on {self.host} since {iso(self.since)} "
            f"({_ago(now - self.since)})"
        )

    def to_bytes(self) -> bytes:
        return (
            jsonio.dumps_document(
                {"pid": self.pid, "host": self.host, "since": self.since}
            )
            + b"\n"
        )

    @classmethod
    def parse(cls, data: bytes) -> LockHolder | None:
        """The holder in a lock file's bytes; None for anything else (an
        older miva-sync wrote only the pid; a holder may be mid-write)."""
        try:
            doc = jsonio.loads(data)
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        if not isinstance(doc, dict):
            return None
        pid, host, since = doc.get("pid"), doc.get("host"), doc.get("since")
        if not (is_int(pid) and isinstance(host, str) and is_int(since)):
            return None
        # a hostile lock file must not put control characters on the terminal
        shown = "".join(c if c.isascii() and c.isprintable() else "?" for c in host)
        return cls(pid, shown[:64], since)


def _ago(seconds: float) -> str:
    """A rough age: ``45s ago``, ``12m ago``, ``3h ago``, ``2d ago``."""
    if seconds < 0:
        return "just now"
    for size in (86400, 3600, 60):
        if seconds >= size:
            return f"{human_span(int(seconds) // size * size)} ago"
    return f"{int(seconds)}s ago"


def wait_limit(wait: bool | float) -> float:
    """``--wait`` as seconds: False (not given) 0, True (``--wait`` alone)
    without limit, a number (``--wait 10m``) that many seconds."""
    if isinstance(wait, bool):
        return math.inf if wait else 0.0
    return max(0.0, float(wait))


class StateStore:
    """Per-store state records in one JSON file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # the file's bytes as this store last read or wrote them, and their
        # records (validated; never handed out, only copies of them)
        self._known: tuple[bytes, dict[str, StateRecord]] | None = None

    # -- records -------------------------------------------------------------

    def get(self, store_key: str) -> StateRecord | None:
        """The store's record, or None when there is none."""
        with self._file_lock():
            record = self._read().get(store_key)
        return None if record is None else copy_record(record)

    def put(self, store_key: str, record: StateRecord) -> None:
        """Replace the store's record (atomic and durable)."""
        with self._file_lock():
            stores = self._read()
            if stores.get(store_key) == record:
                # The file holds it already, as checked when it was read (a run
                # saves its mode and cursor before its first request: unchanged
                # when it resumes). Its writer made it durable; one killed
                # between its rename and its folder's fsync leaves the rename
                # to the kernel's writeback, seconds later, and a power cut in
                # between brings back the record before it, which is behind the
                # data, never ahead of it (writes go output first, then state).
                return
            validate_record(record, where="record to save")
            self._write({**stores, store_key: copy_record(record)})

    def delete(self, store_key: str) -> bool:
        with self._file_lock():
            stores = dict(self._read())
            if stores.pop(store_key, None) is None:
                return False
            self._write(stores)
            return True

    def all(self) -> dict[str, StateRecord]:
        with self._file_lock():
            return {key: copy_record(r) for key, r in self._read().items()}

    # -- the run lock ----------------------------------------------------------

    @contextlib.contextmanager
    def run_lock(
        self,
        store_key: str,
        *,
        wait: bool | float = False,
        on_wait: Callable[[str], None] | None = None,
    ) -> Iterator[None]:
        """Hold the store's run lock; raise :class:`LockedError` if another run
        has it and ``wait`` (see :func:`wait_limit`) runs out first.

        ``on_wait`` is told once, before waiting, who holds the lock.
        """
        digest = hashlib.sha256(store_key.encode()).hexdigest()[:16]
        path = self.path.with_name(f"{self.path.name}.{digest}.run.lock")
        fd = self._open_lock_file(path)
        try:
            self._take(fd, path, wait_limit(wait), on_wait)
            # who holds it, for the runs that find it busy and for people
            # reading the file; not used for locking. Written, then cut to
            # length, so a reader never sees an empty file
            data = LockHolder(os.getpid(), _host(), int(time.time())).to_bytes()
            os.pwrite(fd, data, 0)
            os.ftruncate(fd, len(data))
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def _take(
        self,
        fd: int,
        path: Path,
        limit: float,
        on_wait: Callable[[str], None] | None,
    ) -> None:
        """flock ``fd``: at once, within ``limit`` seconds, or whenever it comes."""
        if _try_flock(fd):
            return
        holder = _holder(fd)
        if limit <= 0:
            raise LockedError(
                f"{holder}: another miva-sync run of this store holds the lock "
                f"({path}); use --wait to wait for it, or --wait 10m to wait at "
                "most 10 minutes"
            )
        if on_wait is not None:
            within = "" if math.isinf(limit) else f" (at most {human_span(limit)})"
            on_wait(f"{holder}: waiting for that run of this store to end{within}")
        if math.isinf(limit):
            fcntl.flock(fd, fcntl.LOCK_EX)
            return
        deadline = time.monotonic() + limit
        while not _try_flock(fd):
            left = deadline - time.monotonic()
            if left <= 0:
                raise LockedError(
                    f"{_holder(fd)}: another miva-sync run of this store still holds "
                    f"the lock ({path}) after waiting {human_span(limit)}"
                )
            time.sleep(min(LOCK_POLL, left))

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
        """Every store's record in the file now: the kept ones, which callers
        must not change (and hand out only as copies)."""
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            self._known = None
            return {}
        except OSError as exc:
            raise ConfigError(
                f"cannot read state file {self.path}: {exc.strerror}"
            ) from None
        if self._known is not None and self._known[0] == raw:
            return self._known[1]  # the same bytes: parsed and checked already
        try:
            stores = validate_document(jsonio.loads(raw))
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            moved = self._quarantine()
            raise ConfigError(
                f"state file {self.path} is corrupt ({_first_line(exc)}); moved it to "
                f"{moved.name}. Start again with --since, --from-order or --queue"
            ) from None
        self._known = (raw, stores)
        return stores

    def _quarantine(self) -> Path:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
        target = self.path.with_name(f"{self.path.name}.corrupt-{stamp}-{os.getpid()}")
        self.path.replace(target)
        fsync_dir(self.path.parent)
        return target

    def _write(self, stores: dict[str, StateRecord]) -> None:
        """Replace the file with ``stores``, which become the kept records:
        none of them may be a caller's own (copy it first)."""
        document = {"version": STATE_VERSION, "stores": stores}
        # read and written on every commit: orjson, not the standard library
        data = jsonio.dumps_document(document) + b"\n"
        self._known = None  # whatever happens, the file may have changed
        try:
            replace_durably(self.path, data)
        except OSError as exc:
            raise ConfigError(
                f"cannot write state file {self.path}: {exc.strerror}"
            ) from None
        self._known = (data, stores)


def _try_flock(fd: int) -> bool:
    """Take the exclusive flock on ``fd`` if it is free; False if it is busy."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _holder(fd: int) -> str:
    """``locked by pid 1234 on web1 since …Z (12m ago)``, from the lock file."""
    try:
        holder = LockHolder.parse(os.pread(fd, 4096, 0))
    except OSError:
        holder = None
    if holder is None:  # an older miva-sync, or a holder that is still writing
        return "locked"
    return f"locked by {holder.describe(time.time())}"


def _host() -> str:
    try:
        return socket.gethostname() or "?"
    except OSError:
        return "?"


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

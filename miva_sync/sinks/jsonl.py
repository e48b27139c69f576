"""JSON Lines to stdout or a file: each line exactly the order object the store returned."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import stat
import sys
import time
from pathlib import Path
from typing import Any, BinaryIO

from miva_sync.base.fsio import WriteLock, write_all
from miva_sync.base.jsonio import lines
from miva_sync.errors import BrokenPipeOutputError, OutputError
from miva_sync.sinks.base import Locked, Opening, WithoutCursor
from miva_sync.state.record import StateRecord


def encode_lines(orders: list[dict[str, Any]]) -> bytes:
    """One compact JSON object per line; key order and value types as received."""
    # each order is serialised exactly once, into the one buffer written per page
    return lines(orders)


class StdoutSink(WithoutCursor):
    """Standard output. A pipe counts as durable only once its reader has taken the bytes."""

    description = "stdout"

    def __init__(self, stream: BinaryIO | None = None) -> None:
        self._stream = stream or _stdout_buffer()
        try:
            self._fd: int | None = self._stream.fileno()
            self._is_pipe = stat.S_ISFIFO(os.fstat(self._fd).st_mode)
        except (OSError, ValueError, AttributeError):
            self._fd, self._is_pipe = None, False

    @classmethod
    def from_target(cls, target: str, how: Opening) -> StdoutSink:
        """``-o -``."""
        return cls()

    def write(self, orders: list[dict[str, Any]]) -> None:
        try:
            self._stream.write(encode_lines(orders))
        except BrokenPipeError:
            raise BrokenPipeOutputError("stdout was closed by its reader") from None
        except OSError as exc:
            raise OutputError(f"cannot write to stdout: {exc.strerror}") from None

    def commit(self, store_key: str, checkpoint: StateRecord | None) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise BrokenPipeOutputError("stdout was closed by its reader") from None
        except OSError as exc:
            raise OutputError(f"cannot write to stdout: {exc.strerror}") from None
        if self._is_pipe and self._fd is not None:
            _wait_until_pipe_drained(self._fd)

    def close(self) -> None:
        with contextlib.suppress(OSError, ValueError):
            self._stream.flush()


def _stdout_buffer() -> BinaryIO:
    """stdout's byte stream, or exit 8 before anything is pulled or committed.

    A process started with stdout closed (``>&-``) has ``sys.stdout`` None
    (or :class:`~miva_sync.base.stdio.ClosedStdout`, which has no buffer): that is
    an output that cannot take orders, like a closed pipe.
    """
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        from miva_sync.base.stdio import STDOUT_CLOSED

        raise OutputError(STDOUT_CLOSED)
    return buffer  # type: ignore[no-any-return]


def _wait_until_pipe_drained(fd: int) -> None:
    """Block until the reader has read what we wrote, or raise if it went away.

    Bytes sitting in the pipe buffer are not yet taken: a reader that exits
    (``| head``) drops them. State may only move once they are read.
    """
    import termios  # only a pipe needs it: not at start-up

    poller = select.poll()
    poller.register(fd, select.POLLERR | select.POLLHUP)
    delay = 0.0005
    while True:
        if poller.poll(0):
            raise BrokenPipeOutputError("stdout was closed by its reader")
        try:
            pending = int.from_bytes(
                fcntl.ioctl(fd, termios.FIONREAD, b"\0\0\0\0"), sys.byteorder
            )
        except OSError:
            return  # this platform cannot tell; a flushed pipe is the best we know
        if pending == 0:
            return
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


class FileSink(Locked):
    """Append to a JSON Lines file: flock while writing, fsync before state moves."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.description = str(path)
        try:
            self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError as exc:
            raise OutputError(f"cannot open {path}: {exc.strerror}") from None
        self._lock = WriteLock(self._fd)

    @classmethod
    def from_target(cls, target: str, how: Opening) -> FileSink:
        """``-o FILE.jsonl``."""
        return cls(Path(target))

    def write(self, orders: list[dict[str, Any]]) -> None:
        data = encode_lines(orders)
        if self._lock.acquire():
            self._repair_tail()  # another writer may have been killed mid-line
        try:
            write_all(self._fd, data)
        except OSError as exc:
            self._repair_tail()  # never leave half a line behind a failed write
            self._lock.release()
            raise OutputError(f"cannot write {self.path}: {exc.strerror}") from None

    def commit(self, store_key: str, checkpoint: StateRecord | None) -> None:
        try:
            os.fsync(self._fd)
        except OSError as exc:
            raise OutputError(
                f"cannot flush {self.path} to disk: {exc.strerror}"
            ) from None
        finally:
            self._lock.release()

    def _repair_tail(self) -> None:
        """Cut a partial last line (left by a killed writer) back to the last newline."""
        with open(self.path, "rb") as reader:  # noqa: PTH123 - need seek/read on raw bytes
            size = reader.seek(0, os.SEEK_END)
            keep = _whole_lines_end(reader, size)
        if keep == size:
            return
        try:
            os.truncate(self.path, keep)
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise OutputError(
                    f"cannot repair {self.path}: {exc.strerror}"
                ) from None


def whole_lines_length(path: Path) -> int:
    """How many bytes of the file are whole lines (a killed writer's partial
    last line, which the next write cuts off, does not count)."""
    with open(path, "rb") as reader:  # noqa: PTH123 - need seek/read on raw bytes
        return _whole_lines_end(reader, reader.seek(0, os.SEEK_END))


def _whole_lines_end(reader: BinaryIO, size: int) -> int:
    if size == 0:
        return 0
    reader.seek(size - 1)
    if reader.read(1) == b"\n":
        return size
    return _last_newline_end(reader, size)


def _last_newline_end(reader: BinaryIO, size: int) -> int:
    """Offset just past the last newline before ``size`` (0 if there is none)."""
    block = 65536
    end = size
    while end > 0:
        start = max(0, end - block)
        reader.seek(start)
        chunk = reader.read(end - start)
        index = chunk.rfind(b"\n")
        if index >= 0:
            return start + index + 1
        end = start
    return 0

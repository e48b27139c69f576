"""Standard streams a run can rely on: started with ``>&-`` or ``2>/dev/full``.

Installed once by the console entry point (:func:`miva_sync.cli.main`), before
anything opens a file:

- **stdout closed** (``>&-``): Python leaves ``sys.stdout`` as None, and every
  write would be dropped or crash. Data that cannot be written is an output
  failure (exit 8, docs/design.md §7), exactly as a closed pipe is, and it must be
  one before anything is committed: :class:`ClosedStdout` raises
  :class:`OutputError` on the first write.
- **stderr closed or failing** (``2>&-``, ``2>/dev/full``): messages are not
  data. A failed message must never fail a run, lose state or change the exit
  status, so :class:`SafeStderr` swallows the first failure and writes nothing
  more (a full disk or a closed descriptor does not recover within a run).

Closed descriptors 1 and 2 are also re-opened on ``/dev/null``: otherwise the
next file opened (the state file, an output, the lock) gets that number, and
whatever writes to "stderr" (Python, a C library, a child) writes into it.
Only the standard library is used: ``--version`` and ``--help`` run this too.
"""

from __future__ import annotations

import contextlib
import errno
import io
import os
import sys
from typing import Any, TextIO

from miva_sync.errors import BrokenPipeOutputError, OutputError

STDOUT_CLOSED = (
    "stdout is closed (started with >&-): nothing was written there, and a pull "
    "commits nothing it could not write; redirect it (> FILE, >/dev/null, | CMD) "
    "or pull with -o FILE"
)


def guard_std_streams() -> None:
    """Make closed or failing stdout/stderr safe for the rest of the process."""
    stdout_closed = _fd_closed(1) or sys.stdout is None
    stderr_closed = _fd_closed(2) or sys.stderr is None
    for fd in (1, 2):
        if _fd_closed(fd):
            _park_on_devnull(fd)
    if stdout_closed:
        sys.stdout = ClosedStdout()
    elif not isinstance(sys.stdout, CheckedStdout):
        sys.stdout = CheckedStdout(sys.stdout)
    if not isinstance(sys.stderr, SafeStderr):
        sys.stderr = SafeStderr(None if stderr_closed else sys.stderr)


def _fd_closed(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError as exc:
        return exc.errno == errno.EBADF
    return False


def _park_on_devnull(fd: int) -> None:
    """Hold ``fd`` open on /dev/null so no file the run opens can take its number.

    Not inheritable: a child (``pull --all-profiles``) must see the same closed
    stdout as we do and fail, not write orders into /dev/null and commit them.
    """
    try:
        devnull = os.open(os.devnull, os.O_RDWR)  # non-inheritable by default
    except OSError:
        return
    if devnull != fd:
        with contextlib.suppress(OSError):
            os.dup2(devnull, fd, inheritable=False)
        os.close(devnull)


class ClosedStdout(io.TextIOBase):
    """``sys.stdout`` of a process started with stdout closed.

    Writing anything is an :class:`OutputError` (exit 8). There is no
    ``buffer``, so binary writers (the stdout sink) refuse too, and flushing
    is a no-op: nothing is ever held, so Python's flush at exit cannot fail.
    """

    encoding = "utf-8"  # what click checks before writing

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes for a binary stream this way
            raise TypeError("write() argument must be str")
        if text:
            raise OutputError(STDOUT_CLOSED)
        return 0

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return False

    def flush(self) -> None:
        return None


class CheckedStdout:
    """``sys.stdout`` whose write failures are output failures (exit 8), not
    internal errors (exit 1): ``state show --json >/dev/full``, a closed pipe.

    Its ``buffer`` is the real one: the stdout sink writes bytes there and
    reports its own failures.
    """

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            raise _output_error(exc) from None

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            raise _output_error(exc) from None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def _output_error(exc: OSError) -> OutputError:
    if isinstance(exc, BrokenPipeError):
        return BrokenPipeOutputError("stdout was closed by its reader")
    return OutputError(f"cannot write to stdout: {exc.strerror or exc}")


class SafeStderr:
    """``sys.stderr`` that can never raise: after the first failed write or
    flush it writes nothing more, and fd 2 is pointed at /dev/null so the
    bytes still buffered in the real stream cannot fail Python's exit either.

    Only OSError and ValueError (closed file) are swallowed: a TypeError is a
    caller's mistake (and how click tells text streams from binary ones).
    """

    def __init__(self, stream: TextIO | None) -> None:
        self._stream = stream
        self.broken = stream is None

    def write(self, text: str) -> int:
        if not self.broken and self._stream is not None:
            try:
                return self._stream.write(text)
            except (OSError, ValueError):
                self._give_up()
        return len(text)

    def flush(self) -> None:
        if not self.broken and self._stream is not None:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._give_up()

    def _give_up(self) -> None:
        self.broken = True
        stream = self._stream
        with contextlib.suppress(OSError, ValueError, AttributeError):
            if stream is not None and stream.fileno() == 2:
                _park_on_devnull_inheritable(2)

    def isatty(self) -> bool:
        if self.broken or self._stream is None:
            return False
        try:
            return self._stream.isatty()
        except (OSError, ValueError):
            return False

    def fileno(self) -> int:
        if self._stream is None:
            raise io.UnsupportedOperation("stderr is closed")
        return self._stream.fileno()

    def writable(self) -> bool:
        return True

    @property
    def closed(self) -> bool:
        return False

    @property
    def encoding(self) -> str:
        return getattr(self._stream, "encoding", None) or "utf-8"

    @property
    def errors(self) -> str:
        return getattr(self._stream, "errors", None) or "backslashreplace"

    def __getattr__(self, name: str) -> Any:
        # name, mode, line_buffering...; never ``buffer``: bytes written there
        # would bypass the guard
        if name == "buffer" or self._stream is None:
            raise AttributeError(name)
        return getattr(self._stream, name)


def _park_on_devnull_inheritable(fd: int) -> None:
    # stderr that failed: keep its number (children get stderr=PIPE anyway)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        if devnull != fd:
            os.close(devnull)

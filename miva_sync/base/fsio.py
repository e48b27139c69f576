"""Small file-system primitives for durable, shared writes (POSIX)."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path


def write_all(fd: int, data: bytes) -> None:
    """Every byte of ``data``: one ``write`` may take fewer (a nearly full disk)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def replace_durably(path: Path, data: bytes, *, sync_folder: bool = True) -> None:
    """Write ``path`` whole or not at all: a temp file (0600) with every byte,
    fsynced, renamed over it; then the folder synced (unless the caller syncs
    it once for many files). Raises OSError, with no temp file left behind."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.fchmod(fd, 0o600)  # whatever the umask, and an old temp file's mode
            write_all(fd, data)
            os.fsync(fd)
        finally:
            os.close(fd)
        tmp.replace(path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_folder:
        fsync_dir(path.parent)


def fsync_dir(folder: Path) -> None:
    """Make renames and new names in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WriteLock:
    """A short exclusive ``flock`` on an open file, taken once per page.

    Writers of one target (a cron pull, the webhook receiver) hold it while
    they write and sync, so their writes never interleave.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.held = False

    def acquire(self) -> bool:
        """Take the lock; True if this call took it (it was not held yet)."""
        if self.held:
            return False
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        self.held = True
        return True

    def release(self) -> None:
        if self.held:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            self.held = False

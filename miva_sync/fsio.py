"""Small file-system primitives for durable, shared writes (POSIX)."""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


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

"""fsio: whole writes, and files replaced whole or not at all."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest

from miva_sync.base import fsio


def test_write_all_finishes_after_short_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write = os.write
    monkeypatch.setattr(fsio.os, "write", lambda fd, data: write(fd, bytes(data[:3])))
    path = tmp_path / "f"
    fsio.replace_durably(path, b"0123456789" * 10)
    assert path.read_bytes() == b"0123456789" * 10
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_replace_durably_keeps_the_old_file_when_the_disk_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: one os.write, unchecked, could rename a torn order file
    over a good one when the disk filled part-way."""
    path = tmp_path / "5.json"
    path.write_bytes(b'{"id":5,"dt_updated":1}\n')
    write = os.write
    calls: list[int] = []

    def full_after_a_few_bytes(fd: int, data: bytes) -> int:
        calls.append(len(data))
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return write(fd, bytes(data[:4]))

    monkeypatch.setattr(fsio.os, "write", full_after_a_few_bytes)
    with pytest.raises(OSError, match="No space"):
        fsio.replace_durably(path, b'{"id":5,"dt_updated":2}\n')
    assert path.read_bytes() == b'{"id":5,"dt_updated":1}\n'
    assert not list(tmp_path.glob("*.tmp-*"))  # no temp file left

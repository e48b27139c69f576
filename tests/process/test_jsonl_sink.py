"""Standard output with a real reader process at the other end of the pipe.

A commit returns once the reader has taken the page, and fails when the reader
leaves without reading it.
"""

from __future__ import annotations

import fcntl
import json
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from miva_sync.errors import BrokenPipeOutputError
from miva_sync.sinks.jsonl import StdoutSink

ORDER = {"id": 1046, "total": 59.25, "name": "Müller", "dt_updated": 1700000450}


def test_stdout_sink_commit_waits_for_the_reader(tmp_path: Path) -> None:
    """A page is only committed once a live reader has taken it from the pipe."""
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys,time; time.sleep(0.3); sys.stdout.write(sys.stdin.read())",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    assert reader.stdin is not None
    sink = StdoutSink(reader.stdin)
    sink.write([ORDER])
    sink.commit("k", None)  # returns only once the reader drained the pipe
    pending = fcntl.ioctl(reader.stdin.fileno(), termios.FIONREAD, b"\0\0\0\0")
    assert int.from_bytes(pending, sys.byteorder) == 0
    reader.stdin.close()
    assert reader.stdout is not None
    assert json.loads(reader.stdout.read()) == ORDER
    reader.wait(10)


def test_stdout_sink_commit_fails_when_the_reader_leaves_unread_data() -> None:
    reader = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(0.2)"], stdin=subprocess.PIPE
    )
    assert reader.stdin is not None
    sink = StdoutSink(reader.stdin)
    sink.write([ORDER])  # fits in the pipe buffer, never read
    with pytest.raises(BrokenPipeOutputError):
        sink.commit("k", None)
    reader.wait(10)

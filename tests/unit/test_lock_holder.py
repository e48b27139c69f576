"""What a run lock's file says about its holder, and what ``--wait`` means in
seconds (the CLI: tests/e2e/test_lock_wait_cli.py, tests/process/test_lock_wait.py)."""

from __future__ import annotations

import math

import pytest

from miva_sync.state.file import LockHolder, wait_limit


def test_the_holder_round_trips_and_describes_itself() -> None:
    holder = LockHolder(pid=4242, host="web1", since=1_790_000_000)
    assert LockHolder.parse(holder.to_bytes()) == holder
    assert holder.describe(1_790_000_000 + 725) == (
        "pid 4242 on web1 since 2026-09-21T14:13:20Z (12m ago)"
    )
    assert holder.describe(1_790_000_000 + 3 * 86400 + 5).endswith("(3d ago)")
    assert holder.describe(1_790_000_000 - 5).endswith("(just now)")


@pytest.mark.parametrize(
    "data",
    [b"", b"4242\n", b"{", b"[]", b'{"pid": "1", "host": "h", "since": 1}',
     b'{"pid": true, "host": "h", "since": 1}', b"\xff\xfe"],
)  # fmt: skip
def test_anything_else_in_the_lock_file_is_no_holder(data: bytes) -> None:
    assert LockHolder.parse(data) is None


def test_a_hostile_host_name_cannot_reach_the_terminal() -> None:
    data = b'{"pid": 1, "host": "evil\\u001b[2J\\u0007' + b"x" * 100 + b'", "since": 1}'
    holder = LockHolder.parse(data)
    assert holder is not None
    assert holder.host.isprintable() and holder.host.isascii()
    assert holder.host.startswith("evil?[2J?") and len(holder.host) == 64


def test_wait_in_seconds() -> None:
    assert wait_limit(False) == 0
    assert wait_limit(True) == math.inf  # --wait alone
    assert wait_limit(600) == 600  # --wait 10m
    assert wait_limit(0) == 0

"""JSON Lines outputs: exact objects, crash repair, closed pipes (a real reader
process on the pipe: tests/process/test_jsonl_sink.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from miva_sync.errors import BrokenPipeOutputError, OutputError
from miva_sync.sinks.jsonl import FileSink, StdoutSink, encode_lines

ORDER = {
    "id": 1046,
    "total": 59.25,
    "total_rfnd": 0,
    "ship_res": True,
    "name": "Müller",
    "dt_updated": {"time_t": 1700000450, "year": 2023},
}


def test_jsonl_lines_are_the_objects_unchanged() -> None:
    line = encode_lines([ORDER]).decode()
    assert line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line) == ORDER
    assert list(json.loads(line)) == list(ORDER)  # key order kept
    assert "Müller" in line


def test_file_sink_appends_and_repairs_a_partial_last_line(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b'{"id":1}\n{"id":2,"tot')  # a killed run left half a line
    sink = FileSink(path)
    sink.write([{"id": 3}])
    sink.commit("k", None)
    sink.close()
    assert [json.loads(line)["id"] for line in path.read_text().splitlines()] == [1, 3]


def test_file_sink_repairs_a_file_that_is_all_partial(tmp_path: Path) -> None:
    path = tmp_path / "orders.jsonl"
    path.write_bytes(b'{"id":2,"tot')
    sink = FileSink(path)
    sink.write([{"id": 3}])
    sink.commit("k", None)
    sink.close()
    assert path.read_text() == '{"id":3}\n'


def test_file_sink_unwritable_target_is_exit_8(tmp_path: Path) -> None:
    with pytest.raises(OutputError) as info:
        FileSink(tmp_path / "missing-dir" / "orders.jsonl")
    assert info.value.exit_code == 8


def test_file_sink_disk_full_is_exit_8_and_leaves_whole_lines() -> None:
    if not Path("/dev/full").exists():
        pytest.fail("/dev/full is needed to simulate a full disk")
    sink = FileSink(Path("/dev/full"))
    with pytest.raises(OutputError, match="No space") as info:
        sink.write([ORDER])
    assert info.value.exit_code == 8
    sink.close()


def test_stdout_sink_closed_pipe_raises_broken_pipe() -> None:
    read_end, write_end = os.pipe()
    os.close(read_end)
    with os.fdopen(write_end, "wb") as stream:
        sink = StdoutSink(stream)
        with pytest.raises(BrokenPipeOutputError) as info:
            sink.write([ORDER] * 2000)
            sink.commit("k", None)
        assert info.value.exit_code == 8


def test_replayed_lines_are_made_durable_before_the_state_vouches_for_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found in review: a killed run's page went into the dedupe window (saved
    next in the state file) without an fsync of the file it was read from."""
    from miva_sync.sinks import receipts
    from miva_sync.sinks.jsonl import FileSink

    path = tmp_path / "o.jsonl"
    sink = FileSink(path)
    sink.write([{"id": 1, "dt_updated": 1}])
    sink.commit("k", None)
    saved = receipts.receipt(sink)
    sink.write([{"id": 2, "dt_updated": 2}, {"id": 3, "dt_updated": 3}])  # no commit
    synced: list[int] = []
    monkeypatch.setattr(receipts.os, "fsync", lambda fd: synced.append(fd))
    replayed = receipts.uncommitted(sink, saved)
    assert [o["id"] for o in replayed] == [2, 3]
    assert len(synced) == 1
    synced.clear()
    assert receipts.uncommitted(sink, receipts.receipt(sink)) == []
    assert synced == []  # nothing past the receipt: nothing to make durable
    sink.close()


def test_replay_only_from_the_same_file_and_a_receipt_inside_it(tmp_path: Path) -> None:
    """A receipt belongs to one file: another path, the same path rotated (a new
    inode), or an offset past its end replays nothing (those lines are not ours)."""
    from miva_sync.sinks import receipts
    from miva_sync.sinks.jsonl import FileSink

    path = tmp_path / "o.jsonl"
    sink = FileSink(path)
    sink.write([{"id": 1, "dt_updated": 1}])
    sink.commit("k", None)
    saved = receipts.receipt(sink)
    assert saved is not None
    sink.write([{"id": 2, "dt_updated": 2}])
    sink.commit("k", None)
    assert [o["id"] for o in receipts.uncommitted(sink, saved)] == [2]
    elsewhere = {**saved, "target": str(tmp_path / "other.jsonl")}
    assert receipts.uncommitted(sink, elsewhere) == []
    assert receipts.uncommitted(sink, {**saved, "inode": saved["inode"] + 1}) == []
    assert receipts.uncommitted(sink, {**saved, "offset": 10**9}) == []
    assert receipts.uncommitted(sink, {**saved, "offset": "12"}) == []
    sink.close()

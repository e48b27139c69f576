"""Reading targets back (newest wins, damaged parts) and the pure comparison."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from miva_sync.app.verify import Range, compare
from miva_sync.sinks.readback import Stored, TargetContents, read_target


def line(oid: int, updated: Any, orderdate: int = 100) -> str:
    return json.dumps({"id": oid, "orderdate": orderdate, "dt_updated": updated}) + "\n"


def test_readback_jsonl_newest_version_wins_and_a_partial_line_is_ignored(
    tmp_path: Path,
) -> None:
    path = tmp_path / "o.jsonl"
    path.write_text(
        line(1, 50)
        + line(1, 70)
        + line(1, 60)  # an older version written later (a replayed page)
        + line(2, {"time_t": 80, "timezone": 0})  # a JSON_DateTime object
        + "\n"
        + "{not json}\n"
        + line(3, 90)[:-5]  # a killed writer's half line: never written
    )
    contents = read_target(str(path), "key")
    assert contents.orders == {1: Stored(100, 70), 2: Stored(100, 80)}
    assert contents.unreadable == 1 and contents.fmt == "jsonl"


def test_readback_hostile_lines_and_files_count_as_unreadable(tmp_path: Path) -> None:
    # the standard library's parser raised RecursionError here: a traceback
    deep = b"[" * 100_000 + b"]" * 100_000
    path = tmp_path / "o.jsonl"
    path.write_bytes(line(1, 50).encode() + deep + b"\n" + b"\xff\xfe\n")
    contents = read_target(str(path), "key")
    assert contents.orders == {1: Stored(100, 50)} and contents.unreadable == 2
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "5.json").write_bytes(deep)
    contents = read_target(f"{folder}/", "key")
    assert contents.orders == {} and contents.unreadable == 1


def test_readback_singer_file_reads_records(tmp_path: Path) -> None:
    path = tmp_path / "o.singer"
    messages = [
        {"type": "SCHEMA", "stream": "orders", "schema": {}, "key_properties": ["id"]},
        {"type": "RECORD", "stream": "orders", "record": json.loads(line(7, 5))},
        {"type": "STATE", "value": {}},
    ]
    path.write_text("".join(json.dumps(m) + "\n" for m in messages))
    contents = read_target(str(path), "key")
    assert contents.orders == {7: Stored(100, 5)} and contents.fmt == "singer"


def test_readback_folder_counts_damaged_files_as_absent(tmp_path: Path) -> None:
    folder = tmp_path / "orders"
    folder.mkdir()
    (folder / "1.json").write_text(line(1, 10))
    (folder / "2.json").write_text(line(2, 10)[:9])  # truncated
    (folder / "3.json").write_text(line(4, 10))  # not the order its name says
    (folder / ".5.json.tmp-99").write_text(line(5, 10))  # a writer's temp file
    contents = read_target(f"{folder}/", "key")
    assert contents.orders == {1: Stored(100, 10)}
    assert contents.unreadable == 2


def test_compare_names_missing_stale_held_and_extra_within_the_range() -> None:
    rng = Range("date", 100, 200)
    listed = {
        1: Stored(100, 5),
        2: Stored(150, 9),
        3: Stored(200, 5),
        4: Stored(120, 5),
    }
    contents = TargetContents(
        "t",
        {
            2: Stored(150, 8),  # older: stale
            3: Stored(200, 7),  # newer than the store's: fine
            8: Stored(200, 1),  # in range, store does not list it: extra candidate
            9: Stored(201, 1),  # beyond the range: not compared
            10: Stored(None, 1),  # no orderdate: cannot be placed in the range
        },
    )
    missing, stale, held, extra = compare(rng, listed, contents, held=[4])
    assert (missing, stale, held, extra) == ([1], [2], [4], [8])
    by_update = compare(Range("updated", 1, 7), listed, contents)
    assert by_update[3] == [8, 9, 10]

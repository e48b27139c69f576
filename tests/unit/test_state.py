"""StateStore: atomic writes, validation, quarantine, the run lock in one process."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from miva_sync.errors import ConfigError, LockedError
from miva_sync.state.file import StateStore

RECORD = {
    "mode": "date",
    "cursors": {"date": {"start": 100, "watermark": 200, "lookback": 900}},
    "dedupe": {"7": [1700000000, 1699999000, 1700000000]},
    "held": {},
}


def test_state_round_trips_records_per_store(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    assert store.get("a") is None
    store.put("a", RECORD)
    store.put(
        "b",
        {
            **RECORD,
            "mode": "number",
            "cursors": {"number": {"start": 1, "watermark": 5}},
        },
    )
    assert store.get("a") == RECORD
    assert store.get("b")["mode"] == "number"
    assert (tmp_path / "state.json").stat().st_mode & 0o777 == 0o600
    assert not list(tmp_path.glob("*.tmp-*"))


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"{",
        b"\x00\x00\x00",
        b"[]",
        b'{"version": 99, "stores": {}}',
        b'{"version": 1, "stores": {"a": {"mode": "bogus", "cursors": {}}}}',
        b'{"version": 1, "stores": {"a": {"mode": "date", "cursors": {"date": {"start": "x"}}}}}',
        b'{"version": 1, "stores": {"a": {"mode": "date", "cursors": {"date": {"start": 1}}}, "dedupe": []}}',
    ],
)
def test_state_corrupt_file_is_quarantined_with_exit_3(
    tmp_path: Path, content: bytes
) -> None:
    path = tmp_path / "state.json"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="corrupt") as info:
        StateStore(path).get("a")
    assert info.value.exit_code == 3
    assert not path.exists()
    moved = list(tmp_path.glob("state.json.corrupt-*"))
    assert len(moved) == 1
    assert moved[0].read_bytes() == content
    # the next run starts clean
    assert StateStore(path).get("a") is None


def test_state_run_lock_excludes_a_second_holder(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    with store.run_lock("shop"):
        with pytest.raises(LockedError) as info:
            with StateStore(tmp_path / "state.json").run_lock("shop"):
                pass
        assert info.value.exit_code == 7
        with store.run_lock("other-shop"):  # other stores are independent
            pass
    with store.run_lock("shop"):  # released
        pass


def test_state_file_is_valid_json_with_version(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.json")
    store.put("a", RECORD)
    document = json.loads((tmp_path / "state.json").read_text())
    assert document["version"] == 1
    assert document["stores"]["a"] == RECORD


# -- what a store keeps of the file it read (start-up: issue 23) -----------------


def _parses(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Every state document the store parses from now on."""
    from miva_sync.state import file

    seen: list[bytes] = []
    real = file.jsonio.loads

    def counting(data: bytes) -> object:
        seen.append(data)
        return real(data)

    monkeypatch.setattr(file.jsonio, "loads", counting)
    return seen


def test_state_reading_the_same_bytes_again_parses_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.json"
    StateStore(path).put("a", RECORD)
    parsed = _parses(monkeypatch)
    store = StateStore(path)
    assert store.get("a") == RECORD  # a run reads its record before its lock
    assert store.get("a") == RECORD  # and after it, then saves it unchanged
    store.put("a", RECORD)
    assert len(parsed) == 1
    # another writer changed the file: read again, never the kept records
    StateStore(path).put("a", {**RECORD, "dedupe": {}})
    before = len(parsed)
    assert store.get("a")["dedupe"] == {}
    assert len(parsed) == before + 1


def test_state_saving_what_the_file_holds_writes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    StateStore(path).put("a", RECORD)
    before = path.stat()
    store = StateStore(path)
    record = store.get("a")
    assert record is not None
    store.put("a", record)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    record["cursors"]["date"]["watermark"] = 300
    store.put("a", record)
    assert path.stat().st_ino != before.st_ino  # replaced, as every write is
    assert StateStore(path).get("a")["cursors"]["date"]["watermark"] == 300


def test_state_records_handed_out_are_copies(tmp_path: Path) -> None:
    """Changing a record a store handed out, or one it was given to save,
    never changes what it keeps: the next get is what the file holds."""
    path = tmp_path / "state.json"
    store = StateStore(path)
    saved = json.loads(json.dumps(RECORD))
    store.put("a", saved)
    saved["cursors"]["date"]["watermark"] = 1  # after the put: not saved
    saved["dedupe"]["8"] = [1, 2, 3]
    got = store.get("a")
    assert got == RECORD
    got["cursors"]["date"]["start"] = 5
    got["dedupe"].clear()
    got["held"]["9"] = {"since": 1, "orderdate": None}
    assert store.get("a") == RECORD
    assert store.all() == {"a": RECORD}
    store.all()["a"]["mode"] = "number"
    assert store.get("a") == RECORD == json.loads(path.read_bytes())["stores"]["a"]


def test_state_a_record_with_a_bad_entry_is_refused_before_writing(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.json"
    store = StateStore(path)
    store.put("a", RECORD)
    before = path.read_bytes()
    with pytest.raises(ValueError, match="bad dedupe entry"):
        store.put("a", {**RECORD, "dedupe": {"x7": [1, 2, 3]}})
    assert path.read_bytes() == before


def test_copy_record_keeps_key_order_and_shares_only_dedupe_entries() -> None:
    from miva_sync.state.record import copy_record

    record: Any = {
        "held": {"9": {"since": 1, "orderdate": None}},
        "mode": "queue",
        "dedupe": {"7": [1, 2, 3]},
        "cursors": {"queue": {"queue_code": "q", "pending_ack": [4]}},
    }
    copied: Any = copy_record(record)
    assert copied == record and list(copied) == list(record)
    copied["cursors"]["queue"]["pending_ack"].append(5)
    copied["held"]["9"]["since"] = 2
    copied["dedupe"]["8"] = [4, 5, 6]
    assert record["cursors"]["queue"]["pending_ack"] == [4]
    assert record["held"]["9"]["since"] == 1 and "8" not in record["dedupe"]
    # entries are replaced whole, never changed in place (state/record.py)
    assert copied["dedupe"]["7"] is record["dedupe"]["7"]

"""StateStore: atomic writes, validation, quarantine, the run lock in one process."""

from __future__ import annotations

import json
from pathlib import Path

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

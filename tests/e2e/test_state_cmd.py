"""``miva-sync state show|set|reset``: inspect, rewind and forget a store's state."""

from __future__ import annotations

import json
import re
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from miva_sync.config import load_settings
from miva_sync.sandbox import Sandbox
from miva_sync.state.file import StateStore
from tests.support.fakes import STORE_URL, TOKEN


def now() -> int:
    # read at each use: the suite may run for minutes after this module loads
    return int(time.time())


def record(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "mode": "date",
        "cursors": {
            "date": {
                "start": 1_790_000_000,
                "watermark": 1_790_086_400,
                "lookback": 900,
            },
            "number": {"start": 1000, "watermark": 1042, "overlap": "30"},
        },
        "dedupe": {"1041": [1, 2, "x"], "1042": [1, 2, "y"]},
        "held": {"1043": {"since": now() - 7200, "orderdate": now() - 7300}},
    }
    base.update(extra)
    return base


def last_run(age: int) -> dict[str, Any]:
    return {
        "finished_at": now() - age,
        "mode": "date",
        "emitted": 12,
        "unchanged": 3,
        "held": 1,
        "released": 0,
        "seconds": 1.5,
    }


@pytest.fixture
def store(store_env: dict[str, str]) -> StateStore:
    return StateStore(load_settings().state_path())


@pytest.fixture
def key(store_env: dict[str, str]) -> str:
    return load_settings().store_key


def test_state_show_without_state_is_exit_2_with_a_hint(
    run: Any, store_env: Any
) -> None:
    result = run(["state", "show"])
    assert result.exit_code == 2
    assert "--since" in result.stderr


def test_state_show_needs_to_know_the_store(run: Any) -> None:
    result = run(["state", "show"])
    assert result.exit_code == 3
    assert "MIVA_URL" in result.stderr and "--sandbox" in result.stderr


def test_state_show_for_people(run: Any, store: StateStore, key: str) -> None:
    store.put(key, record(last_run=last_run(600)))
    result = run(["state", "show"])
    assert result.exit_code == 0, result.stderr
    out = result.stdout
    assert re.search(r"^active mode +date$", out, re.M)
    assert "2026-09-21T14:13:20Z  (1790000000)" in out  # start: ISO and raw
    assert "2026-09-22T14:13:20Z  (1790086400)" in out  # watermark
    assert "#1042" in out  # number cursors are order numbers, not times
    assert re.search(r"#1043 +held since", out) and "(2h0m ago)" in out
    assert "12 emitted, 3 unchanged, 1 held, 0 released" in out
    assert "(10m ago)" in out


def test_state_show_json_has_documented_keys(
    run: Any, store: StateStore, key: str
) -> None:
    store.put(key, record(last_run=last_run(60)))
    data = json.loads(run(["state", "show", "--json"]).stdout)
    assert data["store"] == key and data["mode"] == "date"
    assert data["watermark"] == 1_790_086_400
    assert data["watermark_iso"] == "2026-09-22T14:13:20Z"
    date = data["cursors"]["date"]
    assert (date["field"], date["start"], date["lookback"]) == (
        "orderdate",
        1_790_000_000,
        900,
    )
    assert data["cursors"]["number"]["watermark_iso"] is None
    assert data["dedupe_size"] == 2
    assert (
        data["held"][0]["id"] == 1043 and 7190 <= data["held"][0]["age_seconds"] <= 7300
    )
    assert data["last_run"]["emitted"] == 12 and data["last_run"]["age_seconds"] >= 60


@pytest.mark.parametrize(
    ("age", "max_age", "code"),
    [(600, "2h", 0), (3 * 3600, "2h", 9), (90, "1m", 9), (None, "1d", 9)],
)
def test_state_show_max_age_is_the_staleness_alarm(
    run: Any, store: StateStore, key: str, age: int | None, max_age: str, code: int
) -> None:
    extra = {} if age is None else {"last_run": last_run(age)}
    store.put(key, record(**extra))
    result = run(["state", "show", "--max-age", max_age])
    assert result.exit_code == code, result.stderr
    assert result.stdout  # the state is still shown
    if code:
        assert result.stderr.startswith("miva-sync: error: ")
        assert ("ago" in result.stderr) or ("no successful run" in result.stderr)


def test_state_show_bad_max_age_is_exit_2(
    run: Any, store: StateStore, key: str
) -> None:
    store.put(key, record())
    assert run(["state", "show", "--max-age", "soon"]).exit_code == 2


def test_state_set_since_rewinds_the_active_cursor(
    run: Any, store: StateStore, key: str
) -> None:
    store.put(key, record(last_run=last_run(60)))
    result = run(["state", "set", "--since", "2026-09-01T00:00:00Z"])
    assert result.exit_code == 0, result.stderr
    assert "2026-09-22T14:13:20Z (1790086400) -> 2026-09-01T00:00:00Z" in result.stderr
    saved = store.get(key)
    assert saved is not None
    assert saved["mode"] == "date"
    assert saved["cursors"]["date"] == {
        "start": 1_788_220_800,
        "watermark": None,
        "lookback": 900,
    }
    assert saved["dedupe"] == record()["dedupe"]  # kept unless --forget-seen
    assert saved["last_run"]["emitted"] == 12


def test_state_set_speaks_json_lines_and_keeps_quiet_under_q(
    run: Any, store: StateStore, key: str
) -> None:
    # its closing line was plain text under --log-format json, and shown under -q
    store.put(key, record())
    result = run(["--log-format", "json", "state", "set", "--order", "1020"])
    assert result.exit_code == 0, result.stderr
    line = json.loads(result.stderr)  # one JSON line, nothing else
    assert line["level"] == "info" and "#1042 -> #1020" in line["message"]
    quiet = run(["-q", "state", "set", "--order", "1000"])
    assert quiet.exit_code == 0 and quiet.stderr == ""
    assert store.get(key)["cursors"]["number"]["start"] == 1000  # type: ignore[index]


def test_state_set_order_switches_to_number_mode_and_can_forget_seen(
    run: Any, store: StateStore, key: str
) -> None:
    store.put(key, record())
    result = run(["state", "set", "--order", "1020", "--forget-seen"])
    assert result.exit_code == 0, result.stderr
    assert "#1042 -> #1020" in result.stderr
    saved = store.get(key)
    assert saved is not None
    assert saved["mode"] == "number"
    assert saved["cursors"]["number"] == {
        "start": 1020,
        "watermark": None,
        "overlap": "30",
    }
    assert saved["dedupe"] == {}


def test_state_set_without_state_creates_a_start(
    run: Any, store: StateStore, key: str
) -> None:
    result = run(["state", "set", "--since", "1790000000", "--updated"])
    assert result.exit_code == 0, result.stderr
    saved = store.get(key)
    assert saved is not None
    assert saved["mode"] == "updated"
    assert saved["cursors"]["updated"]["start"] == 1_790_000_000


@pytest.mark.parametrize(
    "args", [[], ["--order", "5", "--since", "2d"], ["--order", "5", "--updated"]]
)
def test_state_set_needs_exactly_one_point(
    run: Any, store: StateStore, key: str, args: list[str]
) -> None:
    assert run(["state", "set", *args]).exit_code == 2


def test_state_set_and_reset_wait_for_no_one_exit_7(
    run: Any, store: StateStore, key: str
) -> None:
    store.put(key, record())
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with store.run_lock(key):
            held.set()
            release.wait(10)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(5)
        assert run(["state", "set", "--order", "1"]).exit_code == 7
        assert run(["state", "reset", "--yes"]).exit_code == 7
    finally:
        release.set()
        holder.join()
    assert store.get(key) == record()


def test_state_reset_asks_first(
    run: Any, store: StateStore, key: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.put(key, record())
    nobody = run(["state", "reset"], input="y\n")  # no terminal: no prompt
    assert nobody.exit_code == 3 and "--yes" in nobody.stderr
    assert store.get(key) is not None
    # the runner's stdin is no terminal: say it is, so the question is asked
    monkeypatch.setattr("miva_sync.cli.common.stdin_is_terminal", lambda: True)
    declined = run(["state", "reset"], input="n\n")
    assert declined.exit_code == 0 and store.get(key) is not None
    agreed = run(["state", "reset"], input="y\n")
    assert agreed.exit_code == 0, agreed.stderr
    assert store.get(key) is None
    assert "forgot" in agreed.stderr


def test_state_reset_yes_does_not_ask(run: Any, store: StateStore, key: str) -> None:
    store.put(key, record())
    result = run(["state", "reset", "--yes"])
    assert result.exit_code == 0
    assert store.get(key) is None
    assert "start again with --since" in result.stderr


def test_state_uses_the_profiles_key(run: Any, isolated_home: Path) -> None:
    (isolated_home / "config.toml").write_text(
        f'[profiles.shop]\nurl = "{STORE_URL}"\nstore_code = "PS"\napi_token = "{TOKEN}"\n'
    )
    StateStore(isolated_home / "state.json").put("profile:shop", record())
    result = run(["--profile", "shop", "state", "show", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["store"] == "profile:shop"


def test_state_of_the_sandbox_and_its_sqlite_copy(run: Any, tmp_path: Path) -> None:
    # the README's path: pull the sandbox into SQLite, inspect, rewind, pull again
    target = f"sqlite:///{tmp_path / 'orders.db'}"
    first = run(["pull", "--sandbox", "--since", "30d", "-o", target, "--no-progress"])
    assert first.exit_code == 0, first.stderr
    shown = run(["state", "show", "--sandbox", "-o", target, "--json"])
    assert shown.exit_code == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["store"] == "sandbox" and data["source"] == target
    assert data["watermark"] is not None
    rewind = run(["state", "set", "--sandbox", "-o", target, "--since", "2d"])
    assert rewind.exit_code == 0, rewind.stderr
    from miva_sync.sinks.sqlite import SqliteSink

    sink = SqliteSink(tmp_path / "orders.db")
    try:
        copy = sink.load_checkpoint("sandbox")
    finally:
        sink.close()
    assert copy is not None
    assert copy["cursors"]["date"]["watermark"] is None
    assert abs(copy["cursors"]["date"]["start"] - (time.time() - 2 * 86400)) < 60
    again = run(["pull", "--sandbox", "-o", target, "--no-progress"])
    assert again.exit_code == 0, again.stderr
    reset = run(["state", "reset", "--sandbox", "-o", target, "--yes"])
    assert reset.exit_code == 0
    assert "sync_state" in reset.stderr  # the database's own copy is named


def test_state_with_a_running_sandbox_pull_is_independent_of_sandbox(
    run: Any,
) -> None:
    # `state show --sandbox` starts no sandbox: it only reads the key "sandbox"
    with Sandbox(orders=1) as sb:
        before = sb.request_count
    assert run(["state", "show", "--sandbox"]).exit_code == 2
    assert before == 0

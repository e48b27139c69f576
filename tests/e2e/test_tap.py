"""tap-miva against a real sandbox: catalog selection, the --state round trip,
records that match their SCHEMA, STATE never ahead of its records (a tap
killed mid-stream resumes from its last STATE without losing an order),
--about, bad config, and --config ENV."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from miva_sync.sandbox import Sandbox
from miva_sync.sandbox.store import DEFAULT_QUEUE

TAP = [sys.executable, "-c", "from miva_sync.cli.tap import main; main()"]


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=120, seed=23) as sb:
        yield sb


def settings(sandbox: Sandbox, **more: Any) -> dict[str, Any]:
    return {
        "url": sandbox.url,
        "store_code": sandbox.store_code,
        "api_token": sandbox.api_token,
        "signing_key": sandbox.signing_key,
        "start_date": "2000-01-01",
        **more,
    }


def write(path: Path, data: Any) -> str:
    path.write_text(json.dumps(data))
    return str(path)


def tap(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TAP, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, **(env or {})},
    )


def messages(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines()]


def records(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m["record"] for m in stream if m["type"] == "RECORD"]


def last_state(stream: list[dict[str, Any]]) -> dict[str, Any]:
    states = [m["value"] for m in stream if m["type"] == "STATE"]
    assert states, "no STATE"
    return states[-1]


def all_ids(sandbox: Sandbox) -> set[int]:
    return set(sandbox.store.ids())


def run_ok(*args: str, env: dict[str, str] | None = None) -> list[dict[str, Any]]:
    done = tap(*args, env=env)
    assert done.returncode == 0, done.stderr
    return messages(done.stdout)


def test_discover_then_full_catalog_emits_every_order_valid_against_schema(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = write(tmp_path / "config.json", settings(sandbox))
    catalog = json.loads(tap("--config", config, "--discover").stdout)
    chosen = write(tmp_path / "catalog.json", catalog)
    stream = run_ok("--config", config, "--catalog", chosen)
    assert stream[0]["type"] == "SCHEMA" and stream[0]["key_properties"] == ["id"]
    validator = Draft202012Validator(stream[0]["schema"])
    got = records(stream)
    assert {r["id"] for r in got} == all_ids(sandbox)
    for record in got:
        validator.validate(record)
    for message in stream:
        if message["type"] == "RECORD":
            assert message["time_extracted"].endswith("Z")
    assert stream[-1]["type"] == "STATE"


def test_deselected_stream_emits_no_record(sandbox: Sandbox, tmp_path: Path) -> None:
    config = write(tmp_path / "config.json", settings(sandbox))
    catalog = json.loads(tap("--config", config, "--discover").stdout)
    catalog["streams"][0]["metadata"][0]["metadata"]["selected"] = False
    chosen = write(tmp_path / "catalog.json", catalog)
    assert run_ok("--config", config, "--catalog", chosen) == []
    assert run_ok("--config", config, "--properties", chosen) == []


def test_deselected_field_is_absent_from_record_and_schema(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = write(tmp_path / "config.json", settings(sandbox))
    catalog = json.loads(tap("--config", config, "--discover").stdout)
    for item in catalog["streams"][0]["metadata"]:
        if item["breadcrumb"] in (["properties", "bill_email"], ["properties", "id"]):
            item["metadata"]["selected"] = False
    chosen = write(tmp_path / "catalog.json", catalog)
    stream = run_ok("--config", config, "--catalog", chosen)
    schema = stream[0]["schema"]
    assert "bill_email" not in schema["properties"] and "id" in schema["properties"]
    validator = Draft202012Validator(schema)
    got = records(stream)
    assert {r["id"] for r in got} == all_ids(sandbox)  # the key property kept
    for record in got:
        assert "bill_email" not in record and "orderdate" in record
        validator.validate(record)


def test_state_round_trip_emits_only_new_and_changed(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    config = write(tmp_path / "config.json", settings(sandbox, mode="updated"))
    first = run_ok("--config", config)
    assert {r["id"] for r in records(first)} == all_ids(sandbox)
    state = write(tmp_path / "state.json", last_state(first))
    bookmark = last_state(first)["bookmarks"]["orders"]
    assert bookmark["replication_key"] == "dt_updated"
    assert bookmark["replication_key_value"] is not None
    added = sandbox.store.add_order()["id"]
    changed = min(all_ids(sandbox))
    sandbox.store.update_order(changed, ship_city="Elsewhere")
    second = run_ok("--config", config, "--state", state)
    assert sorted(r["id"] for r in records(second)) == sorted({added, changed})
    # and once more from the second run's STATE: nothing new, nothing again
    state = write(tmp_path / "state2.json", last_state(second))
    assert records(run_ok("--config", config, "--state", state)) == []


def test_state_never_precedes_its_records(tmp_path: Path) -> None:
    """Each STATE's watermark covers only records already on stdout; a tap
    killed after a STATE resumes from it without losing an order."""
    with Sandbox(orders=400, seed=29, latency_ms=3) as sandbox:
        check_state_order(sandbox, tmp_path)


def check_state_order(sandbox: Sandbox, tmp_path: Path) -> None:
    config = write(tmp_path / "config.json", settings(sandbox, page_size=10))
    stream = run_ok("--config", config)
    states = 0
    for i, message in enumerate(stream):
        if message["type"] != "STATE":
            continue
        states += 1
        mark = message["value"]["bookmarks"]["orders"]["replication_key_value"]
        if mark is None:  # the first page's STATE: its bound waits for the next
            continue
        later = [r["orderdate"] for r in records(stream[i + 1 :])]
        assert all(date >= mark for date in later), "STATE ahead of its records"
    assert states >= 5
    # killed mid-stream: keep what came before the last STATE seen
    process = subprocess.Popen([*TAP, "--config", config], stdout=subprocess.PIPE)
    assert process.stdout is not None
    seen: list[dict[str, Any]] = []
    while sum(m["type"] == "STATE" for m in seen) < 3:
        seen.append(json.loads(process.stdout.readline()))
    process.kill()
    process.wait()
    cut = max(i for i, m in enumerate(seen) if m["type"] == "STATE")
    before = {r["id"] for r in records(seen[:cut])}
    # (a slow pipe groups commits: how far the third STATE reaches varies)
    assert before
    state = write(tmp_path / "state.json", seen[cut]["value"])
    rest = {r["id"] for r in records(run_ok("--config", config, "--state", state))}
    assert before | rest == all_ids(sandbox)


def test_about_is_json_with_sensitive_settings() -> None:
    done = tap("--about")
    assert done.returncode == 0, done.stderr
    about = json.loads(done.stdout)
    assert about["name"] == "tap-miva"
    assert {"catalog", "discover", "state", "about"} <= set(about["capabilities"])
    secret = {s["name"] for s in about["settings"] if s.get("sensitive")}
    assert secret == {"api_token", "signing_key"}
    Draft202012Validator.check_schema(about["settings_schema"])
    markdown = tap("--about", "--format", "markdown")
    assert markdown.returncode == 0 and markdown.stdout.startswith("# tap-miva")
    version = tap("--version")
    assert version.returncode == 0 and "tap-miva" in version.stdout


@pytest.mark.parametrize(
    "values",
    [
        {"mode": "weekly"},
        {"mode": "queue"},  # without its queue_code
        {"page_size": "many"},
        {"start_date": "2000-01-01"},  # no url, store code or token
    ],
)
def test_bad_config_exits_3_with_one_line(
    tmp_path: Path, values: dict[str, Any]
) -> None:
    done = tap("--config", write(tmp_path / "config.json", values))
    assert done.returncode == 3, done.stderr
    assert done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_a_misspelt_setting_is_named_not_silently_ignored(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    values = {**settings(sandbox, mode="number", start_order=0), "strat_date": "x"}
    done = tap("--config", write(tmp_path / "config.json", values))
    assert done.returncode == 0, done.stderr
    assert "unknown setting(s) strat_date ignored" in done.stderr
    assert {r["id"] for r in records(messages(done.stdout))} == all_ids(sandbox)


def test_a_no_ack_queue_is_refused(sandbox: Sandbox, tmp_path: Path) -> None:
    values = {
        **settings(sandbox, mode="queue", queue_code="new_updated_orders"),
        "ack": False,
    }
    done = tap("--config", write(tmp_path / "config.json", values))
    assert done.returncode == 3, done.stderr
    assert done.stderr.startswith("miva-sync: error: ack:"), done.stderr
    assert done.stdout == ""


def test_config_env(sandbox: Sandbox) -> None:
    env = {
        f"TAP_MIVA_{name.upper()}": str(value)
        for name, value in settings(sandbox, mode="number", start_order=0).items()
    }
    catalog = json.loads(tap("--config", "ENV", "--discover", env=env).stdout)
    assert catalog["streams"][0]["replication_key"] == "id"
    stream = run_ok("--config", "ENV", env=env)
    assert {r["id"] for r in records(stream)} == all_ids(sandbox)
    assert last_state(stream)["bookmarks"]["orders"]["replication_key"] == "id"


def test_queue_mode_acknowledges_on_the_next_run(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """A run leaves what it delivered queued and journals it in its STATE; the
    run handed that STATE acknowledges it first, then reads on."""
    config = write(
        tmp_path / "config.json",
        settings(sandbox, mode="queue", queue_code=DEFAULT_QUEUE, page_size=25),
    )
    store = sandbox.store
    queued = set(store.queue_ids(DEFAULT_QUEUE))
    assert len(queued) == 120
    first = run_ok("--config", config)
    assert {r["id"] for r in records(first)} == queued
    assert set(store.queue_ids(DEFAULT_QUEUE)) == queued  # nothing acknowledged yet
    bookmark = last_state(first)["bookmarks"]["orders"]
    assert set(bookmark["record"]["cursors"]["queue"]["pending_ack"]) == queued
    # a runner that never stored that STATE (its target failed): all again
    again = run_ok("--config", config)
    assert {r["id"] for r in records(again)} == queued
    added = store.add_order()["id"]
    changed = min(queued)
    store.update_order(changed, ship_city="Elsewhere")
    state = write(tmp_path / "state.json", last_state(first))
    second = run_ok("--config", config, "--state", state)
    # the journal acknowledged (the changed order with it: its new version
    # comes from the re-read after the acknowledgement), the new order delivered
    assert sorted(r["id"] for r in records(second)) == sorted({added, changed})
    assert {"id": changed, "ship_city": "Elsewhere"}.items() <= {
        **records(second)[[r["id"] for r in records(second)].index(changed)]
    }.items()
    assert set(store.queue_ids(DEFAULT_QUEUE)) == {added}
    pending = last_state(second)["bookmarks"]["orders"]["record"]["cursors"]["queue"]
    assert pending["pending_ack"] == [added]
    state = write(tmp_path / "state2.json", last_state(second))
    assert records(run_ok("--config", config, "--state", state)) == []
    assert store.queue_ids(DEFAULT_QUEUE) == []

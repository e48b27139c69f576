"""``--json``: each command's machine answer, one JSON object that validates
against its published schema (docs/schemas/), taken from the real CLI against a
sandbox store (issue 21).

``pull --json`` prints the run summary (docs/design.md §4.4): on stdout when the
orders go to a target (stdout has nothing else), as the last stderr line when
stdout carries the orders; a run that fails after it has read the store prints
it with its exit status before the error line. ``verify``, ``check`` and
``state show`` print theirs on stdout, each with the status the command exits
with.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from jsonschema import Draft202012Validator

from miva_sync.base.timespec import iso
from miva_sync.config import load_settings
from miva_sync.errors import ExitStatus
from miva_sync.sandbox import DEFAULT_QUEUE, Sandbox
from miva_sync.state.file import StateStore
from miva_sync.sync.summary import Tally
from tests.support.helpers import read_jsonl
from tests.support.schemas import NAMES, schema, valid


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=120, seed=5, tie_order="id") as sb:
        yield sb


@pytest.fixture
def env(sandbox: Sandbox) -> dict[str, str]:
    # a failing request fails the run at once: no retry budget to wait out
    return {**sandbox.env(), "MIVA_SYNC_RETRY_BUDGET": "0"}


def settings_of(env: dict[str, str]) -> Any:
    """The settings the CLI runs with (this test's home, the sandbox's store)."""
    return load_settings(env={**os.environ, **env})


def saved(env: dict[str, str]) -> dict[str, Any]:
    """The store's record in the state file."""
    settings = settings_of(env)
    record = StateStore(settings.state_path()).get(settings.store_key)
    assert record is not None
    return dict(record)


def one_object(text: str) -> dict[str, Any]:
    """``text`` is exactly one line holding one JSON object."""
    lines = text.splitlines()
    assert len(lines) == 1, lines
    data = json.loads(lines[0])
    assert isinstance(data, dict)
    return data


def stderr_lines(result: Result) -> list[str]:
    return result.stderr.splitlines()


# -- the schemas themselves ---------------------------------------------------------


@pytest.mark.parametrize("name", sorted(NAMES.values()))
def test_each_published_schema_is_a_valid_json_schema(name: str) -> None:
    Draft202012Validator.check_schema(schema(name))


def test_the_run_summary_schema_names_every_key_and_every_exit_status() -> None:
    made = Tally().freeze("date", lo=0).finished(0).to_json()
    published = schema("run-summary")
    assert set(published["required"]) == set(made) == set(published["properties"])
    statuses = published["properties"]["exit_status"]["enum"]
    assert statuses == [int(s) for s in ExitStatus]


# -- pull --json ------------------------------------------------------------------------


def test_pull_json_into_a_target_prints_the_summary_alone_on_stdout(
    run: Any, env: dict[str, str], tmp_path: Path
) -> None:
    out = tmp_path / "orders.jsonl"
    result = run(["pull", "--since", "30d", "-o", str(out), "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    summary = valid("run-summary", one_object(result.stdout))
    written = read_jsonl(out)
    record = saved(env)
    cursor = record["cursors"]["date"]
    assert summary["mode"] == "date" and summary["cursor_field"] == "orderdate"
    assert summary["store"] == settings_of(env).store_key
    assert summary["exit_status"] == 0 and summary["saves_state"] is True
    assert summary["emitted"] == summary["new"] == len(written) > 0
    assert summary["updated"] == summary["unchanged"] == summary["held"] == 0
    assert summary["pages"] >= 1 and summary["requests"] >= summary["pages"]
    assert summary["retries"] == 0 and summary["seconds"] >= 0
    # the cursor before (none yet) and after (what the state file saved)
    assert summary["watermark_before"] is None
    assert summary["watermark_before_iso"] is None
    assert summary["watermark"] == cursor["watermark"]
    assert summary["watermark_iso"] == iso(cursor["watermark"])
    # the window queried, in UTC and in the store's zone (UTC here)
    assert summary["lo"] == cursor["start"] and summary["hi"] is None
    assert summary["lo_iso"] == iso(summary["lo"])
    assert summary["lo_local"] == summary["lo_iso"].replace("Z", "+00:00")
    assert summary["zone"] == "UTC"

    again = run(["pull", "-o", str(out), "--json"], env=env)
    second = valid("run-summary", one_object(again.stdout))
    assert second["watermark_before"] == summary["watermark"]
    assert second["watermark_before_iso"] == summary["watermark_iso"]
    assert second["emitted"] == 0 and second["unchanged"] >= 1


def test_pull_json_with_orders_on_stdout_is_the_last_stderr_line(
    run: Any, env: dict[str, str]
) -> None:
    result = run(["pull", "--since", "30d", "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    orders = [json.loads(line) for line in result.stdout.splitlines()]
    assert orders and all("id" in order for order in orders)  # orders only
    *before, last = stderr_lines(result)
    summary = valid("run-summary", json.loads(last))
    assert summary["emitted"] == len(orders) and summary["exit_status"] == 0
    assert before[-1].startswith("miva-sync: ")  # the closing line stays


def test_pull_json_under_quiet_and_json_logs_is_still_one_object(
    run: Any, env: dict[str, str], tmp_path: Path
) -> None:
    quiet = run(
        ["-q", "pull", "--since", "30d", "-o", str(tmp_path / "a.jsonl"), "--json"],
        env=env,
    )
    assert quiet.stderr == ""
    valid("run-summary", one_object(quiet.stdout))

    logged = run(
        [
            "--log-format",
            "json",
            "pull",
            "--since",
            "30d",
            "--json",
            "--emit-unchanged",
        ],
        env=env,
    )
    *lines, last = stderr_lines(logged)
    log_summary = json.loads(lines[-1])  # the --log-format json line stays
    assert log_summary["event"] == "summary" and log_summary["level"] == "info"
    summary = valid("run-summary", json.loads(last))
    assert {k: log_summary[k] for k in summary} == summary


def test_pull_json_in_number_mode_has_no_times_for_order_numbers(
    run: Any, env: dict[str, str], tmp_path: Path, sandbox: Sandbox
) -> None:
    first = min(o["id"] for o in sandbox.store.orders_snapshot())
    result = run(
        ["pull", "--from-order", str(first), "-o", str(tmp_path / "o.jsonl"), "--json"],
        env=env,
    )
    summary = valid("run-summary", one_object(result.stdout))
    assert summary["mode"] == "number" and summary["cursor_field"] == "id"
    assert (
        summary["lo"] == first
        and summary["watermark"] == saved(env)["cursors"]["number"]["watermark"]
    )
    assert summary["lo_iso"] is None and summary["watermark_local"] is None


def test_pull_json_shows_the_window_in_the_stores_zone(
    run: Any, env: dict[str, str], tmp_path: Path
) -> None:
    zone = "America/Los_Angeles"
    window = ["--since", "2026-01-15", "--until", "2026-07-15", "--timezone", zone]
    out = ["-o", str(tmp_path / "o.jsonl")]
    result = run(["pull", *window, *out, "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    summary = valid("run-summary", one_object(result.stdout))
    assert summary["zone"] == zone and summary["saves_state"] is False
    # midnight where the store is, 08:00 UTC in winter; the end in summer time
    assert summary["lo_local"] == "2026-01-15T00:00:00-08:00"
    assert summary["lo_iso"] == "2026-01-15T08:00:00Z"
    assert summary["hi_local"] == "2026-07-15T00:00:00-07:00"
    assert summary["hi_iso"] == "2026-07-15T07:00:00Z"
    for point in ("lo", "hi"):
        local = datetime.fromisoformat(summary[f"{point}_local"])
        assert local.timestamp() == summary[point]


def test_pull_json_in_queue_mode(run: Any, env: dict[str, str], tmp_path: Path) -> None:
    out = tmp_path / "q.jsonl"
    result = run(["pull", "--queue", DEFAULT_QUEUE, "-o", str(out), "--json"], env=env)
    assert result.exit_code == 0, result.stderr
    summary = valid("run-summary", one_object(result.stdout))
    assert summary["mode"] == "queue" and summary["queue_code"] == DEFAULT_QUEUE
    assert summary["ack"] is True and summary["drained"] is True
    assert summary["emitted"] == summary["acknowledged"] == len(read_jsonl(out)) > 0
    assert summary["cursor_field"] is None and summary["watermark"] is None


def test_pull_json_of_a_resend_with_unknown_ids_comes_before_the_error(
    run: Any, env: dict[str, str], tmp_path: Path, sandbox: Sandbox
) -> None:
    known = min(o["id"] for o in sandbox.store.orders_snapshot())
    result = run(["pull", "--ids", f"{known},99999", "--json"], env=env)
    assert result.exit_code == 2
    *_, summary_line, error = stderr_lines(result)
    summary = valid("run-summary", json.loads(summary_line))
    assert (summary["mode"], summary["requested"], summary["emitted"]) == ("ids", 2, 1)
    assert summary["exit_status"] == 2 and summary["saves_state"] is False
    assert error == "miva-sync: error: the store has no order 99999"


def test_pull_json_of_a_run_that_fails_part_way_reports_what_it_committed(
    run: Any, env: dict[str, str], tmp_path: Path, sandbox: Sandbox
) -> None:
    """A page commits, then the store answers 502 (exit 6): the summary says
    what the output holds and the cursor the state file kept."""
    sandbox.after_request(2, lambda store: sandbox.faults.inject("502", count=50))
    out = tmp_path / "orders.jsonl"
    args = ["pull", "--since", "30d", "--page-size", "10", "-o", str(out), "--json"]
    result = run(args, env=env)
    assert result.exit_code == ExitStatus.UNREACHABLE, result.stderr
    summary = valid("run-summary", one_object(result.stdout))
    assert summary["exit_status"] == 6
    assert summary["emitted"] == len(read_jsonl(out)) > 0
    assert summary["watermark"] == saved(env)["cursors"]["date"]["watermark"]
    assert summary["watermark"] is not None and summary["pages"] >= 1
    assert stderr_lines(result)[-1].startswith("miva-sync: error: ")


def test_pull_json_of_a_failed_run_into_stdout_comes_before_the_error_line(
    run: Any, env: dict[str, str], sandbox: Sandbox
) -> None:
    sandbox.after_request(2, lambda store: sandbox.faults.inject("502", count=50))
    result = run(["pull", "--since", "30d", "--page-size", "10", "--json"], env=env)
    assert result.exit_code == 6
    *_, summary_line, error = stderr_lines(result)
    summary = valid("run-summary", json.loads(summary_line))
    assert summary["exit_status"] == 6
    assert summary["emitted"] == len(result.stdout.splitlines()) > 0
    assert error.startswith("miva-sync: error: ")


def test_pull_json_of_a_run_that_never_reached_the_store_prints_nothing(
    run: Any, env: dict[str, str], tmp_path: Path
) -> None:
    result = run(["pull", "-o", str(tmp_path / "o.jsonl"), "--json"], env=env)
    assert result.exit_code == 2  # nothing saved to resume
    assert result.stdout == ""
    assert len(stderr_lines(result)) == 1


@pytest.mark.parametrize(
    ("extra", "says"),
    [
        (["--since", "2h", "--dry-run"], "a dry run runs nothing"),
        (["--all-profiles"], "with --all-profiles use --log-format json"),
    ],
)
def test_pull_json_refuses_what_has_no_one_summary(
    run: Any, env: dict[str, str], extra: list[str], says: str
) -> None:
    result = run(["pull", "--json", *extra], env=env)
    assert result.exit_code == 2
    assert result.stdout == ""
    (line,) = stderr_lines(result)
    assert line.startswith("miva-sync: error: --json ") and says in line


# -- verify, check, state show --json -----------------------------------------------------


def test_verify_json_validates_complete_and_incomplete(
    run: Any, env: dict[str, str], tmp_path: Path, sandbox: Sandbox
) -> None:
    out = tmp_path / "orders.jsonl"
    assert run(["pull", "--since", "30d", "-o", str(out)], env=env).exit_code == 0
    args = ["verify", "--since", "30d", "-o", str(out), "--json"]
    complete = valid("verify", json.loads(run(args, env=env).stdout))
    assert complete["complete"] is True and complete["exit_status"] == 0
    assert complete["days"] and complete["store_orders"] > 0

    # one order the target lacks
    lines = out.read_text().splitlines(keepends=True)
    gone = json.loads(lines[0])["id"]
    out.write_text("".join(lines[1:]))
    result = run(args, env=env)
    assert result.exit_code == 9
    incomplete = valid("verify", json.loads(result.stdout))
    assert incomplete["missing"] == [gone] and incomplete["exit_status"] == 9

    repaired = run([*args, "--repair"], env=env)
    assert repaired.exit_code == 0, repaired.stderr
    after = valid("verify", json.loads(repaired.stdout))
    assert after["repaired"] == [gone] and after["exit_status"] == 0


def test_check_json_validates(run: Any, env: dict[str, str]) -> None:
    result = run(["check", "--json", "--queue", DEFAULT_QUEUE], env=env)
    assert result.exit_code == 0, result.stderr
    report = valid("check", json.loads(result.stdout))
    assert report["ok"] is True and report["exit_code"] == 0
    assert report["queue"] == DEFAULT_QUEUE and set(report["probes"]) >= {"queue"}


def test_check_json_of_a_failing_check_validates(run: Any, env: dict[str, str]) -> None:
    result = run(["check", "--json"], env={**env, "MIVA_API_TOKEN": "wrong"})
    assert result.exit_code == 4
    report = valid("check", json.loads(result.stdout))
    assert report["ok"] is False and report["exit_code"] == 4


def test_state_show_json_validates_with_its_exit_status(
    run: Any, env: dict[str, str], tmp_path: Path
) -> None:
    out = f"sqlite:///{tmp_path / 'o.db'}"
    pulled = run(["pull", "--since", "30d", "-o", out, "--require-payment"], env=env)
    assert pulled.exit_code == 0, pulled.stderr
    run(["pull", "--queue", DEFAULT_QUEUE, "-o", str(tmp_path / "q.jsonl")], env=env)
    shown = run(["state", "show", "--json"], env=env)
    assert shown.exit_code == 0, shown.stderr
    data = valid("state-show", json.loads(shown.stdout))
    assert data["exit_status"] == 0 and set(data["cursors"]) == {"date", "queue"}
    from_db_out = run(["state", "show", "--json", "-o", out], env=env).stdout
    from_db = valid("state-show", json.loads(from_db_out))
    assert from_db["source"] == out and from_db["cursors"]["date"]["watermark"]

    fresh = run(["state", "show", "--json", "--max-age", "1h"], env=env)
    assert valid("state-show", json.loads(fresh.stdout))["exit_status"] == 0


def test_state_show_json_of_a_stale_store_says_9_before_exiting_9(
    run: Any, env: dict[str, str]
) -> None:
    # a cursor set by hand: no successful run recorded, so --max-age alarms
    assert run(["state", "set", "--since", "2h"], env=env).exit_code == 0
    result = run(["state", "show", "--json", "--max-age", "1h"], env=env)
    assert result.exit_code == 9
    data = valid("state-show", json.loads(result.stdout))
    assert data["exit_status"] == 9 and data["last_run"] is None
    assert stderr_lines(result)[-1].startswith("miva-sync: error: no successful run")

"""``miva-sync check``: the doctor's rows and exit codes, against real sandbox stores."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest

from miva_sync.app.check import run_checks
from miva_sync.config import load_settings
from miva_sync.sandbox import Sandbox
from miva_sync.sandbox.harness import new_signing_key
from tests.support.helpers import profile_toml


@pytest.fixture
def store() -> Iterator[Sandbox]:
    with Sandbox(orders=20, seed=3) as sb:
        yield sb


def rows(report: Any) -> dict[str, str]:
    return {row.name: row.status for row in report.rows}


def test_check_passes_against_a_good_store(run: Any, store: Sandbox) -> None:
    result = run(["check"], env=store.env())
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""  # the table is for people: stderr
    for name in ("reachable", "authentication", "clock", "dt_updated"):
        assert name in result.stderr
    assert "suggested mode: updated" in result.stderr
    assert store.api_token not in result.stderr


def test_check_json_is_one_object_on_stdout(run: Any, store: Sandbox) -> None:
    result = run(["check", "--json"], env=store.env())
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["ok"] is True and data["exit_code"] == 0
    assert data["total_count"] == 20
    assert data["dt_updated_searchable"] is True
    assert abs(data["clock_skew_seconds"]) <= 5
    assert {c["name"] for c in data["checks"]} >= {"settings", "reachable", "TLS"}
    assert data["suggested_mode"].startswith("updated")


def test_check_wrong_signing_key_is_exit_4_with_the_cause(
    run: Any, store: Sandbox
) -> None:
    env = {**store.env(), "MIVA_SIGNING_KEY": new_signing_key()}
    result = run(["check"], env=env)
    assert result.exit_code == 4
    last = result.stderr.splitlines()[-1]
    assert last.startswith("miva-sync: error: check failed: authentication")
    assert "signing key" in result.stderr
    assert env["MIVA_SIGNING_KEY"] not in result.stderr


def test_check_unreachable_store_is_exit_6(run: Any) -> None:
    env = {
        "MIVA_URL": "http://127.0.0.1:9/mm5/json.mvc",
        "MIVA_STORE_CODE": "PS",
        "MIVA_API_TOKEN": "t",
        "MIVA_SYNC_RETRY_BUDGET": "0",
    }
    result = run(["check", "--json"], env=env)
    assert result.exit_code == 6
    data = json.loads(result.stdout)
    assert data["checks"][-1]["name"] == "reachable"
    assert data["checks"][-1]["status"] == "fail"


def test_check_missing_settings_is_exit_3(run: Any) -> None:
    result = run(["check"])
    assert result.exit_code == 3
    assert "config init" in result.stderr


def test_check_old_store_without_dt_updated_is_informational(run: Any) -> None:
    with Sandbox(orders=5, supports_dt_updated=False) as old:
        relaxed = run(["check", "--json"], env=old.env())
        strict = run(["check", "--require", "updated"], env=old.env())
    assert relaxed.exit_code == 0, relaxed.stderr
    data = json.loads(relaxed.stdout)
    assert data["dt_updated_searchable"] is False
    assert data["updated_mode"] == "unsupported"
    assert "--from-order" in data["suggested_command"]
    assert strict.exit_code == 5
    assert "dt_updated" in strict.stderr.splitlines()[-1]


def test_check_unknown_queue_is_informational_unless_required(
    run: Any, store: Sandbox
) -> None:
    relaxed = run(["check", "--queue", "no_such_queue"], env=store.env())
    strict = run(
        ["check", "--queue", "no_such_queue", "--require", "queue"], env=store.env()
    )
    assert relaxed.exit_code == 0, relaxed.stderr
    # the store's own words, and no guess at which of the two causes it is
    assert "Invalid queue code 'no_such_queue'" in relaxed.stderr
    assert "case-sensitive" in relaxed.stderr
    assert strict.exit_code == 5


def test_check_require_queue_needs_a_queue(run: Any, store: Sandbox) -> None:
    result = run(["check", "--require", "queue"], env=store.env())
    assert result.exit_code == 2


def test_check_good_queue_suggests_queue_mode_and_takes_nothing(
    run: Any, store: Sandbox
) -> None:
    # a no-ack queue moves whatever a download returns: check must return nothing
    store.store.create_queue("fast", ack=False)
    before = set(store.store.queue_ids("fast"))
    result = run(["check", "--json", "--queue", "fast"], env=store.env())
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["queue_granted"] is True
    assert data["suggested_mode"] == "queue"
    assert data["suggested_command"] == "miva-sync pull --queue fast"
    assert set(store.store.queue_ids("fast")) == before and before


def test_check_uses_the_profiles_queue(
    run: Any, store: Sandbox, isolated_home: Any
) -> None:
    (isolated_home / "config.toml").write_text(
        profile_toml("s", store, queue="new_updated_orders")
    )
    result = run(["--profile", "s", "check", "--json"])
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["queue"] == "new_updated_orders"


@pytest.mark.parametrize(
    ("offset", "status", "code"),
    [(0, "ok", 0), (30, "warn", 0), (-30, "warn", 0), (90, "warn", 0)],
)
def test_check_clock_skew_against_the_stores_date_header(
    store: Sandbox, offset: float, status: str, code: int
) -> None:
    # This machine's clock is shifted; the sandbox answers with the real time
    # in its Date header (its 120 s timestamp window still accepts 90 s).
    # Miva's window is unknown: a skew the store accepted is a warning, never
    # a failure against an assumed limit.
    settings = load_settings({}, env=store.env())
    report = run_checks(settings, clock=lambda: time.time() + offset)
    assert rows(report)["clock"] == status
    assert report.exit_code == code
    if offset:
        assert report.skew_seconds is not None
        assert abs(report.skew_seconds + offset) <= 3
        detail = next(r.detail for r in report.rows if r.name == "clock")
        assert "window" in detail and "unknown" in detail


def test_check_never_sends_a_mis_timestamped_request(store: Sandbox) -> None:
    # every request carries this machine's (shifted) time, none another one
    settings = load_settings({}, env=store.env())
    shifted = time.time() + 30
    run_checks(settings, queue="new_updated_orders", clock=lambda: shifted)
    stamps = {e.body["Miva_Request_Timestamp"] for e in store.requests}
    assert stamps == {int(shifted)}


def test_check_skew_is_reported_when_authentication_fails(store: Sandbox) -> None:
    # beyond the store's window: the request is refused, and the clock row says why
    settings = load_settings({}, env=store.env())
    report = run_checks(settings, clock=lambda: time.time() - 600)
    assert rows(report)["authentication"] == "fail"
    assert rows(report)["clock"] == "fail"
    assert report.exit_code == 4
    assert (
        "timestamp" in report.rows[3].detail.lower() or "clock" in report.rows[3].detail
    )

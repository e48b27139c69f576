"""The store's time zone (issue 18, finding 7): a bare date is a day in the store's
zone, through the real CLI against the sandbox; the window is shown in both zones."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from miva_sync.base.timespec import WhenText, parse_when
from miva_sync.sandbox import Sandbox
from tests.support.helpers import read_orders

LA = "America/Los_Angeles"


def midnight(day: date, zone: str) -> int:
    """Unix seconds at the start of ``day`` in ``zone``."""
    return int(
        datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone)).timestamp()
    )


class Day:
    """A store-zone day a few days back, with one order on each side of each edge.

    ``before`` is 5 h before local midnight: the same UTC date as the day, but
    the previous day in Los Angeles; ``late`` is 20 h after local midnight: the
    next UTC date, still the day in Los Angeles.
    """

    def __init__(self, sandbox: Sandbox) -> None:
        store = sandbox.store
        self.day = datetime.fromtimestamp(store.now(), ZoneInfo(LA)).date() - timedelta(
            days=5
        )
        self.start = midnight(self.day, LA)
        self.end = midnight(self.day + timedelta(days=1), LA)
        times = {
            "before": self.start - 5 * 3600,
            "early": self.start + 3600,
            "late": self.start + 20 * 3600,
            "next": self.end + 3600,
        }
        assert datetime.fromtimestamp(times["before"], UTC).date() == self.day
        assert datetime.fromtimestamp(times["late"], UTC).date() > self.day
        self.ids = {
            name: store.add_order(orderdate=when, dt_updated=when)["id"]
            for name, when in times.items()
        }

    def named(self, orders: list[dict[str, Any]]) -> set[str]:
        by_id = {oid: name for name, oid in self.ids.items()}
        return {by_id[o["id"]] for o in orders if o["id"] in by_id}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=0, seed=7) as sb:
        yield sb


@pytest.fixture
def day(sandbox: Sandbox) -> Day:
    return Day(sandbox)


def pull(run: Any, env: dict[str, str], out: Path, *args: str) -> Any:
    result = run(["pull", *args, "-o", str(out), "--no-progress"], env=env)
    assert result.exit_code == 0, result.stderr
    return result


def test_timezone_since_bare_date_starts_at_the_store_zone_midnight(
    run: Any, sandbox: Sandbox, day: Day, tmp_path: Path
) -> None:
    out = tmp_path / "o.jsonl"
    result = pull(
        run, sandbox.env(), out, "--since", day.day.isoformat(), "--timezone", LA
    )
    # 5 h before midnight in Los Angeles is the day before there, though the
    # same date in UTC: not included; everything from local midnight on is
    assert day.named(read_orders(out)) == {"early", "late", "next"}
    # the run summary shows where it queried from in both zones
    local = f"{day.day.isoformat()}T00:00:00"
    assert f"queried from {iso_utc(day.start)} ({local}" in result.stderr
    assert LA in result.stderr


def test_timezone_from_the_environment_bounds_a_backfill_to_the_local_day(
    run: Any, sandbox: Sandbox, day: Day, tmp_path: Path
) -> None:
    out = tmp_path / "o.jsonl"
    env = {**sandbox.env(), "MIVA_SYNC_TIMEZONE": LA}
    args = ["--since", day.day.isoformat(), "--until", f"{day.day}T23:59:59"]
    pull(run, env, out, *args)
    assert day.named(read_orders(out)) == {"early", "late"}


def test_timezone_from_the_profile_reads_state_set_and_verify_dates(
    run: Any, sandbox: Sandbox, day: Day, tmp_path: Path
) -> None:
    init = run(
        ["config", "init", "--profile", "shop", "--url", sandbox.url,
         "--store-code", sandbox.store_code, "--api-token", sandbox.api_token,
         "--signing-key", sandbox.signing_key or "", "--timezone", LA],
    )  # fmt: skip
    assert init.exit_code == 0, init.stderr
    shown = run(["--profile", "shop", "config", "show", "--json"])
    assert json.loads(shown.stdout)["settings"]["timezone"] == {
        "value": LA, "source": "profile shop", "env": "MIVA_SYNC_TIMEZONE"
    }  # fmt: skip
    moved = run(["--profile", "shop", "state", "set", "--since", day.day.isoformat()])
    assert moved.exit_code == 0, moved.stderr
    assert f"({day.start})" in moved.stderr
    out = tmp_path / "o.jsonl"
    result = run(["--profile", "shop", "pull", "-o", str(out), "--no-progress"])
    assert result.exit_code == 0, result.stderr
    assert day.named(read_orders(out)) == {"early", "late", "next"}
    # verify's range is the same local day: the target holds all of it
    checked = run(
        ["--profile", "shop", "verify", "--since", day.day.isoformat(),
         "--until", f"{day.day}T23:59:59", "-o", str(out), "--json"]
    )  # fmt: skip
    assert checked.exit_code == 0, checked.stderr
    report = json.loads(checked.stdout)
    assert (report["from"], report["store_orders"]) == (day.start, 2)


def test_timezone_dry_run_shows_the_window_in_both_zones(
    run: Any, sandbox: Sandbox, day: Day
) -> None:
    since = ["pull", "--since", day.day.isoformat(), "--dry-run"]
    result = run([*since, "--timezone", LA], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    offset = datetime.fromtimestamp(day.start, ZoneInfo(LA)).strftime("%z")
    local = f"{day.day.isoformat()}T00:00:00{offset[:3]}:{offset[3:]} {LA}"
    assert f"{iso_utc(day.start)} ({local})" in result.stderr
    # in UTC there is one zone to show
    plain = run(since, env=sandbox.env())
    assert plain.exit_code == 0, plain.stderr
    assert f"from  {day.day.isoformat()}T00:00:00Z\n" in plain.stderr


@pytest.mark.parametrize(
    ("args", "env", "code"),
    [
        (["--timezone", "Mars/Olympus"], {}, 2),
        (["--timezone", "America"], {}, 2),
        ([], {"MIVA_SYNC_TIMEZONE": "Nowhere/City"}, 3),
    ],
)
def test_timezone_unknown_zone_is_one_line(
    run: Any, sandbox: Sandbox, args: list[str], env: dict[str, str], code: int
) -> None:
    result = run(["pull", "--since", "2026-11-01", *args], env={**sandbox.env(), **env})
    assert result.exit_code == code
    assert result.stderr.count("\n") == 1 and "not a time zone" in result.stderr
    assert result.stdout == ""


def test_timezone_unknown_zone_in_a_profile_is_exit_3(
    run: Any, isolated_home: Path
) -> None:
    (isolated_home / "config.toml").write_text(
        '[profiles.shop]\nurl = "http://127.0.0.1:9/mm5/json.mvc"\n'
        'store_code = "S"\napi_token = "t"\ntimezone = "Atlantis/Capital"\n'
    )
    (isolated_home / "config.toml").chmod(0o600)  # no "readable by others" note
    result = run(["--profile", "shop", "pull", "--since", "2026-11-01"])
    assert result.exit_code == 3
    assert result.stderr.count("\n") == 1 and "Atlantis/Capital" in result.stderr


def iso_utc(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the parser itself ------------------------------------------------------------

NOW = midnight(date(2026, 12, 1), "UTC") + 3 * 3600  # 03:00Z: Nov 30 in Los Angeles


@pytest.mark.parametrize(
    ("text", "zone", "expected"),
    [
        ("2026-12-01", "UTC", midnight(date(2026, 12, 1), "UTC")),
        ("2026-12-01", LA, midnight(date(2026, 12, 1), LA)),
        ("2026-12-01T08:00", "Europe/Berlin", midnight(date(2026, 12, 1), "UTC") + 7 * 3600),
        # an offset or Z always wins over the zone, and digits are unix seconds
        ("2026-12-01T00:00:00Z", LA, midnight(date(2026, 12, 1), "UTC")),
        ("2026-12-01T00:00:00+01:00", LA, midnight(date(2026, 12, 1), "UTC") - 3600),
        ("1700000000", LA, 1_700_000_000),
        ("2h", LA, NOW - 7200),
        ("today", "UTC", midnight(date(2026, 12, 1), "UTC")),
        ("today", LA, midnight(date(2026, 11, 30), LA)),
        ("yesterday", LA, midnight(date(2026, 11, 29), LA)),
    ],
)  # fmt: skip
def test_timezone_parse_when_reads_bare_dates_in_the_zone(
    text: str, zone: str, expected: int
) -> None:
    assert parse_when(text, NOW, ZoneInfo(zone)) == expected
    assert WhenText(text).resolve(ZoneInfo(zone), now=NOW) == expected


def test_timezone_when_text_refuses_a_non_time_at_once() -> None:
    with pytest.raises(ValueError, match="not a time"):
        WhenText("next tuesday")

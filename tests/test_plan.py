"""WHEN parsing and mode/cursor resolution."""

from __future__ import annotations

import pytest

from miva_sync.errors import UsageError
from miva_sync.sync.plan import PullOptions, make_plan, validate_overlap
from miva_sync.timespec import iso, parse_span, parse_when

NOW = 1_764_547_200  # 2025-12-01T00:00:00Z


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1700000000", 1700000000),
        ("2h", NOW - 7200),
        ("90m", NOW - 5400),
        ("7d", NOW - 7 * 86400),
        ("2025-11-01", 1761955200),
        ("2025-11-01T08:00:00", 1761984000),
        ("2025-11-01T08:00:00Z", 1761984000),
        ("2025-11-01T10:00:00+02:00", 1761984000),
    ],
)
def test_when_forms(text: str, expected: int) -> None:
    assert parse_when(text, NOW) == expected


@pytest.mark.parametrize("text", ["yesterday", "2h30", "-5", "2025-13-01", ""])
def test_when_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_when(text, NOW)


def test_span_and_iso() -> None:
    assert parse_span("45m") == 2700
    assert iso(1761984000) == "2025-11-01T08:00:00Z"
    with pytest.raises(ValueError):
        parse_span("45")


def test_overlap_accepts_counts_and_spans() -> None:
    assert validate_overlap("030") == "30"
    assert validate_overlap("45M") == "45m"
    with pytest.raises(ValueError):
        validate_overlap("lots")


def test_plan_bare_pull_without_state_is_usage_error() -> None:
    with pytest.raises(UsageError, match="--since") as info:
        make_plan(None, PullOptions())
    assert info.value.exit_code == 2


def test_plan_since_starts_date_mode_and_resume_keeps_it() -> None:
    plan = make_plan(None, PullOptions(since=100, lookback=60))
    assert (plan.mode, plan.field, plan.start, plan.watermark) == (
        "date",
        "orderdate",
        100,
        None,
    )
    plan.record["cursors"]["date"]["watermark"] = 500
    resumed = make_plan(plan.record, PullOptions())
    assert (resumed.mode, resumed.watermark, resumed.lookback) == ("date", 500, 60)


def test_plan_new_start_restarts_cursor_but_keeps_dedupe() -> None:
    record = {
        "mode": "date",
        "cursors": {"date": {"start": 1, "watermark": 50, "lookback": 900}},
        "dedupe": {"5": [1, 2, 3]},
        "held": {},
    }
    plan = make_plan(record, PullOptions(since=10, updated=True))
    assert plan.mode == "updated"
    assert plan.record["dedupe"] == {"5": [1, 2, 3]}
    again = make_plan(plan.record, PullOptions(since=20, updated=True))
    assert again.notices and "restarting" in again.notices[0]
    assert record["cursors"]["date"]["watermark"] == 50  # input untouched


def test_plan_bounded_pull_leaves_record_alone() -> None:
    record = {
        "mode": "number",
        "cursors": {"number": {"start": 1, "watermark": 50, "overlap": "30"}},
        "dedupe": {},
        "held": {},
    }
    plan = make_plan(record, PullOptions(from_order=10, to_order=20))
    assert plan.bounded and plan.hi == 20
    assert plan.record["cursors"]["number"]["watermark"] == 50


@pytest.mark.parametrize(
    "options",
    [
        PullOptions(until=5),
        PullOptions(since=1, from_order=2),
        PullOptions(since=1, to_order=3),
        PullOptions(from_order=1, until=3),
    ],
)
def test_plan_rejects_contradictions(options: PullOptions) -> None:
    with pytest.raises(UsageError):
        make_plan(None, options)

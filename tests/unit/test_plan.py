"""WHEN parsing and mode/cursor resolution."""

from __future__ import annotations

from typing import Any

import pytest

from miva_sync.base.timespec import iso, parse_span, parse_when
from miva_sync.errors import UsageError
from miva_sync.state.file import validate_record
from miva_sync.sync.plan import (
    PullOptions,
    make_plan,
    refuse_future_order,
    refuse_future_since,
    validate_overlap,
)

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


@pytest.mark.parametrize("text", ["last week", "2h30", "-5", "2025-13-01", ""])
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


def date_record(watermark: int | None = 50) -> dict[str, Any]:
    return {
        "mode": "date",
        "cursors": {"date": {"start": 1, "watermark": watermark, "lookback": 900}},
        "dedupe": {"5": [1, 2, 3]},
        "held": {},
    }


def test_plan_start_of_a_mode_without_a_cursor_begins_there_keeping_dedupe() -> None:
    record = date_record()
    plan = make_plan(record, PullOptions(since=10, updated=True))
    assert (plan.mode, plan.start, plan.watermark) == ("updated", 10, None)
    assert plan.record["dedupe"] == {"5": [1, 2, 3]}
    assert not plan.notices
    # date mode stays active until the updated run's first durable commit
    assert plan.record["mode"] == "date"
    plan.activate()
    assert plan.record["mode"] == "updated"
    assert record["cursors"]["date"]["watermark"] == 50  # input untouched


def test_plan_saved_cursor_wins_over_a_repeated_start() -> None:
    """The ELT convention (issue 19): a crontab repeating --since resumes."""
    plan = make_plan(date_record(), PullOptions(since=10))
    assert (plan.start, plan.watermark) == (1, 50)
    (notice,) = plan.notices
    assert "resumes from its saved cursor" in notice and "--full-refresh" in notice
    number = {"mode": "number", "cursors": {"number": {"start": 1, "watermark": 80}}}
    plan = make_plan(number, PullOptions(from_order=1))
    assert (plan.start, plan.watermark) == (1, 80)
    assert "--to-order" in plan.notices[0]


def test_plan_cursor_without_watermark_widens_but_never_narrows() -> None:
    earlier = make_plan(date_record(watermark=None), PullOptions(since=0))
    assert (earlier.start, earlier.notices) == (0, [])
    later = make_plan(date_record(watermark=None), PullOptions(since=10))
    assert later.start == 1  # a later start would leave a gap behind the first run
    assert later.notices


def test_plan_full_refresh_restarts_but_keeps_the_cursor_until_activated() -> None:
    plan = make_plan(date_record(), PullOptions(since=10, full_refresh=True))
    assert (plan.start, plan.watermark, plan.lookback) == (10, None, 900)
    assert plan.full_refresh and "full refresh" in plan.notices[0]
    cursor = plan.record["cursors"]["date"]
    assert cursor["previous"]["watermark"] == 50
    validate_record(plan.record, where="test")
    # a run that failed before its first commit: a bare pull resumes the old cursor
    resumed = make_plan(plan.record, PullOptions())
    assert (resumed.start, resumed.watermark) == (1, 50)
    assert "stopped before its first commit" in resumed.notices[0]
    # and a start without --full-refresh resumes it too
    assert make_plan(plan.record, PullOptions(since=10)).watermark == 50
    plan.activate()
    assert "previous" not in plan.record["cursors"]["date"]


def test_plan_bare_updated_uses_its_own_cursor() -> None:
    record = date_record()
    switched = make_plan(record, PullOptions(updated=True))
    assert (switched.mode, switched.start, switched.watermark) == ("updated", 50, None)
    record["cursors"]["updated"] = {"start": 20, "watermark": 70}
    own = make_plan(record, PullOptions(updated=True))
    assert (own.start, own.watermark) == (20, 70)


def test_plan_first_record_makes_its_mode_active_at_once() -> None:
    """Nothing to keep: a run killed before its first commit is resumed bare."""
    plan = make_plan(None, PullOptions(from_order=7))
    assert plan.record["mode"] == "number"


def test_future_starts_are_refused() -> None:
    refuse_future_since(NOW + 120, NOW, 120)
    with pytest.raises(UsageError, match="in the future") as info:
        refuse_future_since(NOW + 121, NOW, 120)
    assert info.value.exit_code == 2
    with pytest.raises(UsageError, match="in the future"):
        refuse_future_since(NOW * 1000, NOW, 120)  # milliseconds as seconds
    refuse_future_order(130, 100, "30")
    refuse_future_order(10**9, None, "30")  # an empty store: nothing to compare
    with pytest.raises(UsageError, match="highest order number #100"):
        refuse_future_order(131, 100, "30")
    with pytest.raises(UsageError):
        refuse_future_order(131, 100, "45m")  # a span overlap: the default count


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


def test_a_plan_never_changes_the_saved_record() -> None:
    """make_plan copies the record with copy_record (not copy.deepcopy: issue
    23, a full dedupe window): everything a run changes is its own."""
    import copy

    saved: Any = {
        "mode": "date",
        "cursors": {"date": {"start": 100, "watermark": 200, "lookback": 900}},
        "dedupe": {"7": [200, 150, 200]},
        "held": {"8": {"since": 150, "orderdate": 140}},
    }
    before = copy.deepcopy(saved)
    plan = make_plan(saved, PullOptions(lookback=60, updated=True))
    assert plan.mode == "updated" and plan.lookback == 60
    plan.activate()
    record = plan.record
    record["cursors"]["updated"]["watermark"] = 300
    record["dedupe"]["9"] = [1, 2, 3]
    record["held"]["8"]["since"] = 1
    record["held"].clear()
    assert saved == before

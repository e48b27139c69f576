"""The queue cursor, the ack journal across mode switches, and dedupe bounding."""

from __future__ import annotations

from typing import Any

import pytest

from miva_sync.errors import ConfigError, UsageError
from miva_sync.state.file import validate_record
from miva_sync.sync.queue_state import (
    DEDUPE_HORIZON,
    RECOVERY_MARGIN,
    QueueOptions,
    make_queue_plan,
    queue_keep,
)

NOW = 1_700_000_000


def saved(**cursor: Any) -> dict[str, Any]:
    base = {"queue_code": "q1", "ack": True, "pending_ack": [5, 6], "in_flight": False}
    return {
        "mode": "queue",
        "cursors": {"queue": {**base, **cursor}},
        "dedupe": {"5": [NOW, NOW, NOW]},
        "held": {},
    }


def test_queue_plan_new_record_is_a_valid_state_record() -> None:
    plan = make_queue_plan(None, QueueOptions(queue_code="q1"))
    validate_record(plan.record, where="test")
    assert plan.cursor == {
        "queue_code": "q1",
        "ack": True,
        "received_queue": None,
        "pending_ack": [],
        "in_flight": False,
    }


def test_queue_plan_switching_queue_keeps_the_journal_and_says_so() -> None:
    record = saved(drained_at=NOW)
    plan = make_queue_plan(record, QueueOptions(queue_code="q2"))
    assert plan.pending == [5, 6]
    assert "drained_at" not in plan.cursor  # a fact about the other queue
    assert plan.record["dedupe"] == record["dedupe"]
    assert "switching from queue 'q1' to 'q2'" in plan.notices[0]
    assert record["cursors"]["queue"]["queue_code"] == "q1"  # not mutated


def test_queue_plan_from_another_mode_keeps_its_cursor() -> None:
    record = {"mode": "date", "cursors": {"date": {"start": 1}}, "dedupe": {}}
    plan = make_queue_plan(record, QueueOptions(queue_code="q1"))
    # issue 19: queue mode becomes active with the queue's first answer
    assert plan.record["mode"] == "date"
    plan.activate()
    assert plan.record["mode"] == "queue"
    assert plan.record["cursors"]["date"] == {"start": 1}
    assert "from date mode" in plan.notices[0]


def test_queue_plan_switch_keeps_the_working_queue_until_the_new_one_answers() -> None:
    """Issue 19: a mistyped code that fails is not a switch."""
    plan = make_queue_plan(saved(drained_at=NOW), QueueOptions(queue_code="typo"))
    validate_record(plan.record, where="test")
    plan.cursor["pending_ack"] = [7]  # the journal moved on in the failed run
    resumed = make_queue_plan(plan.record, QueueOptions())
    assert (resumed.queue_code, resumed.pending) == ("q1", [7])
    assert resumed.cursor["drained_at"] == NOW
    assert "never answered" in resumed.notices[0]
    # a download of the new queue that may be lost is recovered first
    plan.cursor["in_flight"] = True
    assert make_queue_plan(plan.record, QueueOptions()).queue_code == "typo"
    again = make_queue_plan(plan.record, QueueOptions(queue_code="q1"))
    assert "previous" not in again.cursor and again.queue_code == "q1"
    plan.activate()
    assert "previous" not in plan.cursor and plan.record["mode"] == "queue"


def test_queue_plan_resume_takes_the_saved_settings() -> None:
    record = saved(ack=False, received_queue=None)
    plan = make_queue_plan(record, QueueOptions(received_queue="got"))
    assert (plan.queue_code, plan.ack, plan.received_queue) == ("q1", False, "got")


@pytest.mark.parametrize(
    "record", [None, {"mode": "date", "cursors": {"date": {"start": 1}}}]
)
def test_queue_plan_resume_without_queue_state_is_a_usage_error(
    record: dict[str, Any] | None,
) -> None:
    with pytest.raises(UsageError, match="--queue CODE"):
        make_queue_plan(record, QueueOptions())


@pytest.mark.parametrize(
    "cursor",
    [
        {"pending_ack": ["1"]},
        {"pending_ack": [True]},
        {"queue_code": ""},
        {"ack": "yes"},
        {"drained_at": "soon"},
        {"received_queue": 3},
    ],
)
def test_queue_plan_refuses_a_malformed_saved_cursor(cursor: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="malformed"):
        make_queue_plan(saved(**cursor), QueueOptions(queue_code="q1"))


def test_queue_keep_bounds_the_window_but_never_drops_the_journal() -> None:
    old = NOW - DEDUPE_HORIZON - 1
    keep = queue_keep(NOW, None, protected=[1])
    assert keep(1, ["v", old, old])  # journaled: a re-delivery must be recognised
    assert not keep(2, ["v", old, old])
    assert keep(3, ["v", old, NOW - 60])  # updated recently
    assert keep(4, ["h123", NOW - 60, None])  # no dt_updated: orderdate counts
    assert keep(5, ["h123", None, None])  # nothing to judge by


def test_queue_keep_holds_everything_a_recovery_may_compare() -> None:
    floor = NOW - 30 * 86400 - RECOVERY_MARGIN  # last drain a month ago
    keep = queue_keep(NOW, floor, protected=[])
    assert keep(1, ["v", floor, floor])
    assert not keep(2, ["v", floor - 1, floor - 1])

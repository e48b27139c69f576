"""What the typed state record changed at its edges: validation hands back the
record it checked, and a pull refuses the one record that has no pull cursor."""

from __future__ import annotations

import pytest

from miva_sync.errors import ConfigError, UsageError
from miva_sync.state.file import validate_record
from miva_sync.sync.plan import PullOptions, make_plan
from miva_sync.sync.queue_state import MAX_PENDING, check_cursor

LISTEN_RECORD = {
    "mode": "webhook",
    "cursors": {"webhook": {}},
    "dedupe": {},
    "held": {},
}


def test_validation_returns_the_record_it_checked() -> None:
    record = {"mode": "date", "cursors": {"date": {"start": 1, "watermark": None}}}
    assert validate_record(record, where="test") is record


def test_a_bare_pull_of_listens_record_is_refused_not_a_crash() -> None:
    """listen's record (``listen:<store>``) holds held orders only: no cursor a
    pull could resume (it used to fail with a KeyError on ``start``)."""
    record = validate_record(LISTEN_RECORD, where="test")
    with pytest.raises(UsageError, match="listen's"):
        make_plan(record, PullOptions())


def test_a_queue_journal_longer_than_ours_is_refused_only_by_the_queue_plan() -> None:
    """One shape check for queue cursors (state/file.py), and the plan's own
    bound on the journal on top of it."""
    cursor = {"queue_code": "q", "pending_ack": list(range(MAX_PENDING + 1))}
    validate_record({"mode": "queue", "cursors": {"queue": cursor}}, where="test")
    with pytest.raises(ConfigError, match="malformed"):
        check_cursor(cursor)
    assert check_cursor({**cursor, "pending_ack": [1, 2]})["pending_ack"] == [1, 2]

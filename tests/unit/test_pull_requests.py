"""A pull is one typed request, sent to exactly one mode (app/pull.py).

The command line builds a :class:`PullRequest` once; a library caller builds
one too. Either way the flag table (app/flag_rules.py) is the one place that
refuses flags that do not go together, before anything connects, and a bare
pull goes to the mode the state file saved.
"""

from __future__ import annotations

from typing import Any

import pytest

from miva_sync.app import flag_rules
from miva_sync.app.pull import Queue, Window, mode_of, run_pull
from miva_sync.app.requests import GlobalOptions, PullRequest, parse_ids
from miva_sync.config import load_settings
from miva_sync.errors import UsageError
from miva_sync.state.file import StateStore

STORE = GlobalOptions(url="https://store.example/mm5/json.mvc", store_code="S1")


@pytest.mark.parametrize(
    "fields",
    [
        {"until": 5},
        {"since": 1, "from_order": 2},
        {"since": 1, "to_order": 3},
        {"from_order": 1, "until": 3},
        {"full_refresh": True},
        {"since": 1, "until": 3, "full_refresh": True},
        {"ids": (1020,), "since": 1},
        {"queue_code": "new", "since": 1},
        {"queue_code": " "},
        {"queue_code": "new", "ack": False, "dry_run": True},
    ],
)
def test_a_library_request_meets_the_same_flag_table(fields: dict[str, Any]) -> None:
    """No settings at all: a request that got past the table would fail on
    the missing connection (exit 3) instead of exit 2 with the table's line."""
    request = PullRequest(**fields)
    with pytest.raises(UsageError) as info:
        run_pull(GlobalOptions(), request)
    assert info.value.exit_code == 2
    assert str(info.value) == flag_rules.refusal(fields)


def test_the_table_reads_typed_flags_or_a_library_callers_fields() -> None:
    # a profile's overlap is no flag the user typed: never refused
    assert PullRequest(overlap="5", given={}).flags() == {}
    assert PullRequest(overlap="5", ack=False).flags() == {"overlap": "5", "ack": False}


def test_global_options_give_load_settings_only_the_settings_flags() -> None:
    options = GlobalOptions.of(
        {"url": "https://x.example", "verbose": 2, "quiet": None, "insecure": None}
    )
    assert (options.verbose, options.quiet) == (2, False)
    assert options.settings_flags() == {"url": "https://x.example"}
    assert options.settings_flags(webhook_secret=None) == {"url": "https://x.example"}


def test_ids_are_parsed_once_in_order_without_repeats() -> None:
    assert parse_ids("1021, 1020\n1021 7") == (1021, 1020, 7)
    with pytest.raises(UsageError, match="'x1' is not an order number"):
        parse_ids("1020,x1")
    with pytest.raises(UsageError, match="no order numbers"):
        parse_ids(" , ")


def _save(mode: str) -> None:
    settings = load_settings(STORE.settings_flags())
    cursors: dict[str, Any] = {
        "date": {"start": 100, "watermark": 200, "lookback": 900},
        "queue": {"queue_code": "new", "ack": True, "pending_ack": []},
    }
    StateStore(settings.state_path()).put(
        settings.store_key,
        {"mode": mode, "cursors": cursors, "dedupe": {}, "held": {}},
    )


def test_a_bare_pull_goes_to_the_saved_mode_and_meets_its_rows() -> None:
    _save("queue")
    assert isinstance(mode_of(STORE, PullRequest(given={}), {}), Queue)
    # a flag that means nothing in the saved mode is refused in it
    given = {"overlap": "5"}
    with pytest.raises(UsageError, match="nothing in queue mode"):
        mode_of(STORE, PullRequest(overlap="5", given=given), given)
    # a mode named on the command line wins over the saved one
    named = PullRequest(since=150, given={"since": 150})
    assert isinstance(mode_of(STORE, named, named.flags()), Window)


def test_a_bare_pull_in_a_window_mode_is_a_window() -> None:
    _save("date")
    assert isinstance(mode_of(STORE, PullRequest(given={}), {}), Window)
    assert isinstance(mode_of(STORE, PullRequest(queue_code="new"), {}), Queue)

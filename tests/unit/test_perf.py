"""Performance features that must not loosen the contract: grouped commits, start-up."""

from __future__ import annotations

from typing import Any

import pytest

from miva_sync.errors import TransientError
from miva_sync.store.query import ListQuery
from tests.support.pull_fixtures import ORDERS, FakeClient, FakeStore, make_run


def test_pull_commits_every_page_on_a_fast_disk() -> None:
    run, _sink, _state, log = make_run(0.001)
    result = run.run()
    assert result.emitted == len(ORDERS)
    assert log.count("commit") == log.count("write")  # one per page


def test_pull_groups_commits_on_a_slow_disk_without_running_ahead() -> None:
    run, sink, state, log = make_run(0.05)
    result = run.run()
    assert result.emitted == len(ORDERS)
    assert 1 < log.count("commit") < log.count("write")
    # every state write comes right after the commit that covers it
    for n, entry in enumerate(log):
        if entry == "put" and n > 0:  # (the first put, the mode, claims no data)
            assert log[n - 1] in ("commit", "put")
    assert sink.durable == sink.written
    assert state.puts[-1] == ORDERS[-1]["orderdate"]


def test_pull_commits_grouped_pages_before_a_fetch_error_surfaces() -> None:
    class FailsLater(FakeClient):
        def list_orders(self, query: ListQuery) -> Any:
            if self.requests_sent >= 12:
                raise TransientError("store gone")
            return super().list_orders(query)

    run, sink, _state, log = make_run(0.05, FailsLater(FakeStore(ORDERS, 2)))
    with pytest.raises(TransientError):
        run.run()
    assert sink.durable == sink.written  # nothing written is left uncommitted
    assert log[-1] == "put"


def test_cli_pull_help_shows_workers(run: Any) -> None:
    # start-up imports are checked for every command in tests/e2e/test_cli_basics.py
    result = run(["pull", "--help"])
    assert result.exit_code == 0
    assert "--workers" in result.stdout


def test_pull_collects_garbage_less_often_and_restores_the_setting() -> None:
    import gc

    from miva_sync.app.session import GC_YOUNG_THRESHOLD, fewer_collections

    before = gc.get_threshold()
    with pytest.raises(RuntimeError), fewer_collections():
        assert gc.get_threshold()[0] >= GC_YOUNG_THRESHOLD
        assert gc.get_threshold()[1:] == before[1:]
        raise RuntimeError("a failed pull")
    assert gc.get_threshold() == before

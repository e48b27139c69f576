"""Issue 19, findings 2-4 through the real CLI against the sandbox: the start
rule (an explicit start begins a mode with no saved cursor; a saved cursor
wins), --full-refresh, starts in the future, and a mode becoming active only
with its first durable commit."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import DEFAULT_QUEUE, Sandbox
from tests.support.helpers import read_jsonl, saved_record


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(orders=120, seed=19, tie_order="random") as sandbox:
        yield sandbox


@pytest.fixture
def pull(run: Any, sb: Sandbox) -> Any:
    """``miva-sync pull ARGS`` in-process; checks the exit code, returns the result."""

    def invoke(*args: str, expect: int = 0, **env: str) -> Any:
        result = run(["pull", "--no-progress", *args], env={**sb.env(), **env})
        assert result.exit_code == expect, result.stderr
        return result

    return invoke


def ids(text: str) -> list[int]:
    return [json.loads(line)["id"] for line in text.splitlines()]


def state_bytes(home: Path) -> bytes | None:
    path = home / "state.json"
    return path.read_bytes() if path.exists() else None


# -- the start rule -------------------------------------------------------------


def test_crontab_repeating_from_order_into_one_file_re_emits_nothing(
    pull: Any, sb: Sandbox, tmp_path: Path
) -> None:
    """Finding 3: each run restarted the cursor and re-emitted all but the
    overlap. Now the saved cursor wins: the repeats add only new orders."""
    out = tmp_path / "orders.jsonl"
    line = ("--from-order", "1", "-o", str(out))
    pull(*line)
    first = [o["id"] for o in read_jsonl(out)]
    assert sorted(first) == sorted(sb.store.ids())
    again = pull(*line)
    assert [o["id"] for o in read_jsonl(out)] == first  # nothing re-emitted
    assert "resumes from its saved cursor" in again.stderr
    assert "--full-refresh" in again.stderr and "--to-order" in again.stderr
    assert again.stderr.count("resumes from its saved cursor") == 1  # said once
    new = sb.store.add_order()["id"]
    pull(*line)
    assert [o["id"] for o in read_jsonl(out)] == [*first, new]


def test_repeating_since_to_stdout_re_emits_nothing(pull: Any, sb: Sandbox) -> None:
    """Finding 3: `pull --since 30d` to stdout re-emitted all but the newest order."""
    first = ids(pull("--since", "30d").stdout)
    assert first
    again = pull("--since", "30d")
    assert again.stdout == ""
    assert "date mode resumes from its saved cursor" in again.stderr
    new = sb.store.add_order()["id"]
    assert ids(pull("--since", "30d").stdout) == [new]


def test_full_refresh_re_delivers_the_window_and_keeps_the_journal(
    pull: Any, sb: Sandbox, isolated_home: Path
) -> None:
    first = ids(pull("--since", "30d").stdout)
    # an ack journal left by a queue run: a full refresh of date mode keeps it
    path = isolated_home / "state.json"
    document = json.loads(path.read_text())
    (record,) = document["stores"].values()
    record["cursors"]["queue"] = {"queue_code": "q", "pending_ack": [first[0]]}
    path.write_text(json.dumps(document))
    refreshed = pull("--since", "30d", "--full-refresh")
    assert sorted(ids(refreshed.stdout)) == sorted(first)  # every order again
    assert "full refresh" in refreshed.stderr
    after = saved_record(isolated_home)
    assert after["mode"] == "date"
    assert "previous" not in after["cursors"]["date"]
    assert after["cursors"]["queue"]["pending_ack"] == [first[0]]
    assert pull("--since", "30d").stdout == ""  # and then resumes as before


def test_a_saved_cursor_without_a_watermark_widens_to_an_earlier_start(
    pull: Any, sb: Sandbox
) -> None:
    """Nothing has moved the cursor yet (an empty window): a later start would
    leave a gap, an earlier one costs nothing."""
    now = sb.store.now()
    assert pull("--since", str(now - 60)).stdout == ""
    assert ids(pull("--since", "30d").stdout)  # widened, not held at the old start


def test_another_mode_begins_at_its_start_and_keeps_its_own_cursor(
    pull: Any, sb: Sandbox, isolated_home: Path
) -> None:
    pull("--since", "30d")
    low = min(sb.store.ids())
    numbered = pull("--from-order", str(low))
    # number mode had no cursor: it began at its start
    assert f"queried from #{low}" in numbered.stderr
    assert "resumes" not in numbered.stderr
    assert saved_record(isolated_home)["mode"] == "number"
    # date mode kept its own cursor: resuming it re-emits nothing
    assert pull("--since", "30d").stdout == ""
    assert saved_record(isolated_home)["mode"] == "date"


def test_a_mode_beginning_into_another_target_gets_its_whole_window(
    pull: Any, sb: Sandbox, tmp_path: Path
) -> None:
    """The dedupe window remembers what went to the last target: a mode that
    begins into a new one (a new consumer) must not skip those orders."""
    pull("--since", "30d", "-o", str(tmp_path / "a.jsonl"))
    low = min(sb.store.ids())
    pull("--from-order", str(low), "-o", str(tmp_path / "b.jsonl"))
    got = [o["id"] for o in read_jsonl(tmp_path / "b.jsonl")]
    assert sorted(got) == sorted(sb.store.ids())


def test_bounded_window_re_delivers_and_touches_no_state(
    pull: Any, sb: Sandbox, isolated_home: Path
) -> None:
    first = ids(pull("--since", "30d").stdout)
    before = state_bytes(isolated_home)
    window = ids(pull("--since", "30d", "--until", str(sb.store.now())).stdout)
    assert sorted(window) == sorted(first)
    assert state_bytes(isolated_home) == before


# -- a start in the future ---------------------------------------------------------


@pytest.mark.parametrize("when", ["2999-01-01", "1700000000000"])
def test_future_since_is_refused_and_saves_nothing(
    pull: Any, isolated_home: Path, when: str
) -> None:
    """Finding 2: a typo'd year, or milliseconds given as seconds."""
    result = pull("--since", when, expect=2)
    assert "in the future" in result.stderr
    assert state_bytes(isolated_home) is None
    pull("--since", "30d")  # a saved cursor is not moved by a refused start either
    before = state_bytes(isolated_home)
    pull("--since", when, expect=2)
    assert state_bytes(isolated_home) == before


def test_future_from_order_is_refused_and_saves_nothing(
    pull: Any, sb: Sandbox, isolated_home: Path
) -> None:
    top = max(sb.store.ids())
    result = pull("--from-order", str(top + 31), expect=2)
    assert f"#{top}" in result.stderr and "overlap" in result.stderr
    assert state_bytes(isolated_home) is None
    pull("--from-order", str(top + 30))  # within the overlap: a late order may come


def test_state_set_refuses_a_future_since(run: Any, sb: Sandbox) -> None:
    result = run(["state", "set", "--since", "2999-01-01"], env=sb.env())
    assert result.exit_code == 2, result.stderr
    assert "in the future" in result.stderr


# -- a mode becomes active with its first durable commit ----------------------------


def test_mistyped_queue_leaves_the_bare_pull_working(
    pull: Any, sb: Sandbox, isolated_home: Path, tmp_path: Path
) -> None:
    """Finding 4: a mistyped --queue exiting 5 was saved as the active mode."""
    out = tmp_path / "orders.jsonl"
    pull("--since", "30d", "-o", str(out))
    failed = pull("--queue", "new_ordres", "-o", str(out), expect=5)
    assert "new_ordres" in failed.stderr
    record = saved_record(isolated_home)
    assert record["mode"] == "date"
    new = sb.store.add_order()["id"]
    bare = pull("-o", str(out))
    assert "date watermark" in bare.stderr
    assert read_jsonl(out)[-1]["id"] == new


def test_mistyped_queue_after_a_queue_keeps_the_working_queue(
    pull: Any, sb: Sandbox, isolated_home: Path, tmp_path: Path
) -> None:
    out = tmp_path / "orders.jsonl"
    pull("--queue", DEFAULT_QUEUE, "-o", str(out))
    pull("--queue", "new_ordres", "-o", str(out), expect=5)
    bare = pull("-o", str(out))
    assert f"queue {DEFAULT_QUEUE}" in bare.stderr
    assert saved_record(isolated_home)["cursors"]["queue"]["queue_code"] == (
        DEFAULT_QUEUE
    )


def test_since_whose_first_page_fails_keeps_the_active_mode(
    pull: Any, sb: Sandbox, isolated_home: Path
) -> None:
    low = min(sb.store.ids())
    pull("--from-order", str(low))
    sb.faults.inject("503", count=10)
    pull("--since", "30d", expect=6, MIVA_SYNC_RETRY_BUDGET="0")
    sb.faults.clear()
    assert saved_record(isolated_home)["mode"] == "number"
    assert "number watermark" in pull().stderr


def test_full_refresh_that_fails_first_leaves_the_cursor(
    pull: Any, sb: Sandbox, isolated_home: Path
) -> None:
    pull("--since", "30d")
    watermark = saved_record(isolated_home)["cursors"]["date"]["watermark"]
    sb.faults.inject("503", count=10)
    pull("--since", "30d", "--full-refresh", expect=6, MIVA_SYNC_RETRY_BUDGET="0")
    sb.faults.clear()
    resumed = pull()
    assert resumed.stdout == ""  # the old cursor, not a restart at 30d
    assert "stopped before its first commit" in resumed.stderr
    assert saved_record(isolated_home)["cursors"]["date"]["watermark"] >= watermark


def test_all_profiles_forwards_the_start_and_full_refresh_as_typed() -> None:
    """Each profile applies the start rule to its own cursor: the start goes on
    as typed (read in each store's zone, at each child's now)."""
    from miva_sync.cli import cli
    from miva_sync.cli.all_profiles import _forwarded_args

    args = ["--all-profiles", "--since", "30d", "--full-refresh"]
    root = cli.make_context("miva-sync", ["pull", *args])
    with root:
        command = root.command.get_command(root, "pull")  # type: ignore[attr-defined]
        assert command is not None
        ctx = command.make_context("pull", args, parent=root)
        assert _forwarded_args(ctx) == ["pull", "--since=30d", "--full-refresh"]


def test_from_order_check_holds_on_a_store_that_ignores_sort(
    run: Any, isolated_home: Path
) -> None:
    """A store that ignores ``Sort`` answers a ``-id`` sort with its lowest
    order: the future check must not take that for the highest and refuse every
    start above it. It asks with a filter instead, and still refuses a start
    past every order."""
    from miva_sync.sandbox.quirks import Quirks

    with Sandbox(orders=120, seed=19, quirks=Quirks(ignore_sort={"id"})) as store:
        ids = sorted(store.store.ids())
        middle = ids[len(ids) // 2]
        ok = run(["pull", "--no-progress", "--from-order", str(middle)], env=store.env())
        assert ok.exit_code == 0, ok.stderr
        assert sorted(json.loads(line)["id"] for line in ok.stdout.splitlines()) == [
            i for i in ids if i >= middle
        ]
        beyond = run(
            ["pull", "--no-progress", "--from-order", str(ids[-1] + 31)],
            env=store.env(),
        )
        assert beyond.exit_code == 2, beyond.stderr
        assert "beyond the store's highest order number" in beyond.stderr

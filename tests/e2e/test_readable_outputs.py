"""What people read on stderr and stdout is text, laid out (issue 21).

``pull --dry-run`` prints its plan in words (the filter as
``orderdate >= ISO (raw)``, the columns as a list), not Python reprs, and
keeps machine values with ``--log-format json``; ``verify`` prints no table
when there is nothing to list; every ``key  value`` row of ``state show``
starts its value in the same column.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest

from miva_sync.base.timespec import iso
from miva_sync.sandbox import DEFAULT_QUEUE, Sandbox
from tests.support.helpers import Puller

REPR = re.compile(r"\[\{|\{'|\['|'\]|\}\]")  # a Python list or dict shown as is
TABLE = re.compile(r"[┃━│╇]|day \(UTC\)")


@pytest.fixture
def sandbox() -> Any:
    with Sandbox(orders=120, seed=11) as sb:
        yield sb


def rows(stderr: str) -> dict[str, str]:
    """A right-aligned ``key  value`` table as a dict."""
    out = {}
    for line in stderr.splitlines():
        key, _, value = line.strip().partition("  ")
        out[key] = value.strip()
    return out


def test_dry_run_prints_the_plan_in_words(run: Any, sandbox: Sandbox) -> None:
    now = int(time.time())
    since, until = now - 2 * 86400, now - 86400
    result = run(
        [
            "pull",
            "--since",
            str(since),
            "--until",
            str(until),
            "--columns",
            "customer,items",
            "--page-size",
            "50",
            "--dry-run",
        ],
        env=sandbox.env(),
    )
    assert result.exit_code == 0, result.stderr
    assert not REPR.search(result.stderr), result.stderr
    plan = rows(result.stderr)
    assert plan["filter"] == (
        f"orderdate >= {iso(since)} ({since}) and orderdate <= {iso(until)} ({until})"
    )
    assert plan["columns"] == "customer, items"
    assert plan["page size"] == "50"
    assert plan["from"] == iso(since) and plan["until"] == iso(until)
    assert plan["total_count"].isdigit()


def test_dry_run_number_and_queue_plans_in_words(run: Any, sandbox: Sandbox) -> None:
    number = run(
        ["pull", "--from-order", "1010", "--to-order", "1050", "--dry-run"],
        env=sandbox.env(),
    )
    queue = run(["pull", "--queue", DEFAULT_QUEUE, "--dry-run"], env=sandbox.env())
    for result in (number, queue):
        assert result.exit_code == 0, result.stderr
        assert not REPR.search(result.stderr), result.stderr
    assert rows(number.stderr)["filter"] == "id >= 1010 and id <= 1050"
    plan = rows(queue.stderr)
    assert plan["queue"] == DEFAULT_QUEUE
    assert plan["acknowledge"] == "yes, after a durable write"
    assert plan["columns"].startswith("ship_method, ")
    assert plan["page size"] == "100"


def test_dry_run_json_log_keeps_machine_values(run: Any, sandbox: Sandbox) -> None:
    now = int(time.time())
    since = now - 86400
    result = run(
        ["pull", "--since", str(since), "--dry-run", "--log-format", "json"],
        env=sandbox.env(),
    )
    assert result.exit_code == 0, result.stderr
    line = json.loads(result.stderr.splitlines()[-1])
    assert line["event"] == "dry_run"
    assert line["from"] == since and line["from_iso"] == iso(since)
    assert line["until"] is None and line["watermark"] is None
    assert isinstance(line["total_count"], int) and line["total_count"] > 0
    assert line["page_size"] == 100
    assert isinstance(line["columns"], list) and "customer" in line["columns"]
    search = line["filter"][0]
    assert search == {
        "name": "search",
        "value": [{"field": "orderdate", "operator": "GE", "value": str(since)}],
    }


def test_verify_prints_no_empty_table(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "o.jsonl"
    Puller(run, sandbox, out)("--since", "3d")
    complete = run(["verify", "--since", "3d", "-o", str(out)], env=sandbox.env())
    assert complete.exit_code == 0, complete.stderr
    assert not TABLE.search(complete.stderr), complete.stderr
    [line] = complete.stderr.splitlines()  # one line, no empty table before it
    assert line.startswith("miva-sync: ") and ": complete for " in line
    # an empty range: nothing to list either
    empty = run(
        ["verify", "--since", "2010-01-01", "--until", "2010-01-02", "-o", str(out)],
        env=sandbox.env(),
    )
    assert empty.exit_code == 0, empty.stderr
    assert len(empty.stderr.splitlines()) == 1 and not TABLE.search(empty.stderr)
    # a gap is a day with a difference: that table stays
    lines = out.read_text().splitlines()
    out.write_text("\n".join(lines[1:]) + "\n")
    gap = run(["verify", "--since", "3d", "-o", str(out)], env=sandbox.env())
    assert gap.exit_code == 9
    assert "day (UTC)" in gap.stderr and "total" in gap.stderr


# a row: its key (words with single spaces, maybe indented), two or more
# spaces, then its value
ROW = re.compile(r"^(?P<key>\s*\S+(?: \S+)*)(?P<gap> {2,})(?P<value>\S.*)$")


def test_state_show_values_line_up_for_every_row_kind(
    run: Any, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pull = Puller(run, sandbox, tmp_path / "o.jsonl")
    # a queue whose acknowledgements are refused: its journal keeps the ids
    with monkeypatch.context() as patch:
        patch.setattr(sandbox.store, "acknowledge", lambda ids: 0)
        pull("--queue", DEFAULT_QUEUE, "--page-size", "20", expect=5)
    pull("--from-order", "1100")
    pull("--since", "2d", "--require-payment")  # unpaid orders are held
    pull("--since", "1d", "--updated")
    result = run(["state", "show"], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    for needed in ("cursor queue", "pending ack", "cursor number", "  #", "last run"):
        assert any(needed in line for line in lines), needed
    columns = set()
    for line in lines:
        match = ROW.match(line)
        assert match, f"not a key  value row: {line!r}"
        columns.add(match.start("value"))
    assert len(columns) == 1, result.stdout
    journal = next(line for line in lines if "pending ack" in line)
    assert "20 to acknowledge" in journal

"""Issue 19, finding 7: every meaningless flag combination of ``pull`` exits 2
with one line saying what to use instead. The table (miva_sync/flag_rules.py)
is tested as a table: one case per row (a row that depends on the mode also
in the mode a bare pull resumes), each through the real CLI."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.app import flag_rules
from miva_sync.sandbox import DEFAULT_QUEUE, Sandbox

Q = DEFAULT_QUEUE
WINDOW = ("--since", "2d", "--until", "1d")

# (row, a pull that saves the mode first or None, the refused pull, the hint)
CASES: list[tuple[str, tuple[str, ...] | None, tuple[str, ...], str]] = [
    ("since-and-from-order", None, ("--since", "1d", "--from-order", "1"), "use one"),
    ("ids-with-others", None, ("--ids", "1", "--overlap", "5"), "drop --overlap"),
    ("ids-with-others", None, ("--ids", "1", "--no-ack"), "drop --no-ack"),
    ("queue-with-a-start-or-window", None, ("--queue", Q, "--since", "1d"), "--since"),
    ("full-refresh-in-queue-mode", None, ("--queue", Q, "--full-refresh"), "--ids"),
    ("full-refresh-without-a-start", None, ("--full-refresh",), "--since WHEN"),
    ("full-refresh-with-a-window", None, (*WINDOW, "--full-refresh"), "drop"),
    (
        "require-payment-with-a-window",
        None,
        (*WINDOW, "--require-payment"),
        "drop --require-payment",
    ),
    (
        "full-refresh-with-emit-unchanged",
        None,
        ("--since", "1d", "--full-refresh", "--emit-unchanged"),
        "drop --emit-unchanged",
    ),
    (
        "until-with-from-order",
        None,
        ("--from-order", "1", "--until", "1d"),
        "--to-order",
    ),
    ("to-order-with-since", None, ("--since", "1d", "--to-order", "5"), "--until"),
    ("until-without-since", None, ("--until", "1d"), "add --since"),
    ("to-order-without-from-order", None, ("--to-order", "5"), "add --from-order"),
    ("until-before-since", None, ("--since", "1d", "--until", "2d"), "swap"),
    (
        "to-order-below-from-order",
        None,
        ("--from-order", "10", "--to-order", "5"),
        "swap",
    ),
    (
        "overlap-in-date-or-updated-mode",
        None,
        ("--since", "1d", "--updated", "--overlap", "5"),
        "--lookback",
    ),
    (
        "overlap-in-date-or-updated-mode",
        ("--since", "30d"),
        ("--overlap", "5"),
        "--lookback",
    ),
    (
        "lookback-in-number-mode",
        None,
        ("--from-order", "1", "--lookback", "5m"),
        "--overlap",
    ),
    (
        "lookback-in-number-mode",
        ("--from-order", "1"),
        ("--lookback", "5m"),
        "--overlap",
    ),
    ("updated-in-number-mode", None, ("--from-order", "1", "--updated"), "--since"),
    ("updated-in-number-mode", ("--from-order", "1"), ("--updated",), "--since"),
    (
        "re-query-window-in-queue-mode",
        None,
        ("--queue", Q, "--overlap", "5"),
        "drop it",
    ),
    (
        "re-query-window-in-queue-mode",
        ("--queue", Q),
        ("--lookback", "5m"),
        "drop it",
    ),
    ("workers-in-queue-mode", None, ("--queue", Q, "--workers", "4"), "drop it"),
    (
        "re-query-window-with-a-bounded-window",
        None,
        (*WINDOW, "--lookback", "5m"),
        "drop it",
    ),
    (
        "emit-unchanged-with-a-bounded-window",
        None,
        (*WINDOW, "--emit-unchanged"),
        "drop --emit-unchanged",
    ),
    ("no-ack-outside-queue-mode", None, ("--since", "1d", "--no-ack"), "--queue CODE"),
    (
        "received-queue-outside-queue-mode",
        None,
        ("--since", "1d", "--received-queue", "got"),
        "--no-ack",
    ),
    (
        "received-queue-outside-queue-mode",
        ("--since", "30d"),
        ("--received-queue", "got"),
        "--no-ack",
    ),
    (
        "received-queue-with-ack",
        None,
        ("--queue", Q, "--received-queue", "got"),
        "add --no-ack",
    ),
    (
        "sqlite-file-as-json-lines",
        None,
        ("--since", "1d", "-o", "held.db"),
        "sqlite:///held.db",
    ),
    (
        "hold-for-without-require-payment",
        None,
        ("--since", "1d", "--hold-for", "2h"),
        "add --require-payment",
    ),
    (
        "jobs-without-all-profiles",
        None,
        ("--since", "1d", "--jobs", "2"),
        "--all-profiles",
    ),
    (
        "wait-with-dry-run",
        None,
        ("--since", "1d", "--dry-run", "--wait"),
        "drop --wait",
    ),
    ("queue-without-a-code", None, ("--queue", " "), "needs the store's queue code"),
    (
        "received-queue-with-updated",
        None,
        ("--updated", "--received-queue", "got"),
        "goes with --no-ack",
    ),
    (
        "dry-run-with-no-ack",
        None,
        ("--queue", Q, "--no-ack", "--dry-run"),
        "any download moves the orders out",
    ),
    ("json-with-dry-run", None, ("--since", "1d", "--dry-run", "--json"), "--json"),
    ("json-with-all-profiles", None, ("--all-profiles", "--json"), "--log-format json"),
]


def test_every_row_of_the_table_has_a_case() -> None:
    rows = [rule.name for rule in flag_rules.RULES]
    assert len(rows) == len(set(rows))
    assert sorted({case[0] for case in CASES}) == sorted(rows)


@pytest.fixture(scope="module")
def sb() -> Iterator[Sandbox]:
    with Sandbox(orders=40, seed=7) as sandbox:
        yield sandbox


@pytest.mark.parametrize(
    ("row", "setup", "args", "hint"),
    CASES,
    ids=[f"{c[0]}{'(saved mode)' if c[1] else ''}-{i}" for i, c in enumerate(CASES)],
)
def test_meaningless_combination_exits_2_with_one_line(
    run: Any,
    sb: Sandbox,
    isolated_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    row: str,
    setup: tuple[str, ...] | None,
    args: tuple[str, ...],
    hint: str,
) -> None:
    monkeypatch.chdir(tmp_path)  # -o held.db must not land in the repository
    if setup is not None:
        done = run(["pull", "--no-progress", *setup, "-o", "setup.jsonl"], env=sb.env())
        assert done.exit_code == 0, done.stderr
    state = isolated_home / "state.json"
    before = state.read_bytes() if state.exists() else None
    result = run(["pull", "--no-progress", *args], env=sb.env())
    assert result.exit_code == 2, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert hint in lines[0]
    rule = flag_rules.refusing_rule(_given(args), _mode(setup))
    assert rule is not None and rule.name == row
    assert result.stdout == ""
    assert (state.read_bytes() if state.exists() else None) == before
    assert not (tmp_path / "held.db").exists()


def _given(args: tuple[str, ...]) -> dict[str, Any]:
    """The pull command's option names for ``args`` (the table's input), as parsed."""
    from click.core import ParameterSource

    from miva_sync.base.timespec import WhenText
    from miva_sync.cli.pull import pull

    ctx = pull.make_context("pull", list(args))
    return {
        name: value.resolve() if isinstance(value, WhenText) else value
        for name, value in ctx.params.items()
        if ctx.get_parameter_source(name) == ParameterSource.COMMANDLINE
    }


def _mode(setup: tuple[str, ...] | None) -> str | None:
    return flag_rules.mode_named(_given(setup)) if setup else None


@pytest.mark.parametrize(
    "args",
    [
        ("--since", "1d", "--lookback", "5m", "--workers", "2"),
        ("--since", "1d", "--updated", "--require-payment", "--hold-for", "2h"),
        ("--from-order", "5", "--overlap", "45m"),
        ("--from-order", "5", "--to-order", "9"),
        ("--since", "1d", "--full-refresh"),
        ("--queue", Q, "--no-ack", "--received-queue", "got"),
        ("--all-profiles", "--jobs", "2"),
        ("--since", "1d", "-o", "sqlite:///orders.db"),
        ("--overlap", "5"),  # bare: its mode is known only from the state
    ],
)
def test_meaningful_combinations_pass_the_table(args: tuple[str, ...]) -> None:
    assert flag_rules.refusal(_given(args)) is None


def test_unknown_columns_warn_but_run(run: Any, sb: Sandbox) -> None:
    known = "items,customer,payment_data,default,CustomField_Values:customfields:gift"
    assert flag_rules.unknown_columns(known) == []
    result = run(
        ["pull", "--since", "30d", "--columns", "items,itemz,CustomField_Values:*"],
        env=sb.env(),
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout  # the pull ran
    warnings = [line for line in result.stderr.splitlines() if "--columns" in line]
    assert len(warnings) == 1 and "'itemz'" in warnings[0]
    assert "'items'" not in warnings[0]

"""``check`` suggests only what ``pull`` then takes as meant (issue 21).

Every suggested command line is run, as printed, against the same sandbox
and state: on friendly and unfriendly stores (sandbox quirks), with a
profile's queue, and with state saved by earlier pulls (the start rule: a
``--since``/``--from-order`` that a saved cursor would override is never
suggested). ``check --json`` carries the machine values beside its prose.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from miva_sync.sandbox.quirks import Quirks
from tests.support.helpers import profile_toml, write_config

MODES = {"queue", "updated", "number"}
QUEUE = "new_updated_orders"
# what pull says when a start on its command line does not apply
START_IGNORED = "a start only applies to a mode with no saved cursor"


@dataclass(frozen=True)
class Case:
    quirks: tuple[str, ...] = ()
    store: dict[str, Any] = field(default_factory=dict)
    prepare: Callable[[Sandbox], None] | None = None
    pulls: tuple[tuple[str, ...], ...] = ()  # run before check
    check: tuple[str, ...] = ()
    profile: dict[str, str] | None = None  # a profile "s" with these settings
    mode: str = ""  # the mode check must suggest
    words: tuple[str, ...] = ()  # in the suggested command


def no_ack_queue(sb: Sandbox) -> None:
    sb.store.create_queue("fast", ack=False)


CASES = {
    "friendly store": Case(mode="updated", words=("--since", "--updated")),
    "store ignoring the dt_updated sort": Case(
        quirks=("ignore-sort-dt-updated",), mode="number", words=("--from-order",)
    ),
    # the pull's own --from-order check reads the store's top id with Sort
    # -id: on a store that ignores it, a start above that would be refused
    "store ignoring every sort": Case(
        quirks=("ignore-sort-dt-updated", "ignore-sort-id"),
        mode="number",
        words=("--from-order",),
    ),
    "store before dt_updated": Case(
        quirks=("lenient-fields",),
        store={"supports_dt_updated": False},
        mode="number",
    ),
    "empty store": Case(store={"orders": 0}, mode="number"),
    "proven queue": Case(check=("--queue", QUEUE), mode="queue", words=(QUEUE,)),
    "queue that cannot be proven": Case(
        quirks=("unknown-queue-empty",), check=("--queue", QUEUE), mode="updated"
    ),
    "profile queue, nothing saved": Case(
        profile={"queue": QUEUE}, mode="queue", words=("--profile", "s", QUEUE)
    ),
    "profile queue that is a typo": Case(
        profile={"queue": "New_Updated_Orders"},
        mode="updated",
        words=("--profile", "--since", "--updated"),
    ),
    "updated mode active": Case(
        pulls=(("--since", "2d", "--updated"),), mode="updated"
    ),
    "date mode active": Case(pulls=(("--since", "2d"),), mode="updated"),
    "number active, updated cursor saved": Case(
        pulls=(("--since", "2d", "--updated"), ("--from-order", "1030")),
        mode="updated",
        words=("state", "set"),
    ),
    "queue active": Case(
        pulls=(("--queue", QUEUE),), check=("--queue", QUEUE), mode="queue"
    ),
    "number cursor saved, date active": Case(
        quirks=("ignore-sort-dt-updated",),
        pulls=(("--from-order", "1030"), ("--since", "1d")),
        mode="number",
        words=("state", "set", "--order"),
    ),
    "number active on a store without updated mode": Case(
        quirks=("ignore-sort-dt-updated",),
        pulls=(("--from-order", "1030"),),
        mode="number",
    ),
    "a saved no-ack queue, another mode active": Case(
        prepare=no_ack_queue,
        pulls=(("--queue", "fast", "--no-ack"), ("--since", "1d")),
        check=("--queue", "fast"),
        mode="queue",
        words=("--no-ack",),
    ),
}


def run_ok(run: Any, args: list[str], env: dict[str, str]) -> Any:
    result = run(args, env=env)
    assert result.exit_code == 0, (args, result.stderr)
    assert "Traceback" not in result.stderr
    return result


@pytest.mark.parametrize("case", CASES.values(), ids=list(CASES))
def test_each_suggested_command_runs_as_printed(
    run: Any, case: Case, tmp_path: Path, isolated_home: Path
) -> None:
    out = tmp_path / "orders.jsonl"
    quirks = Quirks.from_names(list(case.quirks))
    with Sandbox(**{"orders": 40, "seed": 7, **case.store}, quirks=quirks) as sb:
        if case.prepare is not None:
            case.prepare(sb)
        env = sb.env()
        prefix: list[str] = []
        if case.profile is not None:
            write_config(isolated_home, profile_toml("s", sb, **case.profile))
            env, prefix = {}, ["--profile", "s"]
        for args in case.pulls:
            run_ok(run, [*prefix, "pull", *args, "-o", str(out), "-q"], env)
        checked = run_ok(run, [*prefix, "check", "--json", *case.check], env)
        data = json.loads(checked.stdout)
        text = run_ok(run, [*prefix, "check", *case.check], env)

        mode, command = data["suggested_mode"], data["suggested_command"]
        assert mode == case.mode, data["suggestion"]
        assert mode in MODES
        assert data["suggestion"].startswith(mode)
        assert command in data["suggestion"]
        assert f"suggested mode: {data['suggestion']}" in text.stderr
        argv = shlex.split(command)
        assert argv[0] == "miva-sync"
        for word in case.words:
            assert word in argv, command
        # never a placeholder: every word is one the pull can take as is
        assert not {"CODE", "N", "WHEN"} & set(argv), command

        # run it as printed (a pull also writes to this test's file), and
        # after a `state set`, the pull it names
        steps = [argv[1:]]
        if argv[1:3] == ["state", "set"]:
            assert ", then miva-sync pull" in data["suggestion"]
            steps.append([*prefix, "pull"])
        for step in steps:
            if "pull" in step:
                step = [*step, "-o", str(out), "--no-progress"]
            result = run_ok(run, step, env)
            assert START_IGNORED not in result.stderr
        shown = run_ok(run, [*prefix, "state", "show", "--json"], env)
        assert json.loads(shown.stdout)["mode"] == mode  # the run made it active


def test_check_json_has_machine_values_beside_the_prose(run: Any) -> None:
    with Sandbox(orders=30, seed=5) as sb:
        result = run_ok(run, ["check", "--json"], sb.env())
    data = json.loads(result.stdout)
    assert data["suggested_mode"] == "updated"
    assert data["suggested_command"] == "miva-sync pull --since 7d --updated"
    assert data["suggestion"] == "updated: miva-sync pull --since 7d --updated"
    skew = data["clock_skew_seconds"]
    assert isinstance(skew, int | float) and not isinstance(skew, bool)
    assert data["clock_status"] == "ok"
    for name, probe in data["probes"].items():
        assert probe["value"] in {"supported", "unsupported", "unknown"}, name
        assert probe["status"] in {"ok", "warn", "fail", "info", "skip"}, name
        assert probe["reason"]
    assert data["probes"]["sort_dt_updated"]["status"] == "ok"


def test_check_json_machine_status_of_a_failed_probe(run: Any) -> None:
    quirks = Quirks.from_names(["ignore-sort-dt-updated"])
    with Sandbox(orders=30, seed=5, quirks=quirks) as sb:
        result = run(["check", "--json", "--require", "updated"], env=sb.env())
    assert result.exit_code == 5
    data = json.loads(result.stdout)
    assert data["probes"]["sort_dt_updated"] == {
        "value": "unsupported",
        "status": "fail",
        "reason": data["probes"]["sort_dt_updated"]["reason"],
    }
    # still a suggestion a pull takes: number mode from an order of the store
    assert data["suggested_mode"] == "number"
    assert shlex.split(data["suggested_command"])[1:3] == ["pull", "--from-order"]


def test_no_suggestion_when_every_pull_of_the_profile_is_refused(
    run: Any, isolated_home: Path
) -> None:
    with Sandbox(orders=10, seed=5) as sb:
        write_config(isolated_home, profile_toml("s", sb, output="orders.db"))
        result = run_ok(run, ["--profile", "s", "check", "--json"], {})
        pulled = run(["--profile", "s", "pull", "--since", "7d", "--updated"])
    assert pulled.exit_code == 2  # as check foresaw
    data = json.loads(result.stdout)
    assert data["suggested_mode"] is None and data["suggested_command"] is None
    row = next(c for c in data["checks"] if c["name"] == "suggestion")
    assert row["status"] == "warn" and "sqlite:///orders.db" in row["detail"]

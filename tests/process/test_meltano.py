"""`meltano run tap-miva target-jsonl` with a real Meltano, against the sandbox.

Slow (Meltano and its plugins are installed with pip; the first run builds the
cached Meltano virtualenv), so it carries the ``meltano`` marker and the default
``pytest`` leaves it out; ``.ci/run`` runs it as a second step
(``pytest -m meltano``). Without a package registry it skips and says why,
except under CI, where that is a failure (tests/support/meltano.py).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.meltano import (
    copy_example,
    meltano_env,
    meltano_executable,
    run_meltano,
    unavailable,
)

pytestmark = pytest.mark.meltano

STATE_ID = "dev:tap-miva-to-target-jsonl"  # Meltano's: ENVIRONMENT:TAP-to-TARGET
PAGE_SIZE = 20


def _records(folder: Path) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line]
    return rows


def _loads(sb: Sandbox, since: int) -> list[dict[str, Any]]:
    """The order list requests after the first ``since`` requests."""
    return [
        e.body
        for e in sb.requests[since:]
        if e.function == "OrderList_Load_Query" and isinstance(e.body, dict)
    ]


def test_meltano_runs_the_tap_twice_incrementally(tmp_path: Path) -> None:
    meltano = meltano_executable()
    project = copy_example(tmp_path / "project")
    out1, out2 = tmp_path / "out1", tmp_path / "out2"

    with Sandbox(orders=120, seed=7) as sb:
        env = meltano_env(sb.env())
        env["TAP_MIVA_PAGE_SIZE"] = str(PAGE_SIZE)

        # the loader first: it needs nothing but the package registry, so its
        # failure means no registry (a skip locally, a failure under CI)
        done = run_meltano(
            meltano, project, "install", "target-jsonl", env=env, check=False
        )
        if done.returncode != 0:
            unavailable(f"meltano install target-jsonl failed: {done.stderr[-600:]}")
        run_meltano(meltano, project, "install", "tap-miva", env=env)

        # run 1: everything from the config's start
        mark = sb.request_count
        run_meltano(
            meltano,
            project,
            "run",
            "tap-miva",
            "target-jsonl",
            env={**env, "TARGET_JSONL_DESTINATION_PATH": str(out1)},
        )
        first_loads = _loads(sb, mark)
        first = _records(out1)
        before = set(sb.store.ids())
        assert sorted(r["id"] for r in first) == sorted(before)
        state1 = _state(meltano, project, env)

        # new orders, then run 2: only the window after the bookmark
        new = [sb.store.add_order()["id"] for _ in range(3)]
        mark = sb.request_count
        run_meltano(
            meltano,
            project,
            "run",
            "tap-miva",
            "target-jsonl",
            env={**env, "TARGET_JSONL_DESTINATION_PATH": str(out2)},
        )
        second_loads = _loads(sb, mark)
        second = _records(out2)
        state2 = _state(meltano, project, env)

    # every order exactly once across both runs' files
    ids = [r["id"] for r in first + second]
    assert sorted(ids) == sorted(before | set(new))
    assert sorted(r["id"] for r in second) == sorted(new)
    # run 1 paged through the store; run 2 read only its window
    assert len(first_loads) >= len(before) // PAGE_SIZE
    assert len(second_loads) <= 3 < len(first_loads), second_loads
    assert all(body.get("Offset") == 0 for body in second_loads), second_loads
    # Meltano kept the bookmark the tap emitted, and handed it back for run 2
    assert state1["singer_state"]["bookmarks"]["orders"]
    assert state2["singer_state"]["bookmarks"]["orders"]
    assert state2 != state1


def _state(meltano: Path, project: Path, env: dict[str, str]) -> dict[str, Any]:
    listed = run_meltano(meltano, project, "state", "list", env=env)
    assert STATE_ID in listed.stdout, listed.stdout
    got = run_meltano(meltano, project, "state", "get", STATE_ID, env=env)
    state: dict[str, Any] = json.loads(got.stdout)
    return state

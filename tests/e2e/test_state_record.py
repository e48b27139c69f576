"""The state record's schema (miva_sync/state/record.py) against what runs save.

Every key a run writes into a store's record is declared (and so documented)
in the schema, and every key the schema declares is one a run really writes:
a key added to the record, or dropped from it, without the schema fails here.
"""

from __future__ import annotations

import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Union, get_args, get_origin, get_type_hints, is_typeddict

import pytest

from miva_sync.app.listen import Holds
from miva_sync.sandbox import DEFAULT_QUEUE, Sandbox
from miva_sync.state.file import StateStore
from miva_sync.state.record import PULL_MODES, StateRecord
from tests.support.helpers import saved_record


def _paths(
    value: object, schema: Any, path: str, seen: set[str], bad: set[str]
) -> None:
    """Walk ``value`` along ``schema``: declared keys met go to ``seen``,
    keys the schema does not declare to ``bad`` (as dotted paths, ``*`` for
    an order id)."""
    if is_typeddict(schema) and isinstance(value, dict):
        hints = get_type_hints(schema)
        for key, item in value.items():
            where = f"{path}.{key}" if path else key
            if key not in hints:
                bad.add(where)
                continue
            seen.add(where)
            _paths(item, hints[key], where, seen, bad)
    elif get_origin(schema) is dict and isinstance(value, dict):
        for item in value.values():
            _paths(item, get_args(schema)[1], f"{path}.*", seen, bad)
    elif get_origin(schema) in (Union, types.UnionType):
        for member in get_args(schema):
            if isinstance(value, dict) and (
                is_typeddict(member) or get_origin(member) is dict
            ):
                _paths(value, member, path, seen, bad)


def _declared(schema: Any, path: str = "", inside: tuple[Any, ...] = ()) -> set[str]:
    """Every key path the schema declares (a TypedDict inside itself, such as
    a cursor's ``previous``, is not entered a second time)."""
    out: set[str] = set()
    if is_typeddict(schema):
        if schema in inside:
            return out
        for key, hint in get_type_hints(schema).items():
            where = f"{path}.{key}" if path else key
            out |= {where} | _declared(hint, where, (*inside, schema))
    elif get_origin(schema) is dict:
        out |= _declared(get_args(schema)[1], f"{path}.*", inside)
    elif get_origin(schema) in (Union, types.UnionType):
        for member in get_args(schema):
            out |= _declared(member, path, inside)
    return out


def _as_one_pull_mode(paths: set[str]) -> set[str]:
    """The pull modes share one cursor type; which of its settings a mode uses
    (lookback or overlap) is the mode's business."""
    out = set()
    for path in paths:
        for mode in PULL_MODES:
            path = path.replace(f"cursors.{mode}", "cursors.<pull>")
        out.add(path)
    return out


@pytest.fixture
def sb() -> Iterator[Sandbox]:
    with Sandbox(orders=60, seed=20) as sandbox:
        yield sandbox


def test_every_key_a_run_saves_is_declared_and_every_declared_key_is_saved(
    run: Any, sb: Sandbox, isolated_home: Path, tmp_path: Path
) -> None:
    out = str(tmp_path / "orders.jsonl")
    records: list[dict[str, Any]] = []

    def pull(*args: str, expect: int = 0, **env: str) -> None:
        result = run(["pull", "--no-progress", *args], env={**sb.env(), **env})
        assert result.exit_code == expect, result.stderr
        records.append(saved_record(isolated_home))

    sb.store.add_order(kind="admin")  # unpaid: held
    pull("--since", "30d", "--require-payment", "-o", out)
    # a --full-refresh that fails before its first commit keeps `previous`
    sb.faults.inject("503", count=10)
    pull("--since", "30d", "--full-refresh", expect=6, MIVA_SYNC_RETRY_BUDGET="0")
    sb.faults.clear()
    pull("--from-order", "1", "-o", out)
    pull("--queue", DEFAULT_QUEUE, "-o", out)
    # a queue code that never answers keeps the working queue under `previous`
    pull("--queue", "new_ordres", "-o", out, expect=5)
    # listen's own record of held orders
    state = StateStore(isolated_home / "state.json")
    Holds(state, "the-store", hold_for=3600).save()
    records.append(dict(state.get("listen:the-store") or {}))

    seen: set[str] = set()
    undeclared: set[str] = set()
    for record in records:
        _paths(record, StateRecord, "", seen, undeclared)
    assert undeclared == set(), "keys saved but not declared in state/record.py"
    never_saved = _as_one_pull_mode(_declared(StateRecord)) - _as_one_pull_mode(seen)
    assert never_saved == set(), "keys declared in state/record.py that no run saves"

"""Fuzz the state file: a corrupt one is moved aside with exit 3, never a crash.

Against a real (in-process) sandbox store: a bare ``pull`` on a corrupted file
exits 3 and quarantines it (``state.json.corrupt-*``), ``state show`` says the
same, and the next ``pull --since`` starts over cleanly. A corruption that
still reads as a valid state may resume (exit 0), but never exit 1.
"""

from __future__ import annotations

import copy
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.config import normalise_url
from miva_sync.sandbox import Sandbox
from miva_sync.state.file import validate_document
from tests.support.helpers import set_at
from tests.support.hostile import assert_clean_failure

SEED = 2222
HOSTILE: list[Any] = [None, "x", "", -1, 2**70, 1.5, [], {}, True, [1], {"a": 1},
                      "1" * 30, "²", "DELETE"]  # fmt: skip
PATHS: list[tuple[Any, ...]] = [
    ("mode",), ("cursors",), ("cursors", "date"), ("cursors", "date", "start"),
    ("cursors", "date", "watermark"), ("cursors", "date", "lookback"),
    ("cursors", "number", "overlap"), ("cursors", "number", "start"),
    ("cursors", "number", "watermark"), ("cursors", "queue", "queue_code"),
    ("cursors", "queue", "pending_ack"), ("cursors", "queue", "pending_ack", 0),
    ("cursors", "queue", "drained_at"), ("cursors", "queue", "ack"),
    ("cursors", "queue", "in_flight"), ("cursors", "queue", "received_queue"),
    ("dedupe",), ("dedupe", "1001"), ("dedupe", "1001", 0), ("dedupe", "1001", 1),
    ("dedupe", "1001", 2), ("held",), ("held", "1003"), ("held", "1003", "since"),
    ("held", "1003", "orderdate"), ("last_run",), ("last_run", "finished_at"),
    ("last_run", "emitted"), ("last_run", "seconds"), ("last_run", "mode"),
    ("output",), ("output", "offset"), ("output", "inode"), ("output", "target"),
    ("target",), ("updated_at",),
]  # fmt: skip


@pytest.fixture(scope="module")
def store() -> Iterator[Sandbox]:
    with Sandbox(orders=30, seed=7) as sandbox:
        yield sandbox


@pytest.fixture
def env(store: Sandbox, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    for name, value in store.env().items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("MIVA_SYNC_RETRY_BUDGET", "0")
    home = Path(os.environ["MIVA_SYNC_HOME"])
    return {
        "home": home,
        "state": home / "state.json",
        "out": home / "orders.jsonl",
        "key": f"{normalise_url(store.url)}#{store.store_code}",
        "now": store.now(),
    }


def base_record(env: dict[str, Any], mode: str = "date") -> dict[str, Any]:
    now = env["now"]
    return {
        "mode": mode,
        "cursors": {
            "date": {
                "start": now - 30 * 86400,
                "watermark": now - 3600,
                "lookback": 900,
            },
            "number": {"start": 1, "watermark": 1010, "overlap": "30"},
            "queue": {
                "queue_code": "new_updated_orders",
                "ack": True,
                "received_queue": None,
                "pending_ack": [1001],
                "in_flight": False,
                "drained_at": now - 100,
            },
        },
        "dedupe": {"1001": [now - 4000, now - 4000, now - 4000]},
        "held": {"1003": {"since": now - 100, "orderdate": now - 200}},
        "last_run": {
            "finished_at": now - 60,
            "mode": mode,
            "emitted": 1,
            "unchanged": 0,
            "held": 1,
            "released": 0,
            "seconds": 0.1,
        },
        "output": {"target": str(env["out"]), "inode": 1, "offset": 0},
        "target": str(env["out"]),
        "updated_at": "2026-01-01T00:00:00Z",
    }


def document(env: dict[str, Any], record: dict[str, Any]) -> bytes:
    return json.dumps({"version": 1, "stores": {env["key"]: record}}).encode()


def is_valid(data: bytes) -> bool:
    try:
        validate_document(json.loads(data))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return False
    return True


def check_corrupt_or_usable(
    run: Any, env: dict[str, Any], data: bytes, case: str
) -> None:
    """The contract for one state file's bytes, for pull, state show and a restart."""
    state: Path = env["state"]
    for old in state.parent.glob("state.json.corrupt-*"):
        old.unlink()
    valid = is_valid(data)
    state.write_bytes(data)
    shown = run(["state", "show"])
    if valid:
        assert shown.exit_code in (0, 2), (
            f"{case}: state show {shown.exit_code}: {shown.stderr}"
        )
        assert (
            "Traceback" not in shown.stderr and "internal error" not in shown.stderr
        ), case
    else:
        assert_clean_failure(shown, 3, f"{case}: state show")
        assert "corrupt" in shown.stderr, f"{case}: {shown.stderr}"
        shown_moved = list(state.parent.glob("state.json.corrupt-*"))
        assert len(shown_moved) == 1 and not state.exists(), f"{case}: not moved aside"
        shown_moved[0].unlink()
        state.write_bytes(data)  # state show moved it aside too
    result = run(["pull", "-o", str(env["out"])])
    if valid:
        # a valid state resumes (or names a usage problem / the store's refusal)
        assert result.exit_code in (0, 2, 5), (
            f"{case}: exit {result.exit_code}: {result.stderr}"
        )
        assert (
            "internal error" not in result.stderr and "Traceback" not in result.stderr
        )
        return
    assert_clean_failure(result, 3, f"{case}: pull")
    assert not state.exists(), f"{case}: the corrupt file was not moved aside"
    moved = list(state.parent.glob("state.json.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes() == data, (
        f"{case}: quarantine lost it"
    )
    again = run(["pull", "--since", "30d", "-o", str(env["out"])])
    assert again.exit_code == 0, f"{case}: the fresh start failed: {again.stderr}"


def test_hostile_state_base_record_resumes_in_every_mode(
    run: Any, env: dict[str, Any]
) -> None:
    for mode in ("date", "number", "queue"):
        record = base_record(env, mode)
        data = document(env, record)
        assert is_valid(data)
        env["state"].write_bytes(data)
        result = run(["pull", "-o", str(env["out"])])
        assert result.exit_code == 0, f"{mode}: {result.stderr}"
        assert run(["state", "show"]).exit_code == 0


def test_hostile_state_every_field_every_type(run: Any, env: dict[str, Any]) -> None:
    rng = random.Random(SEED)
    combos = [
        (m, p, v) for m in ("date", "number", "queue") for p in PATHS for v in HOSTILE
    ]
    rng.shuffle(combos)
    invalid = 0
    for i, (mode, path, value) in enumerate(combos[:260]):
        record = base_record(env, mode)
        try:
            set_at(record, path, value)
        except (KeyError, IndexError, TypeError):
            continue
        data = document(env, record)
        invalid += not is_valid(data)
        case = f"seed {SEED} #{i}: mode {mode}, {'.'.join(map(str, path))} = {value!r}"
        check_corrupt_or_usable(run, env, data, case)
    assert invalid > 60  # most of these are corrupt: the oracle is not trivially valid


def test_hostile_state_random_byte_corruption(run: Any, env: dict[str, Any]) -> None:
    rng = random.Random(SEED)
    good = document(env, base_record(env, "date"))
    for i in range(60):
        kind = rng.choice(["truncate", "flip", "insert", "non-utf8", "splice"])
        data = bytearray(good)
        if kind == "truncate":
            data = data[: rng.randrange(len(data))]
        elif kind == "flip":
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
        elif kind == "insert":
            at = rng.randrange(len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == "non-utf8":
            data[rng.randrange(len(data))] = rng.choice([0xFF, 0xFE, 0xC0, 0x80])
        else:
            at = rng.randrange(len(data))
            data[at:at] = rng.choice([b"[" * 5000, b"null", b'"\\ud800"', b"1e400"])
        check_corrupt_or_usable(run, env, bytes(data), f"seed {SEED} #{i}: {kind}")


@pytest.mark.parametrize(
    "data",
    [b"", b"\n", b"null", b"[]", b'"x"', b"{}", b'{"version": 2, "stores": {}}',
     b'{"version": 1, "stores": []}', b"\xff\xfe\x00", b"[" * 100_000],
)  # fmt: skip
def test_hostile_state_whole_file_shapes(
    run: Any, env: dict[str, Any], data: bytes
) -> None:
    check_corrupt_or_usable(run, env, data, f"file {data[:20]!r}")


def test_hostile_state_a_directory_instead_of_a_file(
    run: Any, env: dict[str, Any]
) -> None:
    env["state"].mkdir()
    for command in (["pull", "-o", str(env["out"])], ["state", "show"]):
        assert_clean_failure(run(command), 3, f"directory: {command}")


def test_regression_deeply_nested_state_file_is_quarantined_exit_3(
    run: Any, env: dict[str, Any]
) -> None:
    # json.loads raised RecursionError, which the quarantine did not catch: exit 1
    env["state"].write_bytes(b'{"version": 1, "stores": ' + b"[" * 100_000)
    assert_clean_failure(run(["pull", "-o", str(env["out"])]), 3, "deep state")
    assert list(env["home"].glob("state.json.corrupt-*"))


@pytest.mark.parametrize(
    ("mode", "path", "value"),
    [("date", ("cursors", "date"), "DELETE"), ("number", ("cursors", "number", "start"), None),
     ("number", ("cursors", "number", "overlap"), "x"),
     ("date", ("cursors", "date", "lookback"), "x"),
     ("queue", ("cursors", "queue", "pending_ack"), [1.5]),
     ("queue", ("cursors", "queue", "drained_at"), "x"),
     ("date", ("cursors", "queue", "pending_ack"), [True]),
     ("date", ("dedupe", "1001"), "x"), ("date", ("last_run", "seconds"), "x"),
     ("date", ("held", "1003", "orderdate"), "x")],
)  # fmt: skip
def test_regression_corrupt_cursor_fields_are_quarantined_exit_3(
    run: Any, env: dict[str, Any], mode: str, path: tuple[Any, ...], value: Any
) -> None:
    # these passed validation, then crashed pull or state show (KeyError, TypeError,
    # ValueError: exit 1), or gave exit 3 without moving the file aside (queue cursor)
    record = base_record(env, mode)
    set_at(record, path, value)
    data = document(env, record)
    case = f"{mode}: {path} = {value!r}"
    env["state"].write_bytes(data)
    assert_clean_failure(run(["state", "show"]), 3, f"{case}: state show")
    env["state"].write_bytes(data)
    assert_clean_failure(run(["pull", "-o", str(env["out"])]), 3, f"{case}: pull")
    assert not env["state"].exists()
    assert run(["pull", "--since", "30d", "-o", str(env["out"])]).exit_code == 0


@pytest.mark.parametrize(
    ("key", "valid"),
    [("1001", True), ("0", True), ("9" * 20, True), ("\u00b2", False),
     ("\u0661\u0662", False), ("1" * 21, False), ("-1", False), ("1.0", False),
     (" 1", False), ("", False)],
)  # fmt: skip
@pytest.mark.parametrize("section", ["dedupe", "held"])
def test_state_order_id_keys_by_a_hand_written_table(
    run: Any, env: dict[str, Any], section: str, key: str, valid: bool
) -> None:
    # an oracle of its own: the fuzz above asks the validator what is valid, so
    # it could never catch a validator that lets "²" through (int() refuses it:
    # pull then died with exit 1)
    record = base_record(env)
    record[section] = {key: record[section].popitem()[1]}
    env["state"].write_bytes(document(env, record))
    result = run(["state", "show"])
    if valid:
        assert result.exit_code == 0, result.stderr
    else:
        assert_clean_failure(result, 3, f"{section} key {key!r}")
        assert not env["state"].exists()  # moved aside


def test_regression_huge_cursor_values_do_not_crash_state_show(
    run: Any, env: dict[str, Any]
) -> None:
    # iso() of a 2**70 watermark raised OverflowError in state show (exit 1)
    record = base_record(env, "number")
    record["cursors"]["date"]["watermark"] = 2**70
    record["last_run"]["finished_at"] = 2**70
    record["held"]["1003"]["since"] = 2**70
    env["state"].write_bytes(document(env, copy.deepcopy(record)))
    shown = run(["state", "show"])
    assert shown.exit_code == 0, shown.stderr
    assert "not a valid time" in shown.stdout

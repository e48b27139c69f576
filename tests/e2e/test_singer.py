"""Singer output: SCHEMA, a RECORD per order, STATE after each committed page.

The last test pipes a real pull into a real Singer target installed from the
package index into its own virtual environment (its pinned dependencies never
enter ours) and checks what the target wrote.
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from miva_sync.sinks import open_sink
from miva_sync.sinks.jsonl import FileSink, StdoutSink, encode_lines
from miva_sync.sinks.singer import SingerSink, order_schema
from miva_sync.state.file import StateStore

CLI = [sys.executable, "-m", "miva_sync"]
TARGET = "target-jsonl==0.1.4"  # pinned: the test checks our stream, not its releases
RECORD = {
    "mode": "date",
    "cursors": {"date": {"start": 100, "watermark": 200}},
    "dedupe": {"1": [150, 150, 150]},
    "held": {"7": {"since": 1}},
    "updated_at": "2026-01-01T00:00:00Z",
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=220, seed=61, tie_order="random") as sb:
        yield sb


def messages(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines()]


def check_stream(stream: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Singer's rules for one run: SCHEMA first, then records and states; the records."""
    assert stream[0]["type"] == "SCHEMA" and stream[0]["stream"] == "orders"
    assert stream[0]["key_properties"] == ["id"]
    assert [m["type"] for m in stream[1:]].count("SCHEMA") == 0
    assert stream[-1]["type"] == "STATE", "state after the last page's records"
    return [m["record"] for m in stream if m["type"] == "RECORD"]


# -- the sink on its own ----------------------------------------------------------------


def test_singer_sink_writes_schema_records_then_state() -> None:
    buffer = io.BytesIO()
    sink = SingerSink(StdoutSink(buffer))
    orders = [{"id": 2, "total": 1.50, "ship_city": "Zürich"}, {"id": 3}]
    sink.write(orders)
    sink.commit("shop", RECORD)
    sink.write([{"id": 4}])
    sink.commit("shop", RECORD)
    stream = messages(buffer.getvalue())
    assert [m["type"] for m in stream] == [
        "SCHEMA",
        "RECORD",
        "RECORD",
        "STATE",
        "RECORD",
        "STATE",
    ]
    # each record carries the order exactly as received: the JSON Lines bytes
    lines = buffer.getvalue().splitlines()
    assert lines[1] == (
        b'{"type":"RECORD","stream":"orders","record":'
        + encode_lines([orders[0]])[:-1]
        + b"}"
    )
    assert stream[1]["record"] == orders[0]


def test_singer_state_carries_the_cursor_and_nothing_internal() -> None:
    buffer = io.BytesIO()
    sink = SingerSink(StdoutSink(buffer))
    sink.commit("shop", RECORD)
    (schema, state) = messages(buffer.getvalue())
    assert schema["type"] == "SCHEMA"
    assert state == {
        "type": "STATE",
        "value": {
            "bookmarks": {
                "orders": {
                    "store": "shop",
                    "mode": "date",
                    "cursors": RECORD["cursors"],
                    "updated_at": RECORD["updated_at"],
                    "replication_key": "orderdate",
                    "replication_key_value": 200,
                }
            }
        },
    }


def test_singer_bounded_repull_emits_no_state() -> None:
    buffer = io.BytesIO()
    sink = SingerSink(StdoutSink(buffer))
    sink.write([{"id": 1}])
    sink.commit("shop", None)  # a backfill moves no cursor
    assert [m["type"] for m in messages(buffer.getvalue())] == ["SCHEMA", "RECORD"]


def test_singer_schema_types_every_sandbox_order(sandbox: Sandbox) -> None:
    schema = order_schema()
    python_types = {
        "integer": int,
        "number": (int, float),
        "string": str,
        "boolean": bool,
        "array": list,
        "object": dict,
    }
    for order in sandbox.store.orders_snapshot():
        for name, value in order.items():
            declared = schema["properties"].get(name)
            if declared is None or value is None:
                continue
            allowed = tuple(
                python_types[t] for t in declared["type"] if t != "null"
            )  # a cheap check here; the real target below runs a real validator
            assert isinstance(value, allowed), (name, value)
            if "integer" in declared["type"] and "number" not in declared["type"]:
                assert not isinstance(value, bool) or "boolean" in declared["type"]


# -- the CLI ----------------------------------------------------------------------------


def test_singer_pull_to_stdout_carries_every_order_once(
    run: Any, sandbox: Sandbox, isolated_home: Path
) -> None:
    result = run(
        ["pull", "--since", "90d", "--format", "singer", "--page-size", "40"],
        env=sandbox.env(),
    )
    assert result.exit_code == 0, result.stderr
    stream = messages(result.stdout_bytes)
    records = check_stream(stream)
    snapshot = {o["id"]: o for o in sandbox.store.orders_snapshot()}
    assert sorted(r["id"] for r in records) == sorted(snapshot)
    assert all(r == snapshot[r["id"]] for r in records)
    # Each STATE comes after every order its watermark covers (how many commits
    # a run makes depends on how fast the writer keeps up, so no count), and
    # the last one is what was saved.
    states = [m["value"] for m in stream if m["type"] == "STATE"]
    assert states
    written: set[int] = set()
    for message in stream:
        if message["type"] == "RECORD":
            written.add(message["record"]["id"])
        elif message["type"] == "STATE":
            mark = message["value"]["bookmarks"]["orders"]["replication_key_value"]
            if mark is None:  # the first page's STATE: its bound waits for the next
                continue
            # orders at the watermark itself may share it with later ones: the
            # next run re-reads that second (docs/design.md §5.2)
            covered = {i for i, o in snapshot.items() if o["orderdate"] < mark}
            assert covered <= written, sorted(covered - written)[:5]
    saved = StateStore(isolated_home / "state.json").all()
    ((key, record),) = saved.items()
    bookmark = states[-1]["bookmarks"]["orders"]
    assert bookmark["store"] == key
    assert bookmark["cursors"] == record["cursors"]
    assert bookmark["replication_key_value"] == record["cursors"]["date"]["watermark"]
    assert "dedupe" not in bookmark


def test_singer_pull_appends_to_a_file(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "stream.singer"
    env = sandbox.env()
    first = run(
        ["pull", "--since", "90d", "--format", "singer", "-o", str(out)], env=env
    )
    assert first.exit_code == 0, first.stderr
    assert first.stdout == ""
    sandbox.store.add_order()
    second = run(["pull", "--format", "singer", "-o", str(out)], env=env)
    assert second.exit_code == 0, second.stderr
    stream = messages(out.read_bytes())
    starts = [i for i, m in enumerate(stream) if m["type"] == "SCHEMA"]
    assert len(starts) == 2  # each run opens its stream with the schema
    records = check_stream(stream[: starts[1]]) + check_stream(stream[starts[1] :])
    assert {r["id"] for r in records} == {
        o["id"] for o in sandbox.store.orders_snapshot()
    }


@pytest.mark.parametrize("target", ["DIR/", "sqlite:///x.db"])
def test_singer_is_refused_for_targets_that_are_not_streams(
    run: Any, sandbox: Sandbox, tmp_path: Path, target: str
) -> None:
    target = target.replace("DIR", str(tmp_path / "d")).replace(
        "x.db", str(tmp_path / "x.db")
    )
    result = run(
        ["pull", "--since", "1d", "--format", "singer", "-o", target],
        env=sandbox.env(),
    )
    assert result.exit_code == 2
    assert "stdout and files" in result.stderr


def test_singer_open_sink_kinds(tmp_path: Path) -> None:
    file_sink = open_sink(str(tmp_path / "s.jsonl"), fmt="singer")
    assert isinstance(file_sink, SingerSink)
    file_sink.close()
    assert isinstance(open_sink("-", fmt="singer"), SingerSink)
    assert isinstance(open_sink("-"), StdoutSink)


# -- a real Singer target ------------------------------------------------------------------


@pytest.fixture(scope="session")
def singer_target() -> Path:
    """target-jsonl in its own virtualenv, built once and kept in the temp folder."""
    version = f"py{sys.version_info.major}{sys.version_info.minor}"
    base = (
        Path(tempfile.gettempdir())
        / f"miva-sync-test-{TARGET.replace('==', '-')}-{version}"
    )
    executable = base / "bin" / "target-jsonl"
    marker = base / ".installed"
    lock_path = base.with_name(base.name + ".lock")
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session may be building it
        if marker.exists() and executable.exists():
            return executable
        shutil.rmtree(base, ignore_errors=True)
        subprocess.run(
            [sys.executable, "-m", "venv", str(base)], check=True, timeout=120
        )
        pip = subprocess.run(
            [str(base / "bin" / "python"), "-m", "pip", "install", "--quiet",
             "--disable-pip-version-check", TARGET],
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )  # fmt: skip
        if pip.returncode != 0:
            # no skip: CI reaches the package index, so this test must run there
            pytest.fail(f"cannot install {TARGET}: {pip.stderr[-2000:]}", pytrace=False)
        marker.touch()
    return executable


def run_target(
    target: Path, tmp_path: Path, stdin: Any
) -> tuple[subprocess.CompletedProcess[bytes], Path]:
    out = tmp_path / "target-out"
    config = tmp_path / "target-config.json"
    config.write_text(
        json.dumps({"destination_path": str(out), "do_timestamp_file": False})
    )
    done = subprocess.run(
        [str(target), "--config", str(config)],
        stdin=stdin,
        capture_output=True,
        timeout=120,
        check=False,
    )
    return done, out / "orders.jsonl"


def test_singer_stream_is_accepted_by_a_real_singer_target(
    singer_target: Path, sandbox: Sandbox, tmp_path: Path
) -> None:
    since = sandbox.store.now() - 30 * 86400
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    env.update(sandbox.env(), MIVA_SYNC_HOME=str(tmp_path / "home"))
    # miva-sync pull --since … --format singer | target-jsonl --config …
    pull = subprocess.Popen(
        [
            *CLI,
            "pull",
            "--since",
            str(since),
            "--format",
            "singer",
            "--page-size",
            "50",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert pull.stdout is not None
    try:
        done, written = run_target(singer_target, tmp_path, pull.stdout)
    finally:
        pull.stdout.close()
        _, err = pull.communicate(timeout=120)
    assert pull.returncode == 0, err.decode()
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    wanted = {
        o["id"]: o for o in sandbox.store.orders_snapshot() if o["orderdate"] >= since
    }
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert sorted(r["id"] for r in rows) == sorted(wanted)
    assert all(r == wanted[r["id"]] for r in rows)
    # the target hands back the last state it saw: our cursor after the last page
    final_state = json.loads(done.stdout.decode().splitlines()[-1])
    saved = StateStore(tmp_path / "home" / "state.json").all()
    (record,) = saved.values()
    bookmark = final_state["bookmarks"]["orders"]
    assert bookmark["replication_key_value"] == record["cursors"]["date"]["watermark"]


def test_singer_schema_accepts_unusual_orders_in_a_real_target(
    singer_target: Path, tmp_path: Path
) -> None:
    # what a store may return besides the sandbox's shape (docs/miva-api.md §5):
    # JSON_DateTime timestamps, nulls, custom fields and columns we do not know
    unusual = [
        {
            "id": 1,
            "dt_updated": {"time_t": 1700000000, "year": 2023, "timezone": 0},
            "dt_instock": 0,
            "orderdate": 1700000000,
        },
        {"id": 2, "total": None, "ship_res": None, "customer": None, "items": None},
        {"id": 3, "some_new_column": [1, "x", {"y": None}], "total": 10},
        {"id": 4, "bill_fname": "Zoë 😀", "CustomField_Values": {"m": {"f": 1}}},
    ]
    stream_file = tmp_path / "stream.singer"
    sink = SingerSink(FileSink(stream_file))
    sink.write(unusual)
    sink.commit("shop", RECORD)
    sink.close()
    with stream_file.open("rb") as stdin:
        done, written = run_target(singer_target, tmp_path, stdin)
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    rows = [json.loads(line) for line in written.read_text().splitlines()]
    assert rows == unusual

"""SQLite and folder outputs: same orders as JSONL, newest version wins, own cursor, crash-safe."""

from __future__ import annotations

import json
import sqlite3
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.errors import ApiError, OutputError
from miva_sync.sandbox import Sandbox
from miva_sync.sinks import open_sink
from miva_sync.sinks.directory import DirectorySink
from miva_sync.sinks.sqlite import MIGRATIONS, SCHEMA_VERSION, SqliteSink
from miva_sync.state.file import validate_record
from tests.support.helpers import CLI, cli_env, run_cli, wait_for
from tests.support.targets import (
    NEWER,
    OLDER,
    db_items,
    db_orders,
    dir_orders,
    expected_items,
    jsonl_latest,
)


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=250, seed=31, tie_order="random") as sb:
        yield sb


def test_outputs_hold_the_same_orders_in_their_newest_version(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    store = sandbox.store
    targets = {
        "jsonl": tmp_path / "orders.jsonl",
        "dir": tmp_path / "orders",
        "sqlite": tmp_path / "orders.db",
    }
    spec = {
        "jsonl": str(targets["jsonl"]),
        "dir": f"{targets['dir']}/",
        "sqlite": f"sqlite:///{targets['sqlite']}",
    }
    homes = {name: tmp_path / f"home-{name}" for name in targets}

    def pull_all(*args: str) -> None:
        for name in targets:
            env = {**sandbox.env(), "MIVA_SYNC_HOME": str(homes[name])}
            result = run(
                ["pull", *args, "-o", spec[name], "--page-size", "30"], env=env
            )
            assert result.exit_code == 0, result.stderr

    pull_all("--since", "90d", "--updated")
    ids = sorted(o["id"] for o in store.orders_snapshot())
    for oid in ids[:5]:
        order = store.order(oid)
        items = [dict(i, quantity=i["quantity"] + 1) for i in order["items"]]
        store.update_order(oid, status=200, items=items)
    store.add_order()
    pull_all()
    pull_all()

    snapshot = {o["id"]: o for o in store.orders_snapshot()}
    latest = jsonl_latest([targets["jsonl"]])
    in_db = db_orders(targets["sqlite"])
    in_dir = dir_orders(targets["dir"])
    assert set(latest) == set(in_db) == set(in_dir) == set(snapshot)
    for oid, order in snapshot.items():
        assert (
            latest[oid]["dt_updated"]
            == in_db[oid]["dt_updated"]
            == in_dir[oid]["dt_updated"]
            == order["dt_updated"]
        )
    assert in_db[ids[0]]["status"] == 200 and in_dir[ids[0]]["status"] == 200
    # order_items is in step with every upsert
    items = db_items(targets["sqlite"])
    for oid, order in snapshot.items():
        assert sorted(items.get(oid, [])) == expected_items(order), oid
    # each target created owner-only files: they hold customer data
    for path in (
        targets["jsonl"],
        targets["sqlite"],
        next(targets["dir"].glob("*.json")),
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path


def test_outputs_sqlite_keeps_iso_view_and_columns(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    db = tmp_path / "o.db"
    result = run(["pull", "--since", "90d", "-o", f"sqlite:///{db}"], env=sandbox.env())
    assert result.exit_code == 0, result.stderr
    with sqlite3.connect(db) as conn:
        one = conn.execute(
            "SELECT o.id, o.orderdate, o.total, o.ship_city, o.source, i.orderdate_utc "
            "FROM orders o JOIN orders_iso i USING (id) LIMIT 1"
        ).fetchone()
        revenue = conn.execute("SELECT round(sum(total), 2) FROM orders").fetchone()[0]
        top = conn.execute(
            "SELECT sku, sum(quantity) FROM order_items GROUP BY sku ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
    order = sandbox.store.order(one[0])
    assert (
        one[1] == order["orderdate"]
        and one[2] == order["total"]
        and one[3] == order["ship_city"]
    )
    assert one[4] == "pull"
    assert one[5] == time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(order["orderdate"]))
    assert revenue == pytest.approx(
        sum(o["total"] for o in sandbox.store.orders_snapshot())
    )
    assert top[0]


def test_outputs_sqlite_resumes_from_its_own_cursor(
    run: Any, sandbox: Sandbox, tmp_path: Path, isolated_home: Path
) -> None:
    db = tmp_path / "o.db"
    env = sandbox.env()
    assert (
        run(["pull", "--since", "90d", "-o", f"sqlite:///{db}"], env=env).exit_code == 0
    )
    for _ in range(4):
        sandbox.store.add_order()
    # another target moves the state file's cursor past those orders
    assert run(["pull", "-o", str(tmp_path / "side.jsonl")], env=env).exit_code == 0
    for _ in range(3):
        sandbox.store.add_order()
    result = run(["pull", "-o", f"sqlite:///{db}"], env=env)
    assert result.exit_code == 0, result.stderr
    assert set(db_orders(db)) == {o["id"] for o in sandbox.store.orders_snapshot()}
    # without the state file at all, the database still knows where it was
    (isolated_home / "state.json").unlink()
    sandbox.store.add_order()
    result = run(["pull", "-o", f"sqlite:///{db}"], env=env)
    assert result.exit_code == 0, result.stderr
    assert "1 orders emitted" in result.stderr
    assert set(db_orders(db)) == {o["id"] for o in sandbox.store.orders_snapshot()}


def committed_watermark(db: Path) -> int | None:
    """The date watermark a SQLite target's checkpoint holds (None: none yet,
    or the target is being created)."""
    if not db.exists():
        return None
    try:
        with sqlite3.connect(db, timeout=0) as conn:
            found = conn.execute("SELECT record FROM sync_state").fetchone()
    except sqlite3.OperationalError:  # no table yet, or a writer holds the lock
        return None
    if found is None:
        return None
    watermark: int | None = json.loads(found[0])["cursors"]["date"]["watermark"]
    return watermark


def test_outputs_sqlite_kill_9_mid_pull_leaves_it_consistent(tmp_path: Path) -> None:
    with Sandbox(orders=400, seed=32, latency_ms=80) as sb:
        db = tmp_path / "o.db"
        env = cli_env(sb, tmp_path / "home")
        since = sb.store.now() - 90 * 86400
        proc = subprocess.Popen(
            [
                *CLI,
                "pull",
                "--since",
                str(since),
                "--page-size",
                "15",
                "-o",
                f"sqlite:///{db}",
            ],
            env=env,
            stderr=subprocess.DEVNULL,
        )
        # (the first page's commit holds its rows; its bound comes with the next)
        wait_for(lambda: committed_watermark(db) is not None, "a committed bound")
        proc.kill()
        proc.wait(10)
        with sqlite3.connect(db) as conn:
            (record_text,) = conn.execute("SELECT record FROM sync_state").fetchone()
            rows = conn.execute("SELECT id, orderdate FROM orders").fetchall()
        record = json.loads(record_text)
        validate_record(record, where="db")
        watermark = record["cursors"]["date"]["watermark"]
        assert rows, "the kill came before the first page"
        assert watermark is not None
        present = {oid for oid, _ in rows}
        store = {o["id"]: o for o in sb.store.orders_snapshot()}
        # no cursor ahead of its rows: everything below the watermark is there
        assert {
            oid for oid, o in store.items() if since <= o["orderdate"] < watermark
        } <= present
        wanted = {oid for oid, o in store.items() if o["orderdate"] >= since}
        assert present < wanted, "the kill came after the pull finished"
        # rows the cursor does not cover yet are in the same checkpoint's dedupe
        # window, so the next run does not write them twice
        ahead = {oid for oid, orderdate in rows if orderdate > watermark}
        assert ahead <= {int(k) for k in record["dedupe"]}
        run_cli("pull", "-o", f"sqlite:///{db}", env=env)
        assert set(db_orders(db)) == {
            oid for oid, o in store.items() if o["orderdate"] >= since
        }


def test_outputs_sqlite_never_replaces_newer_with_older(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "o.db", source="webhook")
    sink.write([NEWER])
    sink.commit("k", None)
    sink.write([OLDER])
    sink.commit("k", None)
    sink.close()
    assert db_orders(tmp_path / "o.db")[5]["status"] == 200
    assert db_items(tmp_path / "o.db")[5] == [(1, None, "B", None, 2, 1.0, 2.0)]


@pytest.mark.parametrize("per_statement", [100, 4])
def test_outputs_sqlite_page_larger_than_one_statement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, per_statement: int
) -> None:
    """Rows go to SQLite many per statement: a page of 250 orders and 750 items
    spans several statements, an order twice in a page keeps its newer copy
    (in other statements, and in one), and a new version replaces the stored
    items (line 3 dropped)."""
    from miva_sync.sinks import sqlite as sqlite_sink

    monkeypatch.setattr(sqlite_sink, "MAX_ROWS_PER_STATEMENT", per_statement)

    def order(oid: int, updated: int, lines: int, sku: str) -> dict[str, Any]:
        items = [
            {"line_id": n, "sku": sku, "quantity": n, "price": 1, "total": n}
            for n in range(1, lines + 1)
        ]
        return {"id": oid, "orderdate": 10, "dt_updated": updated, "items": items}

    sink = SqliteSink(tmp_path / "o.db")
    sink.write([order(i, 100, 3, "A") for i in range(1, 251)])
    sink.commit("k", None)
    page = [order(i, 200, 2, "B") for i in range(1, 151)]
    page.insert(3, order(3, 250, 1, "E"))  # a newer copy in the same statement
    page.append(order(7, 300, 1, "C"))  # the same order again, newer, in one page
    page.append(order(8, 150, 1, "D"))  # the same order again, older than its copy
    sink.write(page)
    sink.commit("k", None)
    sink.close()
    stored = db_orders(tmp_path / "o.db")
    items = db_items(tmp_path / "o.db")
    assert len(stored) == 250
    assert {o["dt_updated"] for i, o in stored.items() if i > 150} == {100}
    assert stored[7]["dt_updated"] == 300 and items[7] == [
        (1, None, "C", None, 1, 1.0, 1.0)
    ]
    assert stored[8]["dt_updated"] == 200
    assert stored[3]["dt_updated"] == 250 and [r[2] for r in items[3]] == ["E"]
    assert [row[2] for row in items[8]] == ["B", "B"]
    assert all(len(items[i]) == 2 for i in range(1, 151) if i not in (3, 7))
    assert all(len(items[i]) == 3 for i in range(151, 251))


def test_outputs_sqlite_rolls_back_an_uncommitted_page(tmp_path: Path) -> None:
    sink = SqliteSink(tmp_path / "o.db")
    sink.write([{"id": 1, "dt_updated": 1}])
    sink.close()  # no commit: as if the process died mid-page
    assert db_orders(tmp_path / "o.db") == {}


def test_outputs_sqlite_migrates_an_older_file(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    for statement in MIGRATIONS[0][1].split(";"):
        if statement.strip():
            conn.execute(statement)
    conn.execute("INSERT INTO schema_version VALUES (1)")
    conn.execute(
        "INSERT INTO orders (id, orderdate, order_json, first_seen, last_seen, source) "
        "VALUES (7, 86400, '{\"id\":7}', 1, 1, 'pull')"
    )
    conn.close()
    SqliteSink(path).close()
    with sqlite3.connect(path) as conn:
        versions = [
            v
            for (v,) in conn.execute(
                "SELECT version FROM schema_version ORDER BY version"
            )
        ]
        view = conn.execute(
            "SELECT orderdate_utc FROM orders_iso WHERE id = 7"
        ).fetchone()
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert view == ("1970-01-02 00:00:00",)


def test_outputs_sqlite_from_a_newer_release_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteSink(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION + 1,))
    with pytest.raises(OutputError, match="newer miva-sync") as info:
        SqliteSink(path)
    assert info.value.exit_code == 8


def test_outputs_directory_newest_wins_and_ids_are_checked(tmp_path: Path) -> None:
    sink = DirectorySink(tmp_path / "out")
    sink.write([{"id": 3, "dt_updated": 200, "status": 2}])
    sink.write([{"id": 3, "dt_updated": 100, "status": 1}])
    sink.commit("k", None)
    assert json.loads((tmp_path / "out" / "3.json").read_text())["status"] == 2
    for bad in ("../evil", "3/../../x", 1.5, None, -1, True):
        with pytest.raises(ApiError):
            sink.write([{"id": bad}])
    sink.close()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [
        ".miva-sync.lock",
        "3.json",
    ]
    assert not (tmp_path / "evil").exists()


def test_outputs_unknown_target_is_usage_error(run: Any, sandbox: Sandbox) -> None:
    result = run(["pull", "--since", "1d", "-o", "mysql://x"], env=sandbox.env())
    assert result.exit_code == 2
    assert "sqlite:///PATH" in result.stderr


def test_outputs_open_sink_kinds(tmp_path: Path) -> None:
    assert type(open_sink(f"sqlite:///{tmp_path}/a.db")).__name__ == "SqliteSink"
    assert type(open_sink(f"{tmp_path}/d/")).__name__ == "DirectorySink"
    assert type(open_sink(f"{tmp_path}/f.jsonl")).__name__ == "FileSink"


def test_outputs_a_new_database_does_not_inherit_another_targets_dedupe(
    run: Any, sandbox: Sandbox, tmp_path: Path
) -> None:
    env = sandbox.env()
    first = run(["pull", "--since", "90d", "-o", str(tmp_path / "a.jsonl")], env=env)
    assert first.exit_code == 0, first.stderr
    db = tmp_path / "new.db"
    # the state file remembers every order as emitted (to a.jsonl), but the new
    # database has none of them: re-pulling the window into it (issue 19: a
    # saved cursor wins over a repeated start, so that takes --full-refresh)
    # must not skip them
    second = run(
        ["pull", "--since", "90d", "--full-refresh", "-o", f"sqlite:///{db}"], env=env
    )
    assert second.exit_code == 0, second.stderr
    assert set(db_orders(db)) == {o["id"] for o in sandbox.store.orders_snapshot()}


def test_outputs_a_new_file_target_gets_every_order_of_its_window(
    run: Any, sandbox: Sandbox, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = sandbox.env()
    assert (
        run(
            ["pull", "--since", "90d", "-o", str(tmp_path / "a.jsonl")], env=env
        ).exit_code
        == 0
    )
    # a repeated start resumes the saved cursor (issue 19), and says how to re-pull
    resumed = run(["pull", "--since", "90d", "-o", f"{tmp_path / 'b'}/"], env=env)
    assert resumed.exit_code == 0, resumed.stderr
    assert "resumes from its saved cursor" in resumed.stderr
    assert "--full-refresh" in resumed.stderr
    # a re-pull into another target seeds a new consumer: the dedupe window
    # belongs to a.jsonl, so it must not make b/ skip anything
    refresh = ["pull", "--since", "90d", "--full-refresh", "-o", f"{tmp_path / 'b'}/"]
    assert run(refresh, env=env).exit_code == 0
    assert set(dir_orders(tmp_path / "b")) == {
        o["id"] for o in sandbox.store.orders_snapshot()
    }
    # a bare resume continues (into the same folder, spelled another way)
    monkeypatch.chdir(tmp_path)
    sandbox.store.add_order()
    again = run(["pull", "-o", "b/"], env=env)
    assert again.exit_code == 0, again.stderr
    assert "1 orders emitted" in again.stderr


@pytest.mark.parametrize("module", ["sqlite", "postgres"])
def test_outputs_released_schema_version_1_never_changes(module: str) -> None:
    """Found in review: version 1's DDL is built from the column lists in
    sinks/rows.py, so a new query column would silently change a released
    migration (old files would never get the column). New columns need a new
    migration; this pins version 1's orders table as released."""
    import importlib
    import re

    script = importlib.import_module(f"miva_sync.sinks.{module}").MIGRATIONS[0][1]
    body = re.search(r"CREATE TABLE orders \((.*?)\n\);", script, re.S)
    assert body is not None
    columns = [c.split()[0] for c in body.group(1).replace("\n", " ").split(",")]
    assert columns == [
        "id", "orderdate", "dt_updated", "status", "pay_status", "cust_id",
        "total", "total_ship", "total_tax", "total_auth", "total_capt", "total_rfnd",
        "cust_login", "bill_fname", "bill_lname", "bill_email", "bill_comp",
        "bill_city", "bill_state", "bill_cntry", "ship_fname", "ship_lname",
        "ship_email", "ship_comp", "ship_addr1", "ship_addr2", "ship_city",
        "ship_state", "ship_zip", "ship_cntry", "ship_method", "payment_module",
        "order_json", "first_seen", "last_seen", "source",
    ]  # fmt: skip

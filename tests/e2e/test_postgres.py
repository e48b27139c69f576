"""PostgreSQL output: the same orders as SQLite, newest wins, own cursor, crash-safe.

Every test runs against a real server (tests/support/pg_fixtures.py) in a fresh
database; the end-to-end ones drive the real CLI against a sandbox store.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from miva_sync.errors import ConfigError, LockedError, OutputError, UsageError
from miva_sync.sandbox import Sandbox
from miva_sync.sinks import open_sink
from miva_sync.sinks.postgres import SCHEMA_VERSION, PostgresSink
from miva_sync.state.file import validate_record
from miva_sync.store.urls import redact_url
from tests.support import pg_fixtures
from tests.support.helpers import wait_for
from tests.support.targets import NEWER, OLDER, db_items, db_orders, expected_items

# the fixtures: a server for the session, a fresh database per test
pg_server = pg_fixtures.pg_server
pg_url = pg_fixtures.pg_url
query = pg_fixtures.query
CLI = [sys.executable, "-m", "miva_sync"]
RECORD = {
    "mode": "date",
    "cursors": {"date": {"start": 100, "watermark": 200}},
    "dedupe": {},
    "held": {},
}


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=200, seed=41, tie_order="random") as sb:
        yield sb


def pg_orders(url: str) -> dict[int, dict[str, Any]]:
    rows = query(url, "SELECT id, order_json, dt_updated FROM orders")
    out = {}
    for oid, order, updated in rows:
        assert order["id"] == oid and order["dt_updated"] == updated
        out[oid] = order
    return out


def pg_items(url: str) -> dict[int, list[tuple[Any, ...]]]:
    rows = query(
        url,
        "SELECT order_id, line_id, code, sku, name, quantity, price, total "
        "FROM order_items ORDER BY order_id, line_id",
    )
    items: dict[int, list[tuple[Any, ...]]] = {}
    for row in rows:
        values = tuple(float(v) if isinstance(v, Decimal) else v for v in row[1:])
        items.setdefault(row[0], []).append(values)
    return items


def subprocess_env(sandbox: Sandbox, home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    env.update(sandbox.env())
    env["MIVA_SYNC_HOME"] = str(home)
    return env


def advisory_locks(url: str, granted: bool) -> int:
    rows = query(
        url,
        "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database "
        "WHERE d.datname = current_database() AND l.locktype = 'advisory' "
        "AND l.granted = %s",
        (granted,),
    )
    return int(rows[0][0])


def running(proc: subprocess.Popen[Any]) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"the pull ended early with exit {proc.returncode}")
    return True


# -- end to end: the CLI against a sandbox store --------------------------------------


def test_postgres_holds_the_same_orders_as_sqlite(
    run: Any, sandbox: Sandbox, pg_url: str, tmp_path: Path
) -> None:
    db = tmp_path / "o.db"
    # a state file each, as two separate installations would have: a fresh
    # database target falls back to the state file's dedupe window, which
    # here would describe the other target's output
    targets = {f"sqlite:///{db}": tmp_path / "h1", pg_url: tmp_path / "h2"}

    def pull_all(*args: str) -> None:
        for target, home in targets.items():
            env = {**sandbox.env(), "MIVA_SYNC_HOME": str(home)}
            result = run(["pull", *args, "-o", target], env=env)
            assert result.exit_code == 0, result.stderr

    pull_all("--since", "90d", "--updated")
    store = sandbox.store
    ids = sorted(o["id"] for o in store.orders_snapshot())
    for oid in ids[:5]:
        order = store.order(oid)
        items = [dict(i, quantity=i["quantity"] + 1) for i in order["items"]]
        store.update_order(oid, status=300, items=items)
    store.add_order()
    pull_all()  # resumes from each database's own cursor
    pull_all()  # and a re-pull of the lookback changes nothing

    snapshot = {o["id"]: o for o in store.orders_snapshot()}
    in_pg, in_sqlite = pg_orders(pg_url), db_orders(db)
    assert in_pg == in_sqlite == snapshot
    assert query(pg_url, "SELECT count(*), count(DISTINCT id) FROM orders") == [
        (len(snapshot), len(snapshot))
    ]
    assert pg_items(pg_url) == db_items(db)
    for oid, order in snapshot.items():
        assert sorted(pg_items(pg_url).get(oid, [])) == expected_items(order)
    # the query columns agree with SQLite's, amounts as exact NUMERIC
    columns = "id, orderdate, dt_updated, status, pay_status, cust_id, total, " + (
        "total_ship, ship_city, bill_email, payment_module, source"
    )
    pg_rows = {r[0]: r for r in query(pg_url, f"SELECT {columns} FROM orders")}  # noqa: S608
    import sqlite3

    with sqlite3.connect(db) as conn:
        sqlite_rows = {r[0]: r for r in conn.execute(f"SELECT {columns} FROM orders")}  # noqa: S608
    for oid, row in pg_rows.items():
        assert (
            tuple(float(v) if isinstance(v, Decimal) else v for v in row)
            == sqlite_rows[oid]
        )
    assert pg_rows[ids[0]][3] == 300
    # the cursor copy committed with the rows is a valid state record
    ((key, record),) = query(pg_url, "SELECT store_key, record FROM sync_state")
    validate_record(record, where="pg")
    assert record["mode"] == "updated" and key.endswith("#SANDBOX")


def test_postgres_resumes_from_its_own_cursor_on_a_new_host(
    run: Any, sandbox: Sandbox, pg_url: str, isolated_home: Path
) -> None:
    env = sandbox.env()
    assert run(["pull", "--since", "90d", "-o", pg_url], env=env).exit_code == 0
    for _ in range(3):
        sandbox.store.add_order()
    # another host: no state file at all; the database knows where the store was
    (isolated_home / "state.json").unlink()
    result = run(["pull", "-o", pg_url], env=env)
    assert result.exit_code == 0, result.stderr
    assert "3 orders emitted" in result.stderr
    assert set(pg_orders(pg_url)) == {o["id"] for o in sandbox.store.orders_snapshot()}


def test_postgres_kill_9_mid_pull_leaves_it_consistent(
    pg_url: str, tmp_path: Path
) -> None:
    with Sandbox(orders=400, seed=42, latency_ms=60) as sb:
        env = subprocess_env(sb, tmp_path / "home")
        since = sb.store.now() - 90 * 86400
        pull = [*CLI, "pull", "--since", str(since), "--page-size", "15", "-o", pg_url]
        proc = subprocess.Popen(pull, env=env, stderr=subprocess.DEVNULL)
        try:
            # kill right after the first committed page, far from the end
            wait_for(
                lambda: (
                    running(proc)
                    and query(pg_url, "SELECT to_regclass('sync_state')")[0][0]
                    and query(pg_url, "SELECT count(*) FROM sync_state")[0][0]
                    # the first page's commit holds its rows; its bound the next
                    and query(pg_url, "SELECT record FROM sync_state")[0][0]["cursors"][
                        "date"
                    ]["watermark"]
                    is not None
                ),
                "a committed bound",
            )
        finally:
            proc.kill()
            proc.wait(10)
        # the server frees a killed client's store lock once it sees the socket close
        wait_for(lambda: advisory_locks(pg_url, granted=True) == 0, "the lock to go")
        ((record,),) = query(pg_url, "SELECT record FROM sync_state")
        validate_record(record, where="pg")
        watermark = record["cursors"]["date"]["watermark"]
        rows = query(pg_url, "SELECT id, orderdate FROM orders")
        assert rows and watermark is not None
        present = {oid for oid, _ in rows}
        store = {o["id"]: o for o in sb.store.orders_snapshot()}
        wanted = {oid for oid, o in store.items() if o["orderdate"] >= since}
        # no cursor ahead of its rows; rows it does not cover yet are in the same
        # checkpoint's dedupe window, so the next run does not write them twice
        below = {oid for oid in wanted if store[oid]["orderdate"] < watermark}
        assert below <= present
        ahead = {oid for oid, orderdate in rows if orderdate > watermark}
        assert ahead <= {int(k) for k in record["dedupe"]}
        assert present < wanted, "the kill came after the pull finished"
        # nothing left half-written: every stored order has all its items
        for oid, items in pg_items(pg_url).items():
            assert sorted(items) == expected_items(store[oid])
        done = subprocess.run(
            [*CLI, "pull", "-o", pg_url],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert set(pg_orders(pg_url)) == wanted


def test_postgres_workers_sync_different_stores_into_one_database(
    pg_url: str, tmp_path: Path
) -> None:
    stores = [Sandbox(orders=120, seed=50 + n, tie_order="random") for n in range(3)]
    procs = []
    try:
        for sb in stores:
            sb.start()
        # all at once against an empty database: migrations race too
        for n, sb in enumerate(stores):
            env = subprocess_env(sb, tmp_path / f"home{n}")
            target = f"{pg_url}?schema=store_{n}"
            procs.append(
                subprocess.Popen(
                    [*CLI, "pull", "--since", "90d", "--page-size", "25", "-o", target],
                    env=env,
                    stderr=subprocess.PIPE,
                    text=True,
                )
            )
        for proc in procs:
            _, err = proc.communicate(timeout=120)
            assert proc.returncode == 0, err
        for n, sb in enumerate(stores):
            target = f"{pg_url}?schema=store_{n}"
            snapshot = {o["id"]: o for o in sb.store.orders_snapshot()}
            assert pg_orders(target) == snapshot  # order numbers overlap: no mixing
            ((key,),) = query(target, "SELECT store_key FROM sync_state")
            assert key.startswith(sb.url)
        versions = query(pg_url, "SELECT count(*) FROM store_0.schema_version")
        assert versions == [(SCHEMA_VERSION,)]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        for sb in stores:
            sb.stop()


def test_postgres_two_hosts_same_store_are_kept_apart_by_the_advisory_lock(
    pg_url: str, tmp_path: Path
) -> None:
    gate = threading.Event()
    with Sandbox(orders=150, seed=44, tie_order="random") as sb:
        # host A's first request is held until hosts B and C have tried
        sb.after_request(1, lambda store: gate.wait(60))
        pull = [*CLI, "pull", "--since", "90d", "--page-size", "20", "-o", pg_url]
        host_a = subprocess.Popen(
            pull,
            env=subprocess_env(sb, tmp_path / "a"),
            stderr=subprocess.PIPE,
            text=True,
        )
        host_c = None
        try:
            wait_for(lambda: sb.request_count >= 1, "host A's first request")
            assert advisory_locks(pg_url, granted=True) == 1
            # host B: its own MIVA_SYNC_HOME, so its local lock is free
            host_b = subprocess.run(
                pull,
                env=subprocess_env(sb, tmp_path / "b"),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert host_b.returncode == 7, host_b.stderr
            assert "another host" in host_b.stderr and "--wait" in host_b.stderr
            # host C waits for the lock, then resumes from the database's cursor
            host_c = subprocess.Popen(
                [*CLI, "pull", "--wait", "-o", pg_url],
                env=subprocess_env(sb, tmp_path / "c"),
                stderr=subprocess.PIPE,
                text=True,
            )
            wait_for(lambda: advisory_locks(pg_url, granted=False) == 1, "C to wait")
            for _ in range(3):
                sb.store.add_order()
        finally:
            gate.set()
        _, err_a = host_a.communicate(timeout=120)
        assert host_a.returncode == 0, err_a
        assert host_c is not None
        _, err_c = host_c.communicate(timeout=120)
        assert host_c.returncode == 0, err_c
        snapshot = {o["id"]: o for o in sb.store.orders_snapshot()}
        assert pg_orders(pg_url) == snapshot
        assert query(pg_url, "SELECT count(*), count(DISTINCT id) FROM orders") == [
            (len(snapshot), len(snapshot))
        ]
        wait_for(lambda: advisory_locks(pg_url, granted=True) == 0, "the lock to go")


def test_postgres_refuses_a_second_store_in_one_schema(run: Any, pg_url: str) -> None:
    with Sandbox(orders=20, seed=45) as first, Sandbox(orders=20, seed=46) as second:
        assert (
            run(["pull", "--since", "90d", "-o", pg_url], env=first.env()).exit_code
            == 0
        )
        result = run(["pull", "--since", "90d", "-o", pg_url], env=second.env())
    assert result.exit_code == 3
    assert "its own schema" in result.stderr and "?schema=" in result.stderr
    assert set(pg_orders(pg_url)) == {o["id"] for o in first.store.orders_snapshot()}


def test_postgres_rejects_singer_format(run: Any, pg_url: str) -> None:
    with Sandbox(orders=5, seed=47) as sb:
        result = run(
            ["pull", "--since", "1d", "--format", "singer", "-o", pg_url], env=sb.env()
        )
    assert result.exit_code == 2
    assert "stdout and files" in result.stderr


# -- the sink on its own ----------------------------------------------------------------


def test_postgres_redeliveries_never_replace_newer_with_older(pg_url: str) -> None:
    sink = open_sink(pg_url, source="webhook")
    for order in (NEWER, OLDER, NEWER, OLDER):  # repeats and out-of-order deliveries
        sink.write([order])
        sink.commit("webhook", None)
    sink.close()
    assert pg_orders(pg_url) == {5: NEWER}
    assert pg_items(pg_url) == {5: [(1, None, "B", None, 2, 1.0, 2.0)]}
    assert query(pg_url, "SELECT source FROM orders") == [("webhook",)]
    # a receiver writes no cursor and takes no store lock
    assert query(pg_url, "SELECT count(*) FROM sync_state") == [(0,)]


def test_postgres_newest_wins_between_concurrent_writers(pg_url: str) -> None:
    newer, older = PostgresSink(pg_url), PostgresSink(pg_url, source="webhook")
    newer.write([NEWER])  # holds the row lock until it commits
    failures: list[BaseException] = []

    def late_delivery() -> None:
        try:
            older.write([OLDER])
            older.commit("webhook", None)
        except BaseException as exc:  # noqa: BLE001 - reported below
            failures.append(exc)

    thread = threading.Thread(target=late_delivery)
    thread.start()
    wait_for(
        lambda: (
            query(
                pg_url,
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )[0][0]
            == 1
        ),
        "the older write to wait for the row lock",
    )
    newer.commit("k", None)
    thread.join(30)
    newer.close()
    older.close()
    assert not failures
    # the waiting upsert re-checked the committed row and kept the newer version
    assert pg_orders(pg_url) == {5: NEWER}
    assert query(pg_url, "SELECT source FROM orders") == [("pull",)]


def test_postgres_receiver_reconnects_after_the_server_drops_it(pg_url: str) -> None:
    sink = PostgresSink(pg_url, source="webhook")
    query(
        pg_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = 'miva-sync'",
    )
    with pytest.raises(OutputError):  # this delivery fails (503); Miva retries it
        sink.write([NEWER])
    sink.write([NEWER])  # the retry gets a new session
    sink.commit("webhook", None)
    sink.close()
    assert pg_orders(pg_url) == {5: NEWER}


def test_postgres_rolls_back_an_uncommitted_page(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    sink.write([{"id": 1, "dt_updated": 1}])
    sink.close()  # no commit: as if the process died mid-page
    assert pg_orders(pg_url) == {}


def test_postgres_commits_rows_and_cursor_together(pg_url: str) -> None:
    sink = PostgresSink(pg_url)
    assert sink.load_checkpoint("k") is None
    sink.write([{"id": 1, "dt_updated": 1}])
    sink.commit("k", RECORD)
    sink.close()
    again = PostgresSink(pg_url)
    assert again.load_checkpoint("k") == RECORD
    again.close()
    assert set(pg_orders(pg_url)) == {1}


def test_postgres_second_run_of_a_store_exits_7(pg_url: str) -> None:
    first, second = PostgresSink(pg_url), PostgresSink(pg_url)
    first.load_checkpoint("k")
    with pytest.raises(LockedError, match="another host") as info:
        second.load_checkpoint("k")
    assert info.value.exit_code == 7
    with pytest.raises(LockedError):  # nor may it move the cursor
        second.commit("k", RECORD)
    first.close()  # the lock goes with the session
    assert second.load_checkpoint("k") is None
    second.close()


def test_postgres_bad_saved_cursor_is_a_config_error(pg_url: str) -> None:
    PostgresSink(pg_url).close()
    query(
        pg_url,
        "INSERT INTO sync_state VALUES ('k', '{\"mode\": \"nope\"}', 0)",
    )
    sink = PostgresSink(pg_url)
    with pytest.raises(ConfigError, match="sync_state"):
        sink.load_checkpoint("k")
    sink.close()


def test_postgres_from_a_newer_release_is_refused(pg_url: str) -> None:
    PostgresSink(pg_url).close()
    query(pg_url, "INSERT INTO schema_version VALUES (%s)", (SCHEMA_VERSION + 1,))
    with pytest.raises(OutputError, match="newer miva-sync") as info:
        PostgresSink(pg_url)
    assert info.value.exit_code == 8


def test_postgres_opening_twice_migrates_once(pg_url: str) -> None:
    PostgresSink(pg_url).close()
    PostgresSink(pg_url).close()
    assert query(pg_url, "SELECT version FROM schema_version") == [(SCHEMA_VERSION,)]
    view = query(pg_url, "SELECT to_regclass('orders_iso')")
    assert view == [("orders_iso",)]


def test_postgres_stores_text_postgres_cannot_hold(pg_url: str) -> None:
    order = {
        "id": 9,
        "dt_updated": 1,
        "bill_fname": "A\0B",
        "note": "x\0",
        "ship_city": "C\ud800D",  # a lone surrogate (review): no character either
        "total": 19.99,
    }
    sink = PostgresSink(pg_url)
    sink.write([order])
    sink.commit("k", None)
    sink.close()
    rows = query(pg_url, "SELECT bill_fname, ship_city, total, order_json FROM orders")
    assert rows == [
        (
            "A\ufffdB",
            "C\ufffdD",
            Decimal("19.99"),
            dict(order, bill_fname="A\ufffdB", note="x\ufffd", ship_city="C\ufffdD"),
        )
    ]


def test_postgres_password_never_in_messages() -> None:
    pg_fixtures.require_psycopg()
    url = (
        "postgresql://miva:s3cr3t-pw@127.0.0.1:1/orders?password=s3cr3t-pw"
        "&sslpassword=s3cr3t-key"
    )
    assert "s3cr3t" not in redact_url(url)  # sslpassword: found in review
    with pytest.raises(OutputError) as info:
        PostgresSink(url)
    assert info.value.exit_code == 8
    assert "s3cr3t" not in str(info.value)
    assert "postgresql://miva:***@127.0.0.1:1/orders" in str(info.value)


def test_postgres_bad_url_is_a_usage_error() -> None:
    pg_fixtures.require_psycopg()
    with pytest.raises(UsageError, match="schema"):
        PostgresSink("postgresql://u@h/db?schema=")
    with pytest.raises(UsageError) as info:
        PostgresSink("postgresql://u:topsecret@h/db?nosuchparam=1")
    assert "topsecret" not in str(info.value)


def test_postgres_open_sink_kinds(pg_url: str) -> None:
    sink = open_sink(pg_url.replace("postgresql://", "postgres://"))
    assert type(sink).__name__ == "PostgresSink"
    sink.close()

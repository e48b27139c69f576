"""Write-behind end to end: the sandbox, a real SQLite file, a write failing mid-way."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import saved_record


def test_cli_sqlite_pull_whose_write_fails_mid_way_exits_8_with_nothing_ahead(
    run: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """End to end: the sandbox, a real SQLite file, the writer thread failing on
    the fourth page; exit 8, and the database's cursor covers only what it holds."""
    import json
    import sqlite3

    from miva_sync.sandbox import Sandbox
    from miva_sync.sinks.sqlite import SqliteSink

    pages: list[str] = []
    upsert = SqliteSink._upsert_page

    def disk_fails(self: SqliteSink, orders: list[dict[str, Any]], now: int) -> None:
        pages.append(threading.current_thread().name)
        if len(pages) == 4:
            raise sqlite3.OperationalError("disk I/O error")
        upsert(self, orders, now)

    monkeypatch.setattr(SqliteSink, "_upsert_page", disk_fails)
    db = tmp_path / "o.db"
    with Sandbox(orders=120, seed=3) as sb:
        env = {**sb.env(), "MIVA_SYNC_HOME": str(tmp_path / "home")}
        result = run(
            ["pull", "--since", "0", "--page-size", "10", "-o", f"sqlite:///{db}"],
            env=env,
        )
        assert result.exit_code == 8, result.stderr
        assert "disk I/O error" in result.stderr
        assert "Traceback" not in result.stderr
        assert set(pages) == {"output-writer"} and len(pages) == 4  # none after
        with sqlite3.connect(db) as conn:
            dates = [d for (d,) in conn.execute("SELECT orderdate FROM orders")]
            (record,) = conn.execute("SELECT record FROM sync_state").fetchone()
        watermark = json.loads(record)["cursors"]["date"]["watermark"]
        saved = saved_record(tmp_path / "home")
        assert saved["cursors"]["date"]["watermark"] == watermark
        # every order below the cursor is in the file (3 pages of 10, less ties)
        store_dates = sorted(o["orderdate"] for o in sb.store.orders_snapshot())
        below = [d for d in store_dates if d < watermark]
        assert sorted(d for d in dates if d < watermark) == below and below
        assert 20 <= len(dates) <= 30
        monkeypatch.setattr(SqliteSink, "_upsert_page", upsert)
        again = run(["pull", "-o", f"sqlite:///{db}"], env=env)
        assert again.exit_code == 0, again.stderr
        with sqlite3.connect(db) as conn:
            (count,) = conn.execute("SELECT count(*) FROM orders").fetchone()
        assert count == len(store_dates)

"""Every file in examples/ runs as documented, against local sandbox stores.

cron.txt and the systemd units run under a bare environment in
tests/process/test_cron_env.py."""

from __future__ import annotations

import csv
import io
import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from miva_sync.state.file import StateStore

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """A clean environment with this install's miva-sync first on PATH."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    bin_dir = str(Path(sys.executable).parent)
    clean["PATH"] = f"{bin_dir}{os.pathsep}{clean.get('PATH', '')}"
    clean["MIVA_SYNC_HOME"] = str(tmp_path / "home")
    return clean


def sh(
    command: str, env: dict[str, str], cwd: Path
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", command], env=env, cwd=cwd, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip


def test_example_library_script(env: dict[str, str], tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "library_example.py")],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert re.fullmatch(
        r"\d+ orders in the last 7 days, total \d+\.\d\d\n", done.stdout
    )
    assert int(done.stdout.split()[0]) > 0


def test_example_jq_pipeline(env: dict[str, str], tmp_path: Path) -> None:
    done = sh(str(EXAMPLES / "jq-pipeline.sh"), env, tmp_path)
    assert done.returncode == 0, done.stderr
    rows = list(csv.reader(io.StringIO(done.stdout)))
    assert rows[0] == ["id", "placed_at", "email", "total"]
    assert len(rows) > 1 and all(row[0].isdigit() for row in rows[1:])
    # a bounded re-pull: the sandbox's saved cursor was never created
    assert not (tmp_path / "home" / "state.json").exists() or not StateStore(
        tmp_path / "home" / "state.json"
    ).get("sandbox")


def test_example_load_sqlite_twice_resumes(env: dict[str, str], tmp_path: Path) -> None:
    first = sh(f"{EXAMPLES / 'load-sqlite.sh'} shop.db", env, tmp_path)
    assert first.returncode == 0, first.stderr
    assert "orders:" in first.stdout and "top SKUs:" in first.stdout
    with sqlite3.connect(tmp_path / "shop.db") as db:
        count = db.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert count > 0
    again = sh(f"{EXAMPLES / 'load-sqlite.sh'} shop.db", env, tmp_path)
    assert again.returncode == 0, again.stderr
    assert f"orders:        {count}" in again.stdout  # resumed: no duplicates

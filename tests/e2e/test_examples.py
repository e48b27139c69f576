"""Every file in examples/ runs as documented, against local sandbox stores."""

from __future__ import annotations

import csv
import io
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
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


@pytest.fixture
def shop(tmp_path: Path, env: dict[str, str]) -> Iterator[Sandbox]:
    """A store behind the profile "shop", as `config init` would write it."""
    with Sandbox(orders=60, seed=4) as sb:
        env["SHOP_TOKEN"] = sb.api_token
        subprocess.run(
            [sys.executable, "-m", "miva_sync", "config", "init", "--profile", "shop",
             "--url", sb.url, "--store-code", sb.store_code,
             "--api-token", "env:SHOP_TOKEN", "--signing-key", sb.signing_key or "",
             "-o", str(tmp_path / "shop.jsonl")],
            env=env, check=True, capture_output=True,
        )  # fmt: skip
        yield sb


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


def cron_commands() -> list[str]:
    commands = []
    for line in (EXAMPLES / "cron.txt").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        fields = line.split(None, 5)
        assert all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5]), line
        commands.append(fields[5])
    return commands


def test_example_cron_lines(env: dict[str, str], tmp_path: Path, shop: Sandbox) -> None:
    pull, alarm = cron_commands()
    start = sh("miva-sync --profile shop pull --since 30d --quiet", env, tmp_path)
    assert start.returncode == 0, start.stderr
    shop.store.add_order()
    done = sh(pull, env, tmp_path)
    assert done.returncode == 0, done.stderr
    ids = [int(line.split('"id":')[1].split(",")[0]) for line in
           (tmp_path / "shop.jsonl").read_text().splitlines()]  # fmt: skip
    assert max(ids) == max(o["id"] for o in shop.store.orders_snapshot())
    assert sh(alarm, env, tmp_path).returncode == 0
    # the alarm fires once the last successful run is old
    state = StateStore(tmp_path / "home" / "state.json")
    record = state.get("profile:shop")
    assert record is not None
    record["last_run"] = {**record.get("last_run", {}), "finished_at": 1_000_000_000}
    state.put("profile:shop", record)
    fired = sh(alarm, env, tmp_path)
    assert fired.returncode == 9
    assert "more than --max-age 2h" in fired.stderr


def unit(name: str) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for line in (EXAMPLES / name).read_text().splitlines():
        if "=" in line and not line.lstrip().startswith(("#", "[")):
            key, value = line.split("=", 1)
            values.setdefault(key.strip(), []).append(value.strip())
    return values


def test_example_systemd_units(
    env: dict[str, str], tmp_path: Path, shop: Sandbox
) -> None:
    service, timer = unit("miva-sync.service"), unit("miva-sync.timer")
    assert service["Type"] == ["oneshot"]
    assert timer["OnUnitActiveSec"] and timer["WantedBy"] == ["timers.target"]
    # ExecStart as systemd would run it: %h is the home folder; the binary is
    # where pipx puts it, here this install's miva-sync instead
    argv = shlex.split(service["ExecStart"][0].replace("%h", str(tmp_path)))
    assert argv[0] == f"{tmp_path}/.local/bin/miva-sync"
    start = sh("miva-sync --profile shop pull --since 30d --quiet", env, tmp_path)
    assert start.returncode == 0, start.stderr
    done = subprocess.run(
        ["miva-sync", *argv[1:]], env=env, cwd=tmp_path, capture_output=True,
        text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # --quiet: nothing for the journal when all is well

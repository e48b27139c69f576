"""``pull --all-profiles`` as a real process: SIGTERM stops the running store's
child and starts no other."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

from miva_sync.sandbox import Sandbox
from miva_sync.state.file import StateStore
from tests.support.helpers import CLI, profile_toml, read_jsonl


def test_all_profiles_sigterm_stops_the_running_store_and_starts_no_other(
    tmp_path: Path,
) -> None:
    """What systemd's stop does: the running child ends consistent (exit 130),
    a queued profile never starts."""
    with Sandbox(orders=3000, seed=9, latency_ms=30) as slow:
        home = tmp_path / "cron-home"
        home.mkdir()
        config = home / "config.toml"
        config.write_text(
            profile_toml("a", slow, tmp_path / "a.jsonl", page_size=20)
            + profile_toml("b", slow, tmp_path / "b.jsonl")
        )
        config.chmod(0o600)
        env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
        env["MIVA_SYNC_HOME"] = str(home)
        proc = subprocess.Popen(
            [*CLI, "pull", "--all-profiles", "--jobs", "1", "--since", "400d"],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + 30
        while not read_jsonl(tmp_path / "a.jsonl") and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert not (tmp_path / "b.jsonl").exists()  # queued: never started
    written = [o["id"] for o in read_jsonl(tmp_path / "a.jsonl")]
    assert written and len(written) < 3000  # stopped part-way
    state = StateStore(home / "state.json")
    state.all()  # valid, not corrupt

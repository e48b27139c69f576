"""Chaos with the real CLI: concurrent runs on one store and target, killed with -9.

A handful of seeds per mode: two pulls at once (one waits for the other's
lock) into one SQLite file while the store changes and 15% of requests fail;
one of them is killed with SIGKILL at a random instant. A final clean run,
then the mode's contract is checked like the in-process chaos suite does.
"""

from __future__ import annotations

import random
import signal
import subprocess
import time
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.chaos import MODES, Trial, check_contract, store_activity
from tests.support.helpers import CLI, cli_env, run_cli

pytestmark = pytest.mark.chaos

SEEDS = 2


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("seed", range(SEEDS))
def test_chaos_cli_concurrent_runs_killed_at_random(
    mode: str, seed: int, tmp_path: Path
) -> None:
    trial = Trial(mode, "sqlite", 1000 + seed, tmp_path)
    rng = random.Random(f"cli:{mode}:{seed}")
    with Sandbox(orders=rng.randint(100, 200), seed=trial.seed, latency_ms=15) as sb:
        sb.faults.timeout_seconds = 0.3
        home = tmp_path / "home"
        env = cli_env(sb, home, MIVA_SYNC_TIMEOUT="0.2", MIVA_SYNC_RETRY_BUDGET="1")
        low = min(sb.store.ids())
        start = trial.start_args(sb.store.now(), low)
        target = trial.target()
        # the first run starts the mode (no faults yet, so it surely saves it)
        run_cli("pull", *start, "--page-size", "20", "-o", target, env=env)
        sb.faults.rate = 0.15
        for _round in range(2):
            store_activity(sb.store, rng)
            procs = [
                subprocess.Popen(
                    [*CLI, "pull", "--wait", "--page-size", "10", "-o", target],
                    env=env,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.PIPE,
                    text=True,
                )
                for _ in range(2)
            ]
            time.sleep(rng.uniform(0.1, 0.8))
            victim = rng.choice(procs)
            victim.send_signal(signal.SIGKILL)
            for proc in procs:
                code = proc.wait(120)
                stderr = proc.stderr.read() if proc.stderr else ""
                if proc is not victim or code != -signal.SIGKILL:
                    assert code in (0, 6), stderr
                assert "Traceback" not in stderr
        sb.faults.rate = 0.0
        sb.faults.clear()
        run_cli("pull", "--page-size", "50", "-o", target, env=env)
        run_cli("pull", "-o", target, env=env)
        check_contract(trial, sb.store, start)

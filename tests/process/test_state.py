"""The run lock across processes: the lock of a killed holder never blocks."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from miva_sync.errors import LockedError
from miva_sync.state.file import StateStore


def test_state_lock_of_a_killed_process_never_blocks(tmp_path: Path) -> None:
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from miva_sync.state.file import StateStore\n"
        f"with StateStore(Path({str(tmp_path / 'state.json')!r})).run_lock('shop'):\n"
        "    print('locked', flush=True)\n"
        "    time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError):
            with StateStore(tmp_path / "state.json").run_lock("shop"):
                pass
        proc.kill()
        proc.wait(10)
        # non-blocking: a lock the dead holder still had would raise LockedError
        with StateStore(tmp_path / "state.json").run_lock("shop"):
            pass
    finally:
        proc.kill()

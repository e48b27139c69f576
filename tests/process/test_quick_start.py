"""The README quick start, pasted into bash on a fresh machine (issue 21): it
works, leaves no sandbox server running behind it, and leaves no MIVA_*
variable exported that would override a profile."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from pathlib import Path

from tests.support.helpers import wait_for
from tests.support.sandbox_cli import miva_sync_exe

ROOT = Path(__file__).resolve().parents[2]
SCHEDULE = re.compile(r"[\d*/,-]+")


def quick_start_block() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Quick start", 1)[1]
    return section.split("```sh\n", 1)[1].split("```", 1)[0].splitlines()


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def test_quick_start_leaves_no_server_and_no_exported_settings(tmp_path: Path) -> None:
    home = tmp_path / "me"
    (home / ".local" / "bin").mkdir(parents=True)
    (home / ".local" / "bin" / "miva-sync").symlink_to(miva_sync_exe())
    lines = [
        line for line in quick_start_block()
        if not line.startswith("pipx install")  # done: the symlink above
        and not SCHEDULE.fullmatch(line.split(" ", 1)[0])  # a crontab line
    ]  # fmt: skip
    assert any("miva-sync sandbox" in line for line in lines)
    script = "\n".join([*lines, "echo \"exported after: $(env | grep -c '^MIVA_')\""])
    # stderr to a file: a server left running would hold a pipe open for ever
    errors = tmp_path / "stderr.txt"
    with errors.open("w") as stderr:
        proc = subprocess.Popen(
            ["env", "-i", f"HOME={home}", f"PATH={home}/.local/bin:/usr/bin:/bin",
             "TERM=dumb", "bash", "-c", script],
            stdout=subprocess.PIPE, stderr=stderr, text=True,
            start_new_session=True,  # its own process group: what it leaves is ours
        )  # fmt: skip
    try:
        out, _ = proc.communicate(timeout=300)
        err = errors.read_text()
        assert "Traceback" not in err
        assert "exit 4" in out, err  # step 4: the wrong signing key
        assert "exported after: 0" in out
        # the sandbox server it started in the background has stopped
        wait_for(lambda: not group_alive(proc.pid), "the sandbox server to stop", 30)
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)

"""Opening a sink loads only the driver it needs (a fresh interpreter each time)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_sink_table_imports_a_database_driver_only_for_its_target(
    tmp_path: Path,
) -> None:
    """``-o FILE`` runs load neither sqlite3 nor psycopg; ``sqlite:///`` loads
    sqlite3 only."""
    script = (
        "import sys\n"
        "from miva_sync.sinks import open_sink\n"
        "def drivers():\n"
        "    return [m for m in ('sqlite3', 'psycopg') if m in sys.modules]\n"
        "open_sink(sys.argv[1]).close()\n"
        "print(drivers())\n"
        "open_sink('sqlite:///' + sys.argv[2]).close()\n"
        "print(drivers())\n"
    )
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "o.jsonl"),
            str(tmp_path / "o.db"),
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["[]", "['sqlite3']"]

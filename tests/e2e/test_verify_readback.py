"""A Singer file, end to end: verify finds its gaps and repairs it in its own format."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from miva_sync.sandbox import Sandbox
from tests.support.targets import SINCE


def test_verify_repairs_a_singer_file_in_its_own_format(
    run: Any, tmp_path: Path
) -> None:
    path = tmp_path / "o.singer.jsonl"
    with Sandbox(orders=60, seed=29) as sb:
        env = sb.env()
        pulled = run(
            ["pull", "--since", SINCE, "--format", "singer", "-o", str(path)], env=env
        )
        assert pulled.exit_code == 0, pulled.stderr
        lines = path.read_text().splitlines()
        oid = json.loads(lines[5])["record"]["id"]
        path.write_text("".join(f"{x}\n" for i, x in enumerate(lines) if i != 5))

        result = run(["verify", "--since", SINCE, "-o", str(path), "--json"], env=env)
        assert result.exit_code == 9 and json.loads(result.stdout)["missing"] == [oid]
        result = run(["verify", "--since", SINCE, "-o", str(path), "--repair"], env=env)
        assert result.exit_code == 0, result.stderr
    added = [json.loads(x) for x in path.read_text().splitlines()[len(lines) - 1 :]]
    assert [m["type"] for m in added] == ["SCHEMA", "RECORD"]
    assert added[1]["record"]["id"] == oid

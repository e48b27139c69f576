"""The exit statuses are defined once, as ``ExitStatus``, and everything agrees.

The README and docs/design.md §7 each show the human table; the root
``--help`` and the ``--all-profiles`` summary read the enum; every error class
carries a member of it; no code path exits with a bare number.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from miva_sync.errors import ExitStatus, MivaSyncError

ROOT = Path(__file__).resolve().parents[2]
TABLES = {
    "README.md": (ROOT / "README.md", "## Exit codes"),
    "docs/design.md": (ROOT / "docs" / "design.md", "## 7. Exit codes"),
}
ROW = re.compile(r"^\|\s*(\d+)\s*\|\s*(.*?)\s*\|\s*$")


def table_rows(text: str, heading: str) -> list[tuple[int, str]]:
    """(code, meaning) for each row of the first table after ``heading``."""
    after = text.split(f"\n{heading}\n", 1)[1]
    rows: list[tuple[int, str]] = []
    for line in after.splitlines():
        match = ROW.match(line)
        if match:
            rows.append((int(match[1]), match[2]))
        elif rows:  # the first line after the table ends it
            break
    return rows


@pytest.fixture(scope="module", params=sorted(TABLES))
def rows(request: pytest.FixtureRequest) -> list[tuple[int, str]]:
    path, heading = TABLES[request.param]
    return table_rows(path.read_text(encoding="utf-8"), heading)


def test_the_table_lists_every_status_in_order(rows: list[tuple[int, str]]) -> None:
    assert [code for code, _ in rows] == [status.value for status in ExitStatus]


def test_each_row_starts_with_the_enums_meaning(rows: list[tuple[int, str]]) -> None:
    for code, meaning in rows:
        expected = f"**{ExitStatus(code).meaning}**:"
        assert meaning.startswith(expected), (code, meaning)


def test_the_readme_and_the_design_page_show_the_same_table() -> None:
    readme, design = (
        table_rows(path.read_text(encoding="utf-8"), heading)
        for path, heading in TABLES.values()
    )
    assert readme == design


def test_every_error_class_carries_an_exit_status() -> None:
    def classes(root: type[MivaSyncError]) -> list[type[MivaSyncError]]:
        return [root, *(c for sub in root.__subclasses__() for c in classes(sub))]

    found = classes(MivaSyncError)
    assert len(found) > 10
    for error in found:
        assert isinstance(error.exit_code, ExitStatus), error


def test_the_root_help_lists_the_statuses_from_the_enum() -> None:
    from miva_sync.cli import cli

    result = CliRunner().invoke(cli, ["--help"])
    listed = ", ".join(f"{s.value} {s.meaning}" for s in ExitStatus)
    assert f"Exit codes: {listed}." in " ".join(result.output.split())


def test_the_all_profiles_summary_reads_the_enum() -> None:
    from miva_sync.app.all_profiles import SEVERITY, ProfileResult, worst

    assert sorted(SEVERITY) == sorted(set(ExitStatus) - {ExitStatus.OK})
    assert ProfileResult("shop", 7, "").meaning == ExitStatus.LOCKED.meaning
    assert ProfileResult("shop", -9, "").meaning == "killed or unknown (-9)"
    assert worst([0, 6, 3]) is ExitStatus.CONFIG
    assert worst([0, -9]) is ExitStatus.INTERNAL


def literal_exits(source: str) -> list[int]:
    """Lines that exit with a bare number: ``sys.exit(2)``, ``_fail(msg, 8)``,
    ``exit_code = 5`` (0 is allowed: success needs no name)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        values: list[ast.expr] = []
        if isinstance(node, ast.Call):
            name = ast.unparse(node.func)
            if name in ("sys.exit", "SystemExit", "_fail") and node.args:
                values = [node.args[-1]]
            values += [k.value for k in node.keywords if k.arg == "exit_code"]
        elif isinstance(node, ast.Assign | ast.AnnAssign):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if (
                any(ast.unparse(t).endswith("exit_code") for t in targets)
                and node.value
            ):
                values = [node.value]
        found += [
            v.lineno
            for v in values
            if isinstance(v, ast.Constant) and isinstance(v.value, int) and v.value
        ]
    return found


def test_no_code_exits_with_a_bare_number() -> None:
    package = ROOT / "miva_sync"
    problems = [
        f"{path.relative_to(ROOT)}:{line}"
        for path in sorted(package.rglob("*.py"))
        # the sandbox is a separate program: it imports nothing of ours
        if "sandbox" not in path.relative_to(package).parts
        for line in literal_exits(path.read_text(encoding="utf-8"))
    ]
    assert problems == []


@pytest.mark.parametrize(
    "source",
    ["sys.exit(2)\n", "_fail('broken pipe', 8)\n", "class E:\n    exit_code = 5\n"],
)
def test_a_bare_exit_number_is_caught(source: str) -> None:
    assert literal_exits(source) != []


def test_a_named_status_passes() -> None:
    source = "sys.exit(ExitStatus.USAGE)\n_fail('x', ExitStatus.OUTPUT)\nsys.exit(0)\n"
    assert literal_exits(source) == []

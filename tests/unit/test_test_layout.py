"""The tests' own layout: one folder per kind, and no test module imports another.

- ``unit/``: no real server and no subprocess (pure functions, mocked HTTP,
  in-memory fakes); fast, and safe to run anywhere.
- ``e2e/``: the CLI or the library against a real sandbox HTTP server, SQLite
  or PostgreSQL.
- ``process/``: real processes killed, signalled, locked or run at once.
- ``fuzz/``: property tests and seeded fuzzers of hostile input.

What tests share lives in ``tests/support/`` (helpers, fixtures, constants) or
in a ``conftest.py``; a test module importing another would make one test's
file a library for the others.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]
KINDS = ("unit", "e2e", "process", "fuzz")
# What a unit test may not import: it would start a server or a process.
NOT_IN_UNIT = {
    "subprocess",
    "multiprocessing",
    "http.server",
    "socketserver",
    "tests.support.sandbox_fixtures",
    "tests.support.pg_fixtures",
    "tests.support.webhook",
    "miva_sync.sandbox.Sandbox",
}


def python_files(root: Path) -> Iterator[Path]:
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" not in path.parts:
            yield path


def imported(path: Path, root: Path) -> Iterator[tuple[int, str]]:
    """Every module (and ``module.name`` for ``from module import name``) that
    ``path`` imports, wherever the import stands; relative imports resolved."""
    package = list(path.relative_to(root.parent).parent.parts)
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            if module:
                yield node.lineno, module
            for alias in node.names:
                yield node.lineno, f"{module}.{alias.name}"


def imports_of_test_modules(root: Path) -> list[str]:
    """``file:line imports module`` for every import, anywhere under ``root``,
    of a test module or conftest (only ``tests.support`` may be imported)."""
    found: dict[str, None] = {}  # in order, once each
    for path in python_files(root):
        for line, module in imported(path, root):
            parts = module.split(".")
            if parts[0] != root.name or parts[1:2] == ["support"]:
                continue
            for end, part in enumerate(parts[1:], start=2):
                if part.startswith("test_") or part == "conftest":
                    where = path.relative_to(root.parent)
                    found[f"{where}:{line} imports {'.'.join(parts[:end])}"] = None
                    break
    return list(found)


def misplaced_test_modules(root: Path) -> list[str]:
    """Test modules that are not inside one of the kind folders."""
    return [
        str(path.relative_to(root.parent))
        for path in sorted(root.rglob("test_*.py"))
        if path.relative_to(root).parts[0] not in KINDS
    ]


def servers_in_unit_tests(root: Path) -> list[str]:
    """Imports in ``unit/`` of what starts a server or a process."""
    found = []
    for path in python_files(root / "unit"):
        for line, module in imported(path, root):
            if module in NOT_IN_UNIT:
                found.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return found


def test_no_test_module_imports_another() -> None:
    assert imports_of_test_modules(TESTS) == [], "move what is shared to tests/support/"


def test_every_test_module_sits_in_a_kind_folder() -> None:
    assert misplaced_test_modules(TESTS) == [], f"put test modules in one of {KINDS}"


def test_unit_tests_start_no_server_and_no_process() -> None:
    assert servers_in_unit_tests(TESTS) == [], "such a test belongs in e2e/ or process/"


@pytest.fixture
def planted(tmp_path: Path) -> Path:
    """A small tests/ tree breaking every rule once (the checks must see each)."""
    root = tmp_path / "tests"
    for folder in ("", "support", "unit", "e2e"):
        (root / folder).mkdir(exist_ok=True)
        (root / folder / "__init__.py").write_text("")
    (root / "support" / "helpers.py").write_text("X = 1\n")
    (root / "test_loose.py").write_text("from tests.support.helpers import X\n")
    (root / "conftest.py").write_text("import tests.unit.test_a\n")
    (root / "unit" / "test_a.py").write_text(
        "def f():\n    from tests.e2e.test_b import Y\n    import subprocess\n"
    )
    (root / "e2e" / "test_b.py").write_text(
        "from . import test_c\nfrom .conftest import Z\nfrom ..support import helpers\n"
        "from tests import conftest\nfrom miva_sync.sandbox import Sandbox\n"
    )
    (root / "e2e" / "test_c.py").write_text("from ..unit.test_a import f\n")
    return root


def test_the_checks_catch_what_they_forbid(planted: Path) -> None:
    assert imports_of_test_modules(planted) == [
        "tests/conftest.py:1 imports tests.unit.test_a",
        "tests/e2e/test_b.py:1 imports tests.e2e.test_c",
        "tests/e2e/test_b.py:2 imports tests.e2e.conftest",
        "tests/e2e/test_b.py:4 imports tests.conftest",
        "tests/e2e/test_c.py:1 imports tests.unit.test_a",
        "tests/unit/test_a.py:2 imports tests.e2e.test_b",
    ]
    assert misplaced_test_modules(planted) == ["tests/test_loose.py"]
    assert servers_in_unit_tests(planted) == [
        "tests/unit/test_a.py:3 imports subprocess"
    ]

"""The dependency rule of docs/design.md §3, checked on every import in the package.

Every ``import`` counts, wherever it stands: at the top, inside a function
(the lazy imports that keep ``--help`` fast) or under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "miva_sync"

# A layer may import its own modules and those of any lower rank; two layers
# of one rank are independent of each other. Modules not listed by package
# are placed by LAYER_OF_MODULE.
RANK = {
    "entry": 8,  # __main__
    "cli": 7,
    "app": 6,
    "console": 5,
    "sync": 4,
    "sinks": 3,
    "state": 2,
    "store": 2,
    "config": 1,
    "base": 0,
}
LAYER_OF_MODULE = {
    "miva_sync": "base",  # __version__ and the lazy public API
    "miva_sync.__main__": "entry",
    "miva_sync.errors": "base",
    "miva_sync.config": "config",
    "miva_sync.console": "console",
}
# The sandbox is a separate program: it imports nothing of the client side,
# and only the commands that start it (cli, app) import it.
SANDBOX_USERS = {"cli", "app", "entry"}
# Third-party packages one layer owns.
OWNED = {"click": {"cli"}, "rich": {"console"}, "requests": {"store"}}


def layer_of(module: str) -> str:
    if module in LAYER_OF_MODULE:
        return LAYER_OF_MODULE[module]
    parts = module.split(".")
    if (len(parts) > 1 and parts[1] in RANK) or parts[1:2] == ["sandbox"]:
        return parts[1]
    raise AssertionError(f"{module} belongs to no layer: place it in test_layers.py")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, imported module) for every import in the file, absolute names."""
    module = module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    return imports_in(path.read_text(), package)


def imports_in(source: str, package: str) -> list[tuple[int, str]]:
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.append((node.lineno, name))
            # `from miva_sync import console` imports the submodule
            found += [
                (node.lineno, f"{name}.{alias.name}")
                for alias in node.names
                if target_module(f"{name}.{alias.name}") == f"{name}.{alias.name}"
            ]
    return found


def target_module(name: str) -> str:
    """The deepest existing module a dotted import name refers to."""
    parts = name.split(".")
    while parts:
        candidate = PACKAGE.parent.joinpath(*parts)
        if candidate.with_suffix(".py").exists() or (candidate / "__init__.py").exists():
            return ".".join(parts)
        parts.pop()
    return name


def violation(importer: str, imported: str) -> str | None:
    """Why ``importer`` may not import ``imported``, or None."""
    top = imported.split(".")[0]
    own = layer_of(importer)
    if top in OWNED and own not in OWNED[top]:
        return f"only {'/'.join(sorted(OWNED[top]))} may import {top}"
    if top != "miva_sync":
        return None
    target = layer_of(target_module(imported))
    if own == "sandbox" or target == "sandbox":
        if own == target:
            return None
        if own == "sandbox":
            return "the sandbox imports nothing of the client side"
        return None if own in SANDBOX_USERS else "only cli and app start the sandbox"
    if own == target:
        return None
    if RANK[target] < RANK[own]:
        return None
    if RANK[target] == RANK[own]:
        return f"{own} and {target} are independent layers"
    return f"{own} may not import the higher layer {target}"


def all_violations() -> list[str]:
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        importer = module_name(path)
        for line, imported in imports_of(path):
            why = violation(importer, imported)
            if why:
                where = path.relative_to(PACKAGE.parent)
                problems.append(f"{where}:{line}: imports {imported}: {why}")
    return problems


def test_every_import_follows_the_dependency_rule() -> None:
    assert all_violations() == []


def test_every_module_has_a_layer() -> None:
    for path in PACKAGE.rglob("*.py"):
        layer_of(module_name(path))  # raises for a module outside every layer


@pytest.mark.parametrize(
    ("importer", "imported", "expected"),
    [
        ("miva_sync.sync.pull", "miva_sync.app.session", "higher layer app"),
        ("miva_sync.sync.pull", "miva_sync.console", "higher layer console"),
        ("miva_sync.sinks.sqlite", "miva_sync.sync.pull", "higher layer sync"),
        ("miva_sync.store.client", "miva_sync.state.file", "independent"),
        ("miva_sync.sandbox.api", "miva_sync.store.query", "client side"),
        ("miva_sync.sync.pull", "miva_sync.sandbox", "start the sandbox"),
        ("miva_sync.app.session", "click", "only cli may import click"),
        ("miva_sync.sync.pager", "rich.console", "only console may import rich"),
        ("miva_sync.errors", "miva_sync.config", "higher layer config"),
    ],
)
def test_upward_imports_are_caught(importer: str, imported: str, expected: str) -> None:
    why = violation(importer, imported)
    assert why is not None and expected in why


@pytest.mark.parametrize(
    ("importer", "imported"),
    [
        ("miva_sync.cli.pull", "miva_sync.app.session"),
        ("miva_sync.app.session", "miva_sync.sandbox"),
        ("miva_sync.sync.pull", "miva_sync.sinks.base"),
        ("miva_sync.sinks.sqlite", "miva_sync.store.orders"),
        ("miva_sync.store.client", "miva_sync.config"),
        ("miva_sync.console", "miva_sync.errors"),
    ],
)
def test_downward_imports_pass(importer: str, imported: str) -> None:
    assert violation(importer, imported) is None


def test_the_walk_reads_lazy_and_relative_imports() -> None:
    """Imports inside functions and relative ones are found, with their submodule."""
    source = (
        "def f():\n"
        "    from miva_sync.app import session\n"
        "from ..store import client\n"
    )
    found = imports_in(source, "miva_sync.sync")
    assert (2, "miva_sync.app.session") in found
    assert (3, "miva_sync.store.client") in found
    assert violation("miva_sync.sync.pull", "miva_sync.app.session") is not None


def test_the_package_walk_sees_the_engine_imports() -> None:
    names = {name for _, name in imports_of(PACKAGE / "sync" / "pull.py")}
    assert "miva_sync.sinks.base" in names


def test_the_settings_copy_of_the_page_size_limit_matches_the_store() -> None:
    from miva_sync import config
    from miva_sync.store import query

    assert config.MAX_PAGE_SIZE == query.MAX_PAGE_SIZE

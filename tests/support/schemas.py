"""The published JSON Schemas of the ``--json`` objects (docs/schemas/), for
tests that validate real command output against them."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
# the command whose --json object each schema describes
NAMES = {
    "pull": "run-summary",
    "verify": "verify",
    "check": "check",
    "state show": "state-show",
}


@cache
def schema(name: str) -> dict[str, Any]:
    """``docs/schemas/NAME.schema.json``, parsed."""
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


def valid(name: str, data: Any) -> Any:
    """``data`` itself once it validates against the schema ``name``; else an
    AssertionError listing every violation with its path."""
    validator = Draft202012Validator(schema(name))
    errors = sorted(validator.iter_errors(data), key=lambda e: list(e.path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.path)) or '(top)'}: {e.message}" for e in errors
    )
    return data

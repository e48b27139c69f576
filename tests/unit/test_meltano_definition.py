"""The plugin definition users add with ``meltano add --from-ref`` declares the
same extractor as the example project (which the real-Meltano test runs)."""

from __future__ import annotations

import re
from pathlib import Path

MELTANO = Path(__file__).resolve().parents[2] / "examples" / "meltano"


def extractor_lines(text: str) -> list[str]:
    """The tap-miva entry's keys and settings, indentation and comments dropped,
    up to its connection config (which only the project has)."""
    start = re.search(r"^\s*-?\s*name: tap-miva$", text, re.M)
    assert start, "no tap-miva entry"
    lines = []
    for line in text[start.end() :].splitlines():
        stripped = line.strip()
        if stripped.startswith(("config:", "- name: target", "loaders:")):
            break
        if stripped and not stripped.startswith("#"):
            lines.append(stripped)
    return lines


def without_pip(lines: list[str]) -> list[str]:
    """The lines both files must share: where to install from differs."""
    return [line for line in lines if not line.startswith("pip_url:")]


def test_the_definition_declares_the_projects_extractor() -> None:
    project = extractor_lines((MELTANO / "meltano.yml").read_text())
    definition = extractor_lines((MELTANO / "tap-miva.yml").read_text())
    assert "executable: tap-miva" in definition
    assert "pip_url: -e /path/to/miva-sync" in definition
    assert without_pip(definition) == without_pip(project)
    assert sum(line.startswith("- name:") for line in definition) >= 10


def test_the_comparison_sees_a_setting_missing_from_the_definition() -> None:
    text = (MELTANO / "tap-miva.yml").read_text().replace("- name: timezone", "")
    project = extractor_lines((MELTANO / "meltano.yml").read_text())
    # the comparison the test above makes (pip_url aside), not a plain !=
    # that the differing pip_url lines would satisfy on their own
    assert without_pip(extractor_lines(text)) != without_pip(project)

"""Every section citation in the repository names a section that exists.

Code, tests and docs cite the two reference pages by section, as
``docs/design.md §5.2`` or ``docs/miva-api.md §3.7``. A citation of a section
that was renumbered, or never written, sends the reader nowhere, so each one is
checked against the headings of the page it names. A ``§`` that names no page
is refused outside those pages (inside them it is the page's own section), and
so is a page named without its ``docs/`` folder. RFC sections are not ours.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = {
    "design.md": ROOT / "docs" / "design.md",
    "miva-api.md": ROOT / "docs" / "miva-api.md",
}
SCANNED_FOLDERS = ("miva_sync", "tests", "docs", "benchmarks", "examples")
SUFFIXES = {".py", ".md", ".txt", ".sh", ".toml", ".service", ".timer", ".cfg"}
# this file spells out made-up citations on purpose
SELF = Path(__file__).resolve()

SECTION = r"§\d+(?:\.\d+)*"
# what may stand between a page's name and its first section: spaces, and the
# comment marker or string quotes of a citation wrapped onto the next line
GAP = r"[\s#\"'(]*"
# one citation: the page, then one section or several ("§2, §3.7", "§3.6 and
# §3.7", "§3.3-§3.4")
CITATION = re.compile(
    rf"(?P<folder>docs/)?(?P<page>design\.md|miva-api\.md){GAP}"
    rf"(?P<sections>{SECTION}(?:\s*(?:,|-|\u2013|and|or)\s*{GAP}{SECTION})*)"
)
RFC = re.compile(rf"RFC \d+ {SECTION}(?:\s*,\s*{SECTION})*")
NUMBER = re.compile(r"§(\d+(?:\.\d+)*)")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.MULTILINE)


def headings(page: Path) -> set[str]:
    """The section numbers a page's headings carry ("5", "5.2")."""
    return set(HEADING.findall(page.read_text(encoding="utf-8")))


def scanned_files() -> list[Path]:
    files = sorted(ROOT.glob("*.md"))
    for folder in SCANNED_FOLDERS:
        files += sorted(
            path
            for path in (ROOT / folder).rglob("*")
            if path.suffix in SUFFIXES
            and path.is_file()
            and "__pycache__" not in path.parts
            and path.resolve() != SELF
        )
    return files


def problems_in(text: str, where: str, sections: dict[str, set[str]]) -> list[str]:
    """Every citation in ``text`` (the file ``where``, relative to the
    repository) that names no existing section, or no page."""
    found: list[str] = []
    covered: set[int] = set()

    def line(offset: int) -> str:
        return f"{where}:{text.count(chr(10), 0, offset) + 1}"

    for cited in CITATION.finditer(text):
        covered.update(range(cited.start(), cited.end()))
        page = cited["page"]
        if cited["folder"] is None:
            found.append(f"{line(cited.start())}: write docs/{page}, not {page}")
        for number in NUMBER.findall(cited["sections"]):
            if number not in sections[page]:
                found.append(f"{line(cited.start())}: docs/{page} has no §{number}")
    for rfc in RFC.finditer(text):
        covered.update(range(rfc.start(), rfc.end()))
    folder, _, name = where.rpartition("/")
    own = sections.get(name) if folder == "docs" else None
    for bare in NUMBER.finditer(text):
        if bare.start() in covered:
            continue
        if own is None:
            found.append(
                f"{line(bare.start())}: §{bare[1]} names no page: write "
                "docs/design.md §N or docs/miva-api.md §N"
            )
        elif bare[1] not in own:
            found.append(f"{line(bare.start())}: {where} has no §{bare[1]}")
    return found


@pytest.fixture(scope="module")
def sections() -> dict[str, set[str]]:
    return {name: headings(page) for name, page in PAGES.items()}


def test_every_citation_names_an_existing_section(
    sections: dict[str, set[str]],
) -> None:
    problems = []
    for path in scanned_files():
        where = path.relative_to(ROOT).as_posix()
        problems += problems_in(path.read_text(encoding="utf-8"), where, sections)
    assert not problems, "\n".join(problems)


def test_the_scan_reads_code_tests_and_docs() -> None:
    names = {path.relative_to(ROOT).as_posix() for path in scanned_files()}
    assert {"README.md", "docs/design.md", "miva_sync/errors.py"} <= names
    assert any(name.startswith("tests/") for name in names)


def test_both_pages_have_their_numbered_sections(sections: dict[str, set[str]]) -> None:
    assert {"1", "2", "3", "3.1", "4", "5", "5.2", "6", "7"} <= sections["design.md"]
    assert {"0", "2.4", "3.7", "4.3", "6.1", "10"} <= sections["miva-api.md"]


CODE = "miva_sync/example.py"
DOC = "docs/miva-api.md"


@pytest.mark.parametrize(
    ("text", "where", "expected"),
    [
        ("see docs/design.md §99", CODE, "docs/design.md has no §99"),
        ("see docs/design.md §5.99", CODE, "docs/design.md has no §5.99"),
        ("(docs/miva-api.md §2.4, §99)", CODE, "docs/miva-api.md has no §99"),
        ("(docs/miva-api.md §3.6 and §42)", CODE, "docs/miva-api.md has no §42"),
        ("# wrapped: docs/miva-api.md\n# §77 here", CODE, "has no §77"),
        ("see design.md §5", CODE, "write docs/design.md"),
        ("the padding (§2.3)", CODE, "names no page"),
        ("a page's own §55", DOC, "docs/miva-api.md has no §55"),
    ],
)
def test_a_made_up_or_unnamed_citation_is_caught(
    sections: dict[str, set[str]], text: str, where: str, expected: str
) -> None:
    problems = problems_in(text, where, sections)
    assert len(problems) == 1 and expected in problems[0], problems


@pytest.mark.parametrize(
    "text",
    [
        "see docs/design.md §5.2 and docs/miva-api.md §3.7",
        "(docs/miva-api.md §2, §3.7)",
        "(docs/miva-api.md §3.3-§3.4)",
        '"(docs/miva-api.md "\n    "§6.1)"',
        "framed as RFC 9112 §6, §7.1 says",
    ],
)
def test_real_citations_pass(sections: dict[str, set[str]], text: str) -> None:
    assert problems_in(text, CODE, sections) == []

"""One console: the only writer to stderr, its rules, and the run summary it renders."""

from __future__ import annotations

import ast
import json
import logging
from datetime import UTC
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from miva_sync import console
from miva_sync.sync.summary import RunSummary, Tally

PACKAGE = Path(__file__).resolve().parents[2] / "miva_sync"
# the console, the guard that makes a closed stderr safe before anything runs,
# and the sandbox (a separate program with its own messages)
MAY_WRITE_STDERR = {"console.py", "base/stdio.py"}


def stderr_writes(source: str) -> list[int]:
    """Lines that write to stderr other than through the console."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and node.attr in ("stderr", "__stderr__"):
            if isinstance(node.value, ast.Name) and node.value.id == "sys":
                found.append(node.lineno)
        elif isinstance(node, ast.ImportFrom) and node.module == "sys":
            if any(a.name in ("stderr", "__stderr__") for a in node.names):
                found.append(node.lineno)
        elif isinstance(node, ast.Call) and (
            _echoes_to_stderr(node) or _writes_fd_2(node)
        ):
            found.append(node.lineno)
    return found


def _echoes_to_stderr(call: ast.Call) -> bool:
    """``click.echo(…, err=True)`` or ``secho``. Prompts (``click.prompt``,
    ``click.confirm``) ask a person at a terminal: they stay with the command."""
    func = call.func
    name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
    return name in ("echo", "secho") and any(
        k.arg == "err" and not _false(k.value) for k in call.keywords
    )


def _false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and not node.value


def _writes_fd_2(call: ast.Call) -> bool:
    """``os.write(2, …)``."""
    func = call.func
    return (
        isinstance(func, ast.Attribute)
        and func.attr == "write"
        and isinstance(func.value, ast.Name)
        and func.value.id == "os"
        and bool(call.args)
        and isinstance(call.args[0], ast.Constant)
        and call.args[0].value == 2
    )


def test_only_the_console_writes_to_stderr() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        name = path.relative_to(PACKAGE).as_posix()
        if name in MAY_WRITE_STDERR or name.startswith("sandbox/"):
            continue
        offenders += [f"{name}:{n}" for n in stderr_writes(path.read_text())]
    assert offenders == []


@pytest.mark.parametrize(
    "code",
    [
        "import sys\nsys.stderr.write('x')\n",
        "import sys\nprint('x', file=sys.stderr)\n",
        "from sys import stderr\n",
        "import click\nclick.echo('x', err=True)\n",
        "import os\nos.write(2, b'x')\n",
    ],
)
def test_the_stderr_walk_finds_each_way_of_writing(code: str) -> None:
    assert stderr_writes(code) != []


def test_the_stderr_walk_lets_stdout_through() -> None:
    assert stderr_writes("import click\nclick.echo('x', err=False)\nprint(1)\n") == []


# -- lines --------------------------------------------------------------------------------


def test_text_lines_and_quiet(capsys: pytest.CaptureFixture[str]) -> None:
    console.info("hello")
    console.note("mind this")
    console.warning("careful", command="listen")
    console.error("broken", exit_code=3)
    with console.configured(quiet=True):
        console.info("not shown")
        console.note("still shown")
    assert capsys.readouterr().err == (
        "miva-sync: hello\n"
        "miva-sync: note: mind this\n"
        "miva-sync listen: warning: careful\n"
        "miva-sync: error: broken\n"
        "miva-sync: note: still shown\n"
    )


def test_json_lines_carry_level_fields_and_command(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with console.configured(log_format="json"):
        console.info("hello", command="listen", event="start")
        console.error("broken", exit_code=3)
    console.info("text again")  # the rules are back as they were
    first, second, third = capsys.readouterr().err.splitlines()
    hello, broken = json.loads(first), json.loads(second)
    assert hello["level"] == "info" and hello["logger"] == "miva_sync"
    assert (hello["message"], hello["command"], hello["event"]) == (
        "hello",
        "listen",
        "start",
    )
    assert (broken["level"], broken["exit_code"]) == ("error", 3)
    assert third == "miva-sync: text again"


def test_log_records_follow_the_rules(capsys: pytest.CaptureFixture[str]) -> None:
    log = logging.getLogger("miva_sync.store.client")
    level = logging.getLogger("miva_sync").level
    with console.configured(verbose=1, logs=True):
        log.info("retrying")
        log.debug("not at -v")
        with console.configured(log_format="json"):
            log.warning("odd answer")
    assert logging.getLogger("miva_sync").level == level  # restored
    text, record = capsys.readouterr().err.splitlines()
    assert text == "miva-sync: retrying"
    line = json.loads(record)
    assert (line["level"], line["logger"], line["message"]) == (
        "warning",
        "miva_sync.store.client",
        "odd answer",
    )


def test_relay_labels_each_childs_lines(capsys: pytest.CaptureFixture[str]) -> None:
    console.relay("shop", "miva-sync: 3 orders emitted\nmiva-sync: error: no\n")
    assert capsys.readouterr().err == (
        "[shop] miva-sync: 3 orders emitted\n[shop] miva-sync: error: no\n"
    )
    child = json.dumps({"level": "info", "logger": "miva_sync", "message": "done"})
    with console.configured(log_format="json"):
        console.relay("shop", f"{child}\nTraceback (most recent call last):\n")
    done, stray = (json.loads(x) for x in capsys.readouterr().err.splitlines())
    assert (done["message"], done["profile"]) == ("done", "shop")
    assert stray["message"].startswith("Traceback") and stray["profile"] == "shop"


# -- the run summary ----------------------------------------------------------------------


def summary(mode: str, **fields: Any) -> RunSummary:
    tally = Tally(emitted=12, unchanged=3, requests=5, seconds=1.26)
    context = {k: fields.pop(k) for k in list(fields) if not hasattr(tally, k)}
    for name, value in fields.items():
        setattr(tally, name, value)
    return tally.freeze(mode, **context)


@pytest.mark.parametrize(
    ("made", "line"),
    [
        (
            summary("number", watermark=1042, lo=1012),
            "12 orders emitted, 3 unchanged skipped; number watermark #1042, "
            "queried from #1012; 5 requests in 1.3s",
        ),
        (
            summary("date", watermark=None, lo=0, saves_state=False, held=2),
            "12 orders emitted, 3 unchanged skipped, 2 held unpaid, 0 released; "
            "date watermark -, queried from 1970-01-01T00:00:00Z; 5 requests in "
            "1.3s; saved state untouched",
        ),
        (
            summary(
                "updated",
                watermark=86400,
                lo=3600,
                zone=ZoneInfo("America/Los_Angeles"),
            ),
            "12 orders emitted, 3 unchanged skipped; updated watermark "
            "1970-01-02T00:00:00Z (1970-01-01T16:00:00-08:00 America/Los_Angeles), "
            "queried from 1970-01-01T01:00:00Z (1969-12-31T17:00:00-08:00 "
            "America/Los_Angeles); 5 requests in 1.3s",
        ),
        (
            summary("queue", queue_code="new", ack=True, acknowledged=12, newer=1,
                    drained=True),
            "12 orders emitted, 3 unchanged skipped; queue new: 12 acknowledged, "
            "1 newer after acknowledgement; drained; 5 requests in 1.3s",
        ),
        (
            summary("queue", queue_code="new", ack=False, recovered=2, released=1),
            "12 orders emitted, 3 unchanged skipped, 0 held unpaid, 1 released; "
            "queue new: not acknowledged, 2 recovered; not drained; 5 requests in "
            "1.3s",
        ),
        (
            summary("ids", requested=14, saves_state=False),
            "re-sent 12 of 14 orders; saved state untouched",
        ),
    ],
)  # fmt: skip
def test_describe_is_each_modes_closing_line(made: RunSummary, line: str) -> None:
    assert made.describe() == line


def test_the_reporter_prints_the_summary_as_text_or_one_json_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    made = summary("number", watermark=1042, lo=1012, cursor_field="id").finished(0)
    console.ConsoleReporter(progress=False).summary(made)
    assert capsys.readouterr().err == f"miva-sync: {made.describe()}\n"
    console.ConsoleReporter(quiet=True, progress=False).summary(made)
    assert capsys.readouterr().err == ""

    with console.configured(log_format="json"):
        console.ConsoleReporter(progress=False).summary(made)
    (line,) = capsys.readouterr().err.splitlines()
    record = json.loads(line)
    assert record["event"] == "summary" and record["message"] == made.describe()
    assert {k: record[k] for k in made.to_json()} == made.to_json()
    assert record["watermark"] == 1042 and record["exit_status"] == 0
    assert record["zone"] == "UTC" and record["warnings"] == []


def test_a_table_is_the_answer_itself_unprefixed_even_under_quiet(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A dry run's plan: aligned rows, no ``miva-sync:`` prefix, shown under -q."""
    rows = {"dry run": "nothing is written", "mode": "date"}
    for quiet in (False, True):
        console.ConsoleReporter(quiet=quiet, progress=False).table(rows)
        assert capsys.readouterr().err == "dry run  nothing is written\n   mode  date\n"


def test_a_summary_is_frozen_and_counts_new_and_updated_orders() -> None:
    tally = Tally()
    known = {1, 2}
    tally.wrote([{"id": 1}, {"id": 3}, {"id": 2}], known.__contains__)
    made = tally.freeze("date", zone=UTC)
    assert (made.emitted, made.new, made.updated) == (3, 1, 2)
    with pytest.raises(AttributeError):
        made.emitted = 0  # type: ignore[misc]

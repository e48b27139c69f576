"""One console: ``listen``, a long-running server, follows --log-format and
NO_COLOR like every other command (it used to write its own text lines)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from tests.support import webhook
from tests.support.helpers import read_jsonl
from tests.support.webhook import Receiver

receivers = webhook.receivers  # the fixture: every receiver started is killed

ORDER = {"id": 7, "orderdate": 100, "dt_updated": 300, "items": []}


def test_listen_log_format_json_prints_only_json_lines(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    target = tmp_path / "w.jsonl"
    receiver = Receiver(target, tmp_path / "home", args=("--log-format", "json"))
    receivers.append(receiver)
    assert receiver.deliver(ORDER) == "written"
    code, _out, err = receiver.stop()
    assert code == 0
    assert read_jsonl(target) == [ORDER]

    lines = [json.loads(line) for line in err.splitlines()]  # each one is JSON
    assert all(line["logger"] == "miva_sync" for line in lines)
    assert all(line["command"] == "listen" for line in lines)
    events = {line.get("event"): line for line in lines}
    assert "receiving at http://127.0.0.1:" in events["start"]["message"]
    request = events["request"]
    assert (request["method"], request["path"], request["status"]) == (
        "POST",
        "/webhook/…",
        200,
    )
    assert (request["order"], request["result"]) == (7, "written")
    assert events["stop"]["message"] == "stopped"
    # without a store connection it warns, as a JSON line too
    warning = next(line for line in lines if line["level"] == "warning")
    assert warning["message"].startswith("no store connection configured")
    assert "s3cret" not in err  # the secret path stays out of the log


@pytest.mark.parametrize("quiet", [(), ("-q",)])
def test_listen_text_lines_are_unchanged(
    tmp_path: Path, receivers: list[Receiver], quiet: tuple[str, ...]
) -> None:
    # its lines are a server's access log: -q has never silenced them
    receiver = Receiver(tmp_path / "w.jsonl", tmp_path / "home", args=quiet)
    receivers.append(receiver)
    receiver.deliver(ORDER)
    code, _out, err = receiver.stop()
    assert code == 0
    lines = err.splitlines()
    assert lines[0].startswith(
        "miva-sync listen: warning: no store connection configured; deliveries "
    )
    assert lines[1].startswith("miva-sync listen: receiving at http://127.0.0.1:")
    assert lines[2].endswith(' "POST /webhook/…" 200 order 7 written')
    assert lines[-1] == "miva-sync listen: stopped"


def test_listen_honours_no_color(tmp_path: Path, receivers: list[Receiver]) -> None:
    # FORCE_COLOR styles the warning even though stderr is a pipe; NO_COLOR wins
    plain = Receiver(
        tmp_path / "a.jsonl",
        tmp_path / "home",
        env={"FORCE_COLOR": "1", "NO_COLOR": "1", "TERM": "xterm-256color"},
    )
    receivers.append(plain)
    _code, _out, err = plain.stop()
    assert "no store connection configured" in err
    assert "\x1b[" not in err

    coloured = Receiver(
        tmp_path / "b.jsonl",
        tmp_path / "home",
        env={"FORCE_COLOR": "1", "TERM": "xterm-256color"},
    )
    receivers.append(coloured)
    _code, _out, err = coloured.stop()
    assert "\x1b[" in err  # the control: the same run does carry escapes


def test_a_pull_ends_with_one_json_summary_carrying_its_exit_status(
    run: Any, isolated_home: Path
) -> None:
    """--log-format json: the run summary is the last stderr line, every field
    of it, the exit status included (what a script reads instead of text)."""
    with Sandbox(orders=120, seed=5) as sandbox:
        result = run(
            ["--log-format", "json", "pull", "--since", "30d"], env=sandbox.env()
        )
        assert result.exit_code == 0, result.stderr
        last = json.loads(result.stderr.splitlines()[-1])
        assert last["event"] == "summary" and last["exit_status"] == 0
        assert last["mode"] == "date"
        assert last["emitted"] == len(result.stdout.splitlines())

        resent = run(
            ["--log-format", "json", "pull", "--ids", "1000,999999"], env=sandbox.env()
        )
        assert resent.exit_code == 2
        summary, error = (json.loads(x) for x in resent.stderr.splitlines()[-2:])
        assert (summary["event"], summary["exit_status"], summary["emitted"]) == (
            "summary",
            2,
            1,
        )
        assert error["level"] == "error" and "999999" in error["message"]

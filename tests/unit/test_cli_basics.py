"""The command line's contract: exit codes, one-line errors, no secrets, colour.

Start-up imports and request logging need a fresh interpreter: they are in
tests/e2e/test_cli_basics.py.
"""

from __future__ import annotations

from typing import Any

import pytest
import responses

from tests.support.fakes import KEY, STORE_URL, TOKEN


def test_cli_bad_flag_is_one_line_exit_2(run: Any) -> None:
    result = run(["check", "--no-such-flag"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1
    assert "no-such-flag" in result.stderr
    assert result.stdout == ""


def test_cli_exits_3_when_settings_missing(run: Any) -> None:
    result = run(["check"])
    assert result.exit_code == 3
    assert "MIVA_URL" in result.stderr and "MIVA_API_TOKEN" in result.stderr


def test_cli_check_reports_the_store(
    run: Any, api: responses.RequestsMock, store_env: dict[str, str]
) -> None:
    api.post(
        STORE_URL,
        json={"success": 1, "data": {"total_count": 42, "start_offset": 0, "data": []}},
    )
    result = run(["check"])
    assert result.exit_code == 0, result.stderr
    assert "42 orders" in result.stderr
    assert result.stdout == ""


@pytest.mark.parametrize(
    ("reply", "code"),
    [
        (
            {
                "status": 401,
                "json": {"success": 0, "error_message": "Signature mismatch"},
            },
            4,
        ),
        (
            {
                "status": 200,
                "json": {
                    "success": 0,
                    "error_code": "invalid_function",
                    "error_message": "Invalid function",
                },
            },
            5,
        ),
        ({"status": 503, "body": "<html>down</html>"}, 6),
        ({"status": 200, "body": "<html>maintenance</html>"}, 6),
    ],
)
def test_cli_maps_store_failures_to_exit_codes(
    run: Any,
    api: responses.RequestsMock,
    store_env: dict[str, str],
    reply: dict[str, Any],
    code: int,
) -> None:
    api.post(STORE_URL, **reply)
    result = run(["check"])
    assert result.exit_code == code
    # check draws its table of rows first; the error is still one final line
    assert result.stderr.splitlines()[-1].startswith("miva-sync: error: check failed")
    assert result.stdout == ""
    assert "Traceback" not in result.stderr
    assert TOKEN not in result.stderr and KEY not in result.stderr


def test_cli_flags_override_environment(
    run: Any, api: responses.RequestsMock, store_env: dict[str, str]
) -> None:
    other = "https://other.example.com/mm5/json.mvc"
    api.post(
        other,
        json={"success": 1, "data": {"total_count": 0, "start_offset": 0, "data": []}},
    )
    result = run(["check", "--url", other])
    assert result.exit_code == 0, result.stderr


def test_cli_profile_from_config_file(
    run: Any, api: responses.RequestsMock, isolated_home: Any
) -> None:
    (isolated_home / "config.toml").write_text(
        f'[profiles.shop]\nurl = "{STORE_URL}"\nstore_code = "PS"\napi_token = "{TOKEN}"\n'
    )
    api.post(
        STORE_URL,
        json={"success": 1, "data": {"total_count": 3, "start_offset": 0, "data": []}},
    )
    result = run(["--profile", "shop", "check"])
    assert result.exit_code == 0, result.stderr
    assert api.calls[0].request.headers["X-Miva-API-Authorization"] == f"MIVA {TOKEN}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("[profiles.shop\n", "cannot read config file"),
        ("[profiles.shop]\nsecret = 1\n", "unknown keys"),
    ],
)
def test_cli_bad_config_file_is_exit_3(
    run: Any, isolated_home: Any, content: str, message: str
) -> None:
    (isolated_home / "config.toml").write_text(content)
    result = run(["--profile", "shop", "check"])
    assert result.exit_code == 3
    assert message in result.stderr


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"MIVA_SYNC_TIMEOUT": "soon"}, "timeout must be a number"),
        ({"MIVA_SYNC_MAX_RPS": "0"}, "max-rps must be at least"),
        ({"MIVA_SIGNING_KEY": "%%%"}, "not valid base64"),
    ],
)
def test_cli_bad_environment_values_are_exit_3(
    run: Any,
    store_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    env: dict[str, str],
    message: str,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    result = run(["check"])
    assert result.exit_code == 3
    assert message in result.stderr


def test_cli_one_line_error_without_the_check_table(
    run: Any, api: responses.RequestsMock, store_env: dict[str, str]
) -> None:
    api.post(STORE_URL, status=401, json={"success": 0, "error_message": "nope"})
    result = run(["check", "-q"])
    assert result.exit_code == 4
    assert result.stderr.startswith("miva-sync: error: ")
    assert result.stderr.count("\n") == 1


def test_cli_log_format_json_makes_errors_json_lines(run: Any) -> None:
    import json

    result = run(["check", "--log-format", "json"])
    assert result.exit_code == 3
    line = json.loads(result.stderr.strip().splitlines()[-1])
    assert line["level"] == "error" and line["exit_code"] == 3
    assert "MIVA_URL" in line["message"]


def test_cli_log_format_flag_beats_the_variable_and_a_bad_variable_is_refused(
    run: Any,
) -> None:
    flag_wins = run(
        ["--log-format", "text", "pull", "--since", "x"],
        env={"MIVA_SYNC_LOG_FORMAT": "json"},
    )
    assert flag_wins.exit_code == 2
    assert flag_wins.stderr.startswith("miva-sync: error: "), flag_wins.stderr
    bad = run(
        ["pull", "--sandbox", "--since", "1d"], env={"MIVA_SYNC_LOG_FORMAT": "xml"}
    )
    assert bad.exit_code == 3 and bad.stdout == ""
    assert bad.stderr == (
        "miva-sync: error: MIVA_SYNC_LOG_FORMAT must be text or json, not 'xml'\n"
    )


def test_ui_no_color_means_no_escape_sequences(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from miva_sync import console as ui
    from miva_sync.app.check import Row

    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.setenv("FORCE_COLOR", "1")  # as if on a colour terminal
    monkeypatch.setenv("TERM", "xterm-256color")
    ui.print_check([Row("authentication", "fail", "refused", 4)])
    reporter = ui.ConsoleReporter(progress=False)
    reporter.console.force_terminal = True
    reporter.warn("careful")
    err = capsys.readouterr().err
    assert "FAIL" in err and "careful" in err
    assert "\x1b[" not in err


def test_ui_colours_without_no_color(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # the control for the test above: the same output does carry escapes
    from miva_sync import console as ui

    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setenv("FORCE_COLOR", "1")
    monkeypatch.setenv("TERM", "xterm-256color")
    reporter = ui.ConsoleReporter(progress=False)
    reporter.warn("careful")
    assert "\x1b[" in capsys.readouterr().err


def test_cli_internal_error_is_one_line_exit_1_and_debug_shows_it(
    run: Any, monkeypatch: pytest.MonkeyPatch, store_env: dict[str, str]
) -> None:
    """docs/design.md §7: a bug is exit 1 and one line, never a traceback."""
    import miva_sync.app.pull

    def bug(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError(f"boom with {TOKEN}")

    monkeypatch.setattr(miva_sync.app.pull, "run_pull", bug)
    result = run(["pull", "--since", "1d", "-o", "-"])
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "internal error (RuntimeError)" in result.stderr
    assert "Traceback" not in result.stderr and TOKEN not in result.stderr
    with pytest.raises(RuntimeError, match="boom"):
        run(["--debug", "pull", "--since", "1d", "-o", "-"])

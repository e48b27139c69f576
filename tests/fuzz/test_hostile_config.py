"""Fuzz the config file: every command that loads it fails with one clear line and exit 3.

A wrong value must never be str()-ed into a setting (``state_file = 5`` used to
write the state to ``./5``; ``timeout = true`` meant one second), crash (NUL
bytes, deep nesting, a timeout too large for a socket), or show a secret.
"""

from __future__ import annotations

import os
import random
import zoneinfo
from pathlib import Path
from typing import Any

import pytest
import responses

from miva_sync.config import PROFILE_KEYS
from tests.support.fakes import KEY, STORE_URL, TOKEN
from tests.support.hostile import assert_clean_failure

SEED = 1111
WEBHOOK_SECRET = "hook-secret-0123456789abcdef"
SECRETS = (TOKEN, KEY, WEBHOOK_SECRET)
BASE = {
    "url": f'"{STORE_URL}"',
    "store_code": '"PS"',
    "api_token": f'"{TOKEN}"',
    "signing_key": f'"{KEY}"',
    "webhook_secret": f'"{WEBHOOK_SECRET}"',
}
STRING_KEYS = {"url", "store_code", "api_token", "signing_key", "digest", "state_file",
               "webhook_secret"}  # fmt: skip
NUMBER_KEYS = {"timeout": 0.1, "retry_budget": 0.0, "max_rps": 0.001}  # key: minimum

# TOML literals of every type, with their Python value (for the oracle below)
VALUES: list[tuple[str, Any]] = [
    ("5", 5), ("-1", -1), ("0", 0), ("9223372036854775807", 2**63 - 1), ("1.5", 1.5),
    ("nan", float("nan")), ("inf", float("inf")), ("true", True), ("false", False),
    ("[1]", [1]), ("[]", []), ("{a = 1}", {"a": 1}), ("1979-05-27T07:32:00Z", "datetime"),
    ("07:32:00", "time"), ('"x"', "x"), ('"\\u0000x"', "\x00x"), ('"30"', "30"),
    ('"45m"', "45m"), ('"sha1"', "sha1"), ('"  "', "  "),
]  # fmt: skip
COMMANDS = (["config", "show"], ["state", "show"], ["check"], ["pull", "--since", "1d"])


def wrong(key: str, value: Any) -> bool:
    """Must this value of this profile key be refused (exit 3)? An independent oracle."""
    if isinstance(value, str) and "\x00" in value:
        return True
    if value in ("datetime", "time"):
        return True
    if key in STRING_KEYS:
        if not isinstance(value, str):
            return True
        if key == "url":
            return value.strip() != "" and not value.startswith("http")
        if key == "digest":
            return value.lower().replace("-", "") not in ("", "sha1", "sha256")
        return False
    if key in NUMBER_KEYS:
        if isinstance(value, bool | list | dict):
            return True
        try:
            number = float(value)
        except ValueError:
            return True
        too_big = key == "timeout" and number > 86400
        return not number >= NUMBER_KEYS[key] or number == float("inf") or too_big
    if key == "timezone":  # an IANA name; blank means the default, UTC
        zones = ("", *zoneinfo.available_timezones())
        return not isinstance(value, str) or value.strip() not in zones
    if key == "insecure":
        words = ("1", "true", "yes", "on", "0", "false", "no", "off")
        if isinstance(value, str):
            return value.strip().lower() not in words
        return not isinstance(value, bool)
    if key == "page_size":
        return (
            isinstance(value, bool)
            or not isinstance(value, int)
            or not 1 <= value <= 1000
        )
    # output, overlap, lookback, queue, columns: a string (or an int) that parses
    if isinstance(value, bool) or not isinstance(value, str | int):
        return True
    text = str(value).strip()
    if not text:
        return True
    if key == "lookback" or (key == "overlap" and not text.isdigit()):
        return not (text[:-1].isdigit() and text[-1] in "smhdw")
    return False


def write_config(
    home: Path, key: str | None, literal: str | None, extra: str = ""
) -> str:
    profile = dict(BASE)
    if key is not None:
        assert literal is not None
        profile[key] = literal
    text = 'default_profile = "shop"\n[profiles.shop]\n'
    text += "".join(f"{k} = {v}\n" for k, v in profile.items()) + extra
    path = home / "config.toml"
    path.write_text(text)
    path.chmod(0o600)
    return text


@pytest.fixture(autouse=True)
def _cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a relative state_file or output must not land in the repository
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)


@pytest.fixture
def no_network() -> Any:
    # any request is a connection error (exit 6): a rejected config never gets that far
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        yield mock


def test_hostile_config_every_key_every_type(
    run: Any, isolated_home: Path, no_network: Any
) -> None:
    checked = refused = 0
    for key in sorted(PROFILE_KEYS):
        for literal, value in VALUES:
            if key in ("signing_key",) and isinstance(value, str):
                continue  # base64 rules: covered by test_cli_bad_environment_values
            text = write_config(isolated_home, key, literal)
            case = f"{key} = {literal}\n{text}"
            if not wrong(key, value):
                result = run(["config", "show"])
                assert result.exit_code == 0, f"{case}: refused: {result.stderr}"
                checked += 1
                continue
            for command in COMMANDS:
                result = run(command)
                assert_clean_failure(result, 3, f"{command} with {case}", SECRETS)
                refused += 1
    assert refused > 300 and checked > 20  # the oracle is not trivially one-sided


def test_hostile_config_random_combinations(
    run: Any, isolated_home: Path, no_network: Any
) -> None:
    rng = random.Random(SEED)
    keys = sorted(PROFILE_KEYS - {"signing_key"})
    for i in range(150):
        chosen = rng.sample(keys, rng.randint(1, 3))
        picks = {k: rng.choice(VALUES) for k in chosen}
        profile = dict(BASE)
        profile.update({k: literal for k, (literal, _) in picks.items()})
        text = 'default_profile = "shop"\n[profiles.shop]\n'
        text += "".join(f"{k} = {v}\n" for k, v in profile.items())
        (isolated_home / "config.toml").write_text(text)
        case = f"seed {SEED} case {i}: {picks}"
        expect_wrong = any(wrong(k, v) for k, (_, v) in picks.items())
        result = run(["config", "show", "--json"])
        if expect_wrong:
            assert_clean_failure(result, 3, case, SECRETS)
            assert_clean_failure(run(["pull", "--since", "1d"]), 3, case, SECRETS)
        else:
            assert result.exit_code == 0, f"{case}: {result.stderr}"
            assert all(s not in result.stdout for s in SECRETS), case


BROKEN_FILES: list[tuple[str, bytes]] = [
    ("bad TOML", b"[profiles.shop\nurl = 1\n"),
    ("unterminated string", b'[profiles.shop]\nurl = "https://x\n'),
    ("duplicate key", b'[profiles.shop]\nurl = "a"\nurl = "b"\n'),
    ("deeply nested array", b"x = " + b"[" * 20_000 + b"]" * 20_000 + b"\n"),
    ("deeply nested table", b"x = " + b"{a=" * 5_000 + b"1" + b"}" * 5_000 + b"\n"),
    ("non-UTF-8", b'[profiles.shop]\nurl = "\xff\xfe"\n'),
    ("NUL byte", b"[profiles.shop]\x00\n"),
    ("huge then broken", b"# " + b"x" * 4_000_000 + b"\n[[[\n"),
    ("profiles not a table", b'default_profile = "shop"\nprofiles = 5\n'),
    ("profile not a table", b'default_profile = "shop"\n[profiles]\nshop = 5\n'),
    ("missing default profile", b'default_profile = "nope"\n[profiles.shop]\nurl = "x"\n'),
    ("default_profile a list", b"default_profile = [1]\n[profiles.shop]\n"),
    ("unknown key", b'default_profile = "shop"\n[profiles.shop]\ntoken = "x"\n'),
    # an unset variable is not a broken file: only commands that use the store
    # fail on it (issue 19; tests/e2e/test_lazy_secrets.py)
    ("env ref malformed", b'default_profile = "shop"\n[profiles.shop]\n'
     b'url = "https://s.example.com/mm5/json.mvc"\nstore_code = "PS"\n'
     b'api_token = "env:1-BAD"\n'),
    ("env ref empty", b'default_profile = "shop"\n[profiles.shop]\n'
     b'url = "https://s.example.com/mm5/json.mvc"\nstore_code = "PS"\n'
     b'webhook_secret = "env:"\n'),
]  # fmt: skip


@pytest.mark.parametrize(
    ("name", "content"), BROKEN_FILES, ids=[n for n, _ in BROKEN_FILES]
)
def test_hostile_config_broken_files(
    run: Any, isolated_home: Path, no_network: Any, name: str, content: bytes
) -> None:
    path = isolated_home / "config.toml"
    path.write_bytes(content)
    path.chmod(0o600)
    for command in COMMANDS:
        result = run(command)
        assert_clean_failure(result, 3, f"{name}: {command}")
        assert (
            "cannot read config file" in result.stderr or "profile" in result.stderr
        ), f"{name}: {result.stderr}"


def test_hostile_config_a_directory_instead_of_a_file(
    run: Any, isolated_home: Path, no_network: Any
) -> None:
    (isolated_home / "config.toml").mkdir()
    for command in COMMANDS:
        assert_clean_failure(run(command), 3, f"directory: {command}")


def test_hostile_config_unreadable_file(
    run: Any, isolated_home: Path, no_network: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = isolated_home / "config.toml"
    write_config(isolated_home, None, None)
    path.chmod(0o000)
    if os.geteuid() == 0:  # root reads it anyway: make the read fail as it would
        real = Path.read_text

        def denied(self: Path, *args: Any, **kwargs: Any) -> str:
            if self == path:
                raise PermissionError(13, "Permission denied", str(self))
            return real(self, *args, **kwargs)

        monkeypatch.setattr(Path, "read_text", denied)
    for command in COMMANDS:
        result = run(command)
        assert_clean_failure(result, 3, f"unreadable: {command}", SECRETS)
        assert "Permission denied" in result.stderr


def test_regression_deeply_nested_config_is_exit_3_not_internal_error(
    run: Any, isolated_home: Path
) -> None:
    # tomllib parses recursively: RecursionError escaped as exit 1
    (isolated_home / "config.toml").write_text("x = " + "[" * 5000 + "]" * 5000 + "\n")
    result = run(["config", "show"])
    assert_clean_failure(result, 3, "deep TOML")
    assert "nested too deeply" in result.stderr


@pytest.mark.parametrize(
    ("key", "literal"),
    [("state_file", "5"), ("state_file", "[1]"), ("store_code", "{a = 1}"),
     ("api_token", "123"), ("url", "true"), ("timeout", "true"), ("retry_budget", "[1]"),
     ("max_rps", "1979-05-27T07:32:00Z"), ("insecure", "5"), ("digest", "[]")],
)  # fmt: skip
def test_regression_wrong_toml_type_is_exit_3_not_silently_coerced(
    run: Any, isolated_home: Path, key: str, literal: str
) -> None:
    # these were str()-ed: state_file = 5 wrote the state to ./5, timeout = true was 1 s
    write_config(isolated_home, key, literal)
    result = run(["config", "show"])
    assert_clean_failure(result, 3, f"{key} = {literal}", SECRETS)
    assert key in result.stderr
    assert not Path("5").exists() and not Path("[1]").exists()


@pytest.mark.parametrize("key", ["state_file", "output"])
def test_regression_nul_in_a_profile_value_is_exit_3(
    run: Any, isolated_home: Path, no_network: Any, key: str
) -> None:
    # "a\u0000" reached os.open: ValueError "embedded null byte", exit 1
    write_config(isolated_home, key, '"a\\u0000b"')
    for command in (["state", "show"], ["pull", "--since", "1d"]):
        assert_clean_failure(run(command), 3, f"{key} with NUL: {command}", SECRETS)


@pytest.mark.parametrize("value", ["1e18", "9223372036854775807", "1e300"])
def test_regression_huge_timeout_is_exit_3_not_overflow(
    run: Any,
    store_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    no_network: Any,
    value: str,
) -> None:
    # a timeout beyond what a socket or a timer takes: OverflowError, exit 1
    monkeypatch.setenv("MIVA_SYNC_TIMEOUT", value)
    result = run(["check"])
    assert_clean_failure(result, 3, f"timeout {value}")
    assert "timeout must be at most" in result.stderr


def test_hostile_config_values_that_are_fine_still_work(
    run: Any, isolated_home: Path
) -> None:
    extra = ('timeout = 30\nretry_budget = "0"\nmax_rps = 2.5\ninsecure = false\n'
             'page_size = 10\noverlap = 30\nlookback = "15m"\nstate_file = "st.json"\n')  # fmt: skip
    write_config(isolated_home, None, None, extra)
    result = run(["config", "show", "--json"])
    assert result.exit_code == 0, result.stderr
    assert all(s not in result.stdout + result.stderr for s in SECRETS)


@pytest.mark.parametrize("value", ["[1]", "{a = 1}"])
def test_regression_default_profile_of_the_wrong_type_is_exit_3(
    run: Any, isolated_home: Path, value: str
) -> None:
    # default_profile = [1] was looked up in a dict: TypeError (unhashable), exit 1
    (isolated_home / "config.toml").write_text(f"default_profile = {value}\n")
    result = run(["config", "show"])
    assert_clean_failure(result, 3, f"default_profile = {value}")
    assert "default_profile" in result.stderr

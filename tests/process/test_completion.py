"""Shell completion (issue 21): the real program, driven the way bash drives
it, offers the config file's profile names and the queue codes the state file
has seen, and stays silent, never failing, on broken files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.helpers import write_config

CONFIG = """\
default_profile = "shop"

[profiles.shop]
url = "http://127.0.0.1:9/mm5/json.mvc"
store_code = "PS"
api_token = "env:SHOP_TOKEN"

[profiles.outlet]
url = "http://127.0.0.1:9/outlet/mm5/json.mvc"
store_code = "OUT"
queue = "outlet_new"
"""


def state_document(*codes: str, received: str | None = None) -> dict[str, object]:
    cursor: dict[str, object] = {"queue_code": codes[0], "ack": received is None}
    if received:
        cursor["received_queue"] = received
    for code in codes[1:]:
        cursor = {"queue_code": code, "previous": cursor}
    record = {"mode": "queue", "cursors": {"queue": cursor}}
    return {"version": 1, "stores": {"shop": record}}


def complete(home: Path, words: str, **env: str) -> subprocess.CompletedProcess[str]:
    """What bash's completion function asks: the values for the last word."""
    argv = words.split(" ")
    full = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    full.update(
        _MIVA_SYNC_COMPLETE="bash_complete",
        COMP_WORDS=" ".join(["miva-sync", *argv]),
        COMP_CWORD=str(len(argv)),
        MIVA_SYNC_HOME=str(home),
        **env,
    )
    return subprocess.run(
        [sys.executable, "-m", "miva_sync"],
        env=full, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def offered(done: subprocess.CompletedProcess[str]) -> list[str]:
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    return [line.partition(",")[2] for line in done.stdout.splitlines() if line]


@pytest.fixture
def home(isolated_home: Path) -> Path:
    home = isolated_home
    write_config(home, CONFIG)
    document = state_document("new_updated_orders", received="received_orders")
    (home / "state.json").write_text(json.dumps(document))
    return home


@pytest.mark.parametrize(
    "words",
    ["--profile ", "pull --profile ", "check --profile ", "state show --profile "],
)
def test_profile_names_come_from_the_config_file(home: Path, words: str) -> None:
    assert offered(complete(home, words)) == ["outlet", "shop"]


def test_profile_names_filtered_by_what_is_typed(home: Path) -> None:
    assert offered(complete(home, "pull --profile o")) == ["outlet"]


@pytest.mark.parametrize(
    "words",
    [
        "pull --queue ",
        "pull --received-queue ",
        "check --queue ",
        "config init --queue ",
    ],
)
def test_queue_codes_come_from_state_and_profiles(home: Path, words: str) -> None:
    assert offered(complete(home, words)) == [
        "new_updated_orders",
        "outlet_new",
        "received_orders",
    ]


def test_queue_codes_filtered_by_what_is_typed(home: Path) -> None:
    assert offered(complete(home, "pull --queue new")) == ["new_updated_orders"]


def test_queue_codes_from_the_state_file_the_command_line_names(
    home: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other.json"
    other.write_text(json.dumps(state_document("old_q", "switched_q")))
    words = f"--state-file {other} pull --queue "
    assert offered(complete(home, words)) == ["old_q", "outlet_new", "switched_q"]
    from_env = complete(home, "pull --queue ", MIVA_SYNC_STATE_FILE=str(other))
    assert offered(from_env) == ["old_q", "outlet_new", "switched_q"]


def test_options_still_complete(home: Path) -> None:
    assert "--queue" in offered(complete(home, "pull --qu"))


@pytest.mark.parametrize(
    ("config", "state"),
    [
        ("profiles = [[[", "{"),
        ("[profiles]\nshop = 3\n", '{"version": 1, "stores": {"shop": 7}}'),
        ('default_profile = 7\nprofiles = "x"\n', '["not", "a", "state"]'),
        ("\udcff", "\x00\x01"),
    ],
    ids=["unparsable", "wrong-types", "wrong-shapes", "not-text"],
)
def test_broken_files_complete_nothing_and_print_nothing(
    tmp_path: Path, config: str, state: str
) -> None:
    home = tmp_path / "broken"
    home.mkdir()
    (home / "config.toml").write_bytes(config.encode("utf-8", "surrogateescape"))
    (home / "state.json").write_bytes(state.encode("utf-8", "surrogateescape"))
    for words in ("--profile ", "pull --queue ", "check --queue x"):
        assert offered(complete(home, words)) == []


def test_unreadable_or_missing_files_complete_nothing(tmp_path: Path) -> None:
    home = tmp_path / "none"
    home.mkdir()
    assert offered(complete(home, "--profile ")) == []
    assert offered(complete(home, "pull --queue ")) == []
    (home / "config.toml").mkdir()  # a folder where the file should be
    (home / "state.json").mkdir()
    assert offered(complete(home, "pull --queue ")) == []

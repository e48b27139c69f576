"""Shared fixtures: an isolated home, a fake clock, a mocked store API, a CLI runner."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from click.testing import CliRunner, Result

from tests.support.fakes import KEY, STORE_URL, TOKEN, FakeClock


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--chaos-seed",
        default=None,
        help="Replay one seed of the chaos suite (tests/process/test_chaos.py).",
    )


@pytest.fixture(autouse=True)
def isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own MIVA_SYNC_HOME and no real MIVA_* settings."""
    for name in list(os.environ):
        if name.startswith("MIVA_"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("MIVA_SYNC_HOME", str(home))
    return home


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def api() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock(assert_all_requests_are_fired=True) as mock:
        yield mock


@pytest.fixture
def make_client(clock: FakeClock) -> Any:
    from miva_sync.store.client import MivaClient

    def make(**options: Any) -> MivaClient:
        defaults: dict[str, Any] = {
            "signing_key": KEY,
            "sleep": clock.sleep,
            "clock": clock.time,
            "monotonic": clock.monotonic,
            "jitter": lambda: 1.0,
        }
        defaults.update(options)
        return MivaClient(STORE_URL, "PS", TOKEN, **defaults)

    return make


@pytest.fixture
def store_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    env = {
        "MIVA_URL": STORE_URL,
        "MIVA_STORE_CODE": "PS",
        "MIVA_API_TOKEN": TOKEN,
        "MIVA_SIGNING_KEY": KEY,
        "MIVA_SYNC_RETRY_BUDGET": "0",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


@pytest.fixture
def run() -> Any:
    """Run the CLI in-process; stdout and stderr are kept apart."""
    from miva_sync.cli import cli

    def invoke(args: list[str], **kwargs: Any) -> Result:
        return CliRunner().invoke(cli, args, catch_exceptions=False, **kwargs)

    return invoke

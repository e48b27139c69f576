"""Profiles through a real pull against the sandbox: the profile's output and
page size apply, and a flag beats them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.helpers import profile_toml, write_config


@pytest.fixture
def shop() -> Iterator[Sandbox]:
    with Sandbox(orders=40, seed=5) as sb:
        yield sb


def test_pull_uses_the_profiles_output_and_page_size(
    run: Any, isolated_home: Path, shop: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "shop.jsonl"
    write_config(
        isolated_home,
        profile_toml("shop", shop, out, page_size=7),
    )
    result = run(["--profile", "shop", "pull", "--since", "30d", "--no-progress"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert out.read_text().count("\n") > 0
    assert {r.body["Count"] for r in shop.requests} == {7}


def test_pull_flag_beats_the_profiles_output(
    run: Any, isolated_home: Path, shop: Sandbox, tmp_path: Path
) -> None:
    out = tmp_path / "profile.jsonl"
    write_config(
        isolated_home,
        profile_toml("shop", shop, out),
    )
    result = run(["--profile", "shop", "pull", "--since", "30d", "-o", "-"])
    assert result.exit_code == 0, result.stderr
    assert result.stdout.count("\n") > 0
    assert not out.exists()

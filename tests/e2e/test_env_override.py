"""An environment variable that overrides a profile never does so unnoticed
(issue 21): a sandbox's left-over `export MIVA_URL=…` pulls from another store
than the profile names, so a warning names the variables, never their values;
once per run, and not under -q."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.helpers import profile_toml, write_config

WARNING = (
    "miva-sync: warning: MIVA_API_TOKEN, MIVA_SIGNING_KEY, MIVA_STORE_CODE, MIVA_URL "
    "override profile 'shop' (unset them to use the profile; 'miva-sync config show' "
    "lists where each setting comes from)"
)


@pytest.fixture
def shop() -> Iterator[Sandbox]:
    with Sandbox(orders=20, seed=5, store_code="SHOP") as sb:
        yield sb


@pytest.fixture
def leftover(monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """Another store whose settings were left exported, as `eval "$(miva-sync sandbox &)"` does."""
    with Sandbox(orders=5, seed=6) as sb:
        for name, value in sb.env().items():
            monkeypatch.setenv(name, value)
        yield sb


def pull(run: Any, tmp_path: Path, *flags: str) -> Any:
    out = tmp_path / "orders.jsonl"
    return run(
        ["--profile", "shop", *flags, "pull", "--since", "30d", "--no-progress",
         "-o", str(out)]
    )  # fmt: skip


def test_env_over_a_profile_is_one_warning_naming_the_variables(
    run: Any, isolated_home: Path, shop: Sandbox, leftover: Sandbox, tmp_path: Path
) -> None:
    write_config(isolated_home, profile_toml("shop", shop))
    result = pull(run, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert leftover.requests and not shop.requests  # the environment won, as documented
    assert result.stderr.splitlines().count(WARNING) == 1, result.stderr
    for secret in (leftover.api_token, leftover.signing_key, leftover.url):
        assert secret and secret not in result.stderr


def test_env_over_a_profile_is_quiet_under_q(
    run: Any, isolated_home: Path, shop: Sandbox, leftover: Sandbox, tmp_path: Path
) -> None:
    write_config(isolated_home, profile_toml("shop", shop))
    result = pull(run, tmp_path, "-q")
    assert result.exit_code == 0, result.stderr
    assert "override" not in result.stderr


def test_no_warning_without_an_override(
    run: Any, isolated_home: Path, shop: Sandbox, tmp_path: Path
) -> None:
    write_config(isolated_home, profile_toml("shop", shop))
    result = pull(run, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert shop.requests
    assert "override" not in result.stderr


def test_env_filling_what_a_profile_leaves_out_is_no_override(
    run: Any,
    isolated_home: Path,
    shop: Sandbox,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    profile = profile_toml("shop", shop).replace(
        f'api_token = "{shop.api_token}"\n', ""
    )
    write_config(isolated_home, profile)
    monkeypatch.setenv("MIVA_API_TOKEN", shop.api_token)
    result = pull(run, tmp_path)
    assert result.exit_code == 0, result.stderr
    assert "override" not in result.stderr

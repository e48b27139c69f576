"""``pull --all-profiles``: one cron line for many stores, real child processes
(SIGTERM to the parent: tests/process/test_all_profiles.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from miva_sync.app.all_profiles import SEVERITY, worst
from miva_sync.sandbox import Sandbox
from tests.support.helpers import profile_toml, read_jsonl


@pytest.mark.parametrize(
    ("codes", "expected"),
    [
        ([], 0),
        ([0, 0], 0),
        ([0, 6], 6),
        ([6, 4, 0], 4),
        ([7, 6], 6),
        ([2, 6, 7], 2),
        ([8, 1], 1),
        ([3, 8], 8),
        ([130, 7], 7),
        ([0, -9], 1),  # killed by a signal counts as a bug
    ],
)
def test_all_profiles_worst_code(codes: list[int], expected: int) -> None:
    assert worst(codes) == expected


def test_all_profiles_ranking_covers_every_failure_code() -> None:
    assert sorted(SEVERITY) == [1, 2, 3, 4, 5, 6, 7, 8, 9, 130]


@pytest.fixture
def shop() -> Iterator[Sandbox]:
    with Sandbox(orders=30, seed=8) as sb:
        yield sb


def test_all_profiles_runs_each_and_exits_with_the_worst(
    run: Any,
    shop: Sandbox,
    isolated_home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("GOOD_TOKEN", shop.api_token)
    config = (
        profile_toml("good", shop, tmp_path / "good.jsonl", api_token="env:GOOD_TOKEN")
        + profile_toml("badtoken", shop, tmp_path / "bad.jsonl", api_token="0" * 32)
        + "[profiles.down]\n"
        'url = "http://127.0.0.1:9/mm5/json.mvc"\nstore_code = "X"\n'
        f'api_token = "t"\nretry_budget = 0\noutput = "{tmp_path / "down.jsonl"}"\n'
    )
    (isolated_home / "config.toml").write_text(config)
    (isolated_home / "config.toml").chmod(0o600)
    result = run(["pull", "--all-profiles", "--since", "30d", "--jobs", "2"])
    assert result.exit_code == 4, result.stderr  # 4 (auth) outranks 6 (unreachable)
    err = result.stderr
    assert "[good] miva-sync:" in err and "orders emitted" in err
    for name, code, meaning in [
        ("good", 0, "ok"),
        ("badtoken", 4, "authentication refused"),
        ("down", 6, "store unreachable"),
    ]:
        assert any(
            line.split()[:3] == [name, "│", str(code)] and meaning in line
            for line in err.splitlines()
        ), err
    assert err.splitlines()[-1].startswith("miva-sync: error: 2 of 3 profiles failed")
    assert result.stdout == ""
    expected = {o["id"] for o in shop.store.orders_snapshot()
                if o["orderdate"] >= shop.store.now() - 30 * 86400}  # fmt: skip
    assert {o["id"] for o in read_jsonl(tmp_path / "good.jsonl")} == expected
    # each profile ran under its own store key (and so its own lock)
    from miva_sync.state.file import StateStore

    records = StateStore(isolated_home / "state.json").all()
    assert set(records) == {"profile:good", "profile:badtoken", "profile:down"}
    assert records["profile:good"]["cursors"]["date"]["watermark"] is not None
    assert records["profile:down"]["cursors"]["date"]["watermark"] is None


def test_all_profiles_all_good_is_exit_0_and_resumes(
    run: Any, shop: Sandbox, isolated_home: Path, tmp_path: Path
) -> None:
    with Sandbox(orders=10, seed=9) as other:
        (isolated_home / "config.toml").write_text(
            profile_toml("a", shop, tmp_path / "a.jsonl", api_token=shop.api_token)
            + profile_toml("b", other, tmp_path / "b.jsonl", api_token=other.api_token)
        )
        first = run(["pull", "--all-profiles", "--since", "30d", "--lookback", "1m"])
        assert first.exit_code == 0, first.stderr
        shop.store.add_order()
        again = run(["pull", "--all-profiles"])  # bare: each resumes its own cursor
        assert again.exit_code == 0, again.stderr
    assert len(read_jsonl(tmp_path / "a.jsonl")) == len(
        {o["id"] for o in read_jsonl(tmp_path / "a.jsonl")}
    )
    newest = max(o["id"] for o in shop.store.orders_snapshot())
    assert read_jsonl(tmp_path / "a.jsonl")[-1]["id"] == newest
    assert read_jsonl(tmp_path / "b.jsonl")


def test_all_profiles_a_broken_default_profile_does_not_stop_the_others(
    run: Any, shop: Sandbox, isolated_home: Path, tmp_path: Path
) -> None:
    """Found in review: the default profile was loaded whole just to find the
    home folder, so its unset env: reference stopped every profile with exit 3."""
    (isolated_home / "config.toml").write_text(
        'default_profile = "broken"\n'
        + profile_toml(
            "broken", shop, tmp_path / "x.jsonl", api_token="env:UNSET_TOKEN"
        )
        + profile_toml("good", shop, tmp_path / "good.jsonl", api_token=shop.api_token)
    )
    result = run(["pull", "--all-profiles", "--since", "30d"])
    assert result.exit_code == 3, result.stderr  # the broken profile's own code
    assert "[good] miva-sync:" in result.stderr and "orders emitted" in result.stderr
    assert read_jsonl(tmp_path / "good.jsonl")


def test_all_profiles_refuses_interleaved_stdout(
    run: Any, shop: Sandbox, isolated_home: Path
) -> None:
    (isolated_home / "config.toml").write_text(
        profile_toml("a", shop, None, api_token="t")
        + profile_toml("b", shop, None, api_token="t")
    )
    result = run(["pull", "--all-profiles", "--since", "1d"])
    assert result.exit_code == 2
    assert "a, b would all write to stdout" in result.stderr
    explicit = run(["pull", "--all-profiles", "--since", "1d", "-o", "-"])
    assert explicit.exit_code == 2


@pytest.mark.parametrize(
    "args", [["--url", "http://x.example/j"], ["--sandbox"], ["--ids", "1"]]
)
def test_all_profiles_refuses_per_store_options(
    run: Any, isolated_home: Path, args: list[str]
) -> None:
    (isolated_home / "config.toml").write_text('[profiles.a]\noutput = "a.jsonl"\n')
    result = run(["pull", "--all-profiles", *args])
    assert result.exit_code == 2
    assert args[0] in result.stderr


def test_all_profiles_without_profiles_is_exit_3(run: Any) -> None:
    result = run(["pull", "--all-profiles"])
    assert result.exit_code == 3
    assert "config init" in result.stderr

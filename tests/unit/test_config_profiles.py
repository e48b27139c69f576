"""Profiles: precedence, secret references, masking, config init/show/path, defaults."""

from __future__ import annotations

import json
import os
import stat
import tomllib
from pathlib import Path
from typing import Any

import pytest

from miva_sync.app.profiles import mask, render
from miva_sync.config import load_settings
from miva_sync.errors import ConfigError
from tests.support.fakes import KEY, STORE_URL, TOKEN
from tests.support.helpers import write_config

SHOP = f"""
default_profile = "shop"

[profiles.shop]
url = "{STORE_URL}"
store_code = "PROFILE"
api_token = "{TOKEN}"
signing_key = "{KEY}"
timeout = 30
"""


def test_config_precedence_flag_over_env_over_profile(isolated_home: Path) -> None:
    write_config(isolated_home, SHOP)
    env = {**os.environ, "MIVA_STORE_CODE": "ENV", "MIVA_SYNC_TIMEOUT": "45"}
    from_profile = load_settings({}, env={"MIVA_SYNC_HOME": str(isolated_home)})
    from_env = load_settings({}, env=env)
    from_flag = load_settings({"store_code": "FLAG"}, env=env)
    assert from_profile.store_code == "PROFILE" and from_profile.read_timeout == 30
    assert from_env.store_code == "ENV" and from_env.read_timeout == 45
    assert from_flag.store_code == "FLAG" and from_flag.read_timeout == 45
    assert from_flag.sources["store_code"] == "flag"
    assert from_env.sources["store_code"] == "env MIVA_STORE_CODE"
    assert from_profile.sources["url"] == "profile shop"


def test_config_default_profile_is_the_store_key(isolated_home: Path) -> None:
    # the same state record whether the profile is named or the default
    write_config(isolated_home, SHOP)
    env = {"MIVA_SYNC_HOME": str(isolated_home)}
    assert load_settings({}, env=env).store_key == "profile:shop"
    assert load_settings({"profile": "shop"}, env=env).store_key == "profile:shop"


def test_config_env_reference_is_resolved_at_load(isolated_home: Path) -> None:
    write_config(
        isolated_home,
        f'[profiles.a]\nurl = "{STORE_URL}"\nstore_code = "PS"\n'
        'api_token = "env:SHOP_TOKEN"\nsigning_key = "env:SHOP_KEY"\n',
    )
    env = {"MIVA_SYNC_HOME": str(isolated_home), "SHOP_TOKEN": TOKEN, "SHOP_KEY": KEY}
    settings = load_settings({"profile": "a"}, env=env)
    assert settings.api_token == TOKEN and settings.signing_key == KEY
    assert settings.refs == {
        "api_token": "env:SHOP_TOKEN",
        "signing_key": "env:SHOP_KEY",
    }


def test_config_missing_env_reference_names_the_variable(isolated_home: Path) -> None:
    write_config(
        isolated_home,
        '[profiles.a]\nurl = "https://x.example/j"\napi_token = "env:NOPE_TOKEN"\n',
    )
    # loading does not need the secret (issue 19): using the store does
    settings = load_settings(
        {"profile": "a"}, env={"MIVA_SYNC_HOME": str(isolated_home)}
    )
    with pytest.raises(ConfigError, match="NOPE_TOKEN") as caught:
        settings.require_connection()
    assert caught.value.exit_code == 3


def test_config_overridden_reference_need_not_resolve(isolated_home: Path) -> None:
    write_config(isolated_home, '[profiles.a]\napi_token = "env:NOPE_TOKEN"\n')
    env = {"MIVA_SYNC_HOME": str(isolated_home), "MIVA_API_TOKEN": TOKEN}
    assert load_settings({"profile": "a"}, env=env).api_token == TOKEN


def test_cli_exits_3_for_missing_reference_without_leaking(
    run: Any, isolated_home: Path
) -> None:
    write_config(
        isolated_home,
        f'[profiles.a]\nurl = "{STORE_URL}"\nstore_code = "PS"\napi_token = "env:GONE"\n',
    )
    result = run(["--profile", "a", "check"])
    assert result.exit_code == 3
    assert "GONE" in result.stderr and "not set" in result.stderr


def test_config_defaults_are_accepted_and_validated(isolated_home: Path) -> None:
    write_config(
        isolated_home,
        '[profiles.a]\noutput = "sqlite:///a.db"\noverlap = "45m"\nlookback = "20m"\n'
        'page_size = 250\nqueue = "new_updated_orders"\ncolumns = "items"\n'
        'webhook_secret = "s3cret-path-segment"\n',
    )
    env = {"MIVA_SYNC_HOME": str(isolated_home)}
    settings = load_settings({"profile": "a"}, env=env)
    assert settings.defaults == {
        "output": "sqlite:///a.db",
        "overlap": "45m",
        "lookback": "20m",
        "page_size": 250,
        "queue": "new_updated_orders",
        "columns": "items",
    }
    assert settings.webhook_secret == "s3cret-path-segment"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("page_size = 0", "page_size must be 1..1000"),
        ('lookback = "soon"', "lookback"),
        ('overlap = "lots"', "overlap"),
        ('since = "2d"', "unknown keys: since"),
    ],
)
def test_config_bad_defaults_are_exit_3(
    isolated_home: Path, line: str, message: str
) -> None:
    write_config(isolated_home, f"[profiles.a]\n{line}\n")
    with pytest.raises(ConfigError, match=message):
        load_settings({"profile": "a"}, env={"MIVA_SYNC_HOME": str(isolated_home)})


def test_config_readable_by_others_draws_a_warning(
    run: Any, isolated_home: Path
) -> None:
    write_config(isolated_home, SHOP, mode=0o644)
    result = run(["config", "show"])
    assert result.exit_code == 0
    assert "warning: config file" in result.stderr and "chmod 600" in result.stderr


def test_config_private_file_draws_no_warning(run: Any, isolated_home: Path) -> None:
    write_config(isolated_home, SHOP, mode=0o600)
    result = run(["config", "show"])
    assert result.exit_code == 0
    assert "warning" not in result.stderr


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        (TOKEN, TOKEN[:4] + "…"),
        ("short", "****"),
        ("env:SHOP_TOKEN", "env:SHOP_TOKEN"),
        (None, None),
    ],
)
def test_config_mask(value: str | None, shown: str | None) -> None:
    assert mask(value) == shown


def test_config_show_masks_secrets_and_names_sources(
    run: Any, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_config(isolated_home, SHOP.replace(f'"{KEY}"', '"env:SHOP_KEY"'))
    monkeypatch.setenv("SHOP_KEY", KEY)
    monkeypatch.setenv("MIVA_SYNC_WEBHOOK_SECRET", "a-webhook-secret-value")
    result = run(["config", "show", "--json"])
    assert result.exit_code == 0, result.stderr
    for secret in (TOKEN, KEY, "a-webhook-secret-value"):
        assert secret not in result.stdout
    data = json.loads(result.stdout)
    assert data["profile"] == "shop" and data["store_key"] == "profile:shop"
    shown = data["settings"]
    assert shown["api_token"] == {
        "value": TOKEN[:4] + "…",
        "source": "profile shop",
        "env": "MIVA_API_TOKEN",
    }
    assert shown["signing_key"]["value"] == "env:SHOP_KEY"
    assert shown["webhook_secret"]["source"] == "env MIVA_SYNC_WEBHOOK_SECRET"
    text = run(["config", "show"])
    assert TOKEN not in text.stdout and KEY not in text.stdout
    assert "profile shop" in text.stdout


def test_config_show_hides_the_password_in_a_default_output(
    run: Any, isolated_home: Path
) -> None:
    """Found in review: a profile's default -o printed with its password."""
    url = "postgresql://miva:pw-in-url@db.example/orders?sslpassword=key-pass"
    write_config(isolated_home, SHOP + f'output = "{url}"\n')
    for args in (["config", "show"], ["config", "show", "--json"]):
        result = run(args)
        assert result.exit_code == 0, result.stderr
        assert "postgresql://miva:***@db.example/orders" in result.stdout
        assert "pw-in-url" not in result.stdout and "key-pass" not in result.stdout


def test_config_path_prints_the_file(run: Any, isolated_home: Path) -> None:
    assert run(["config", "path"]).stdout == f"{isolated_home / 'config.toml'}\n"
    assert (
        run(["config", "path", "--state"]).stdout == f"{isolated_home / 'state.json'}\n"
    )


def test_config_init_with_flags_writes_a_private_loadable_profile(
    run: Any, isolated_home: Path
) -> None:
    result = run(
        [
            "config", "init", "--profile", "shop", "--url", STORE_URL,
            "--store-code", "PS", "--api-token", "env:SHOP_TOKEN",
            "--signing-key", KEY, "-o", "sqlite:///shop.db", "--page-size", "200",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    path = isolated_home / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    document = tomllib.loads(path.read_text())
    assert document["default_profile"] == "shop"
    assert document["profiles"]["shop"]["api_token"] == "env:SHOP_TOKEN"
    env = {"MIVA_SYNC_HOME": str(isolated_home), "SHOP_TOKEN": TOKEN}
    settings = load_settings({}, env=env)
    assert settings.api_token == TOKEN and settings.store_code == "PS"
    assert settings.defaults == {"output": "sqlite:///shop.db", "page_size": 200}


def test_config_init_saves_the_global_connection_flags(
    run: Any, isolated_home: Path
) -> None:
    result = run(
        [
            "--insecure", "--timeout", "30", "--max-rps", "4",
            "config", "init", "--profile", "stage", "--url", STORE_URL,
            "--store-code", "PS", "--api-token", TOKEN, "--signing-key", "",
        ]
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    saved = tomllib.loads((isolated_home / "config.toml").read_text())
    profile = saved["profiles"]["stage"]
    assert (profile["insecure"], profile["timeout"], profile["max_rps"]) == (
        True,
        30.0,
        4.0,
    )
    shown = json.loads(run(["config", "show", "--json"]).stdout)["settings"]
    assert shown["insecure"]["value"] is True  # (config show had no insecure row)


@pytest.mark.parametrize(
    ("before", "after", "said"),
    [
        (["--timeout", "1e9"], [], "timeout must be at most"),
        (["--max-rps", "0"], [], "max-rps"),
        (["--retry-budget", "-1"], [], "retry budget"),
        ([], ["--lookback", "5x"], "is not a span"),
        ([], ["--webhook-secret", "env:TWO WORDS"], "not a valid reference"),
    ],
)
def test_config_init_refuses_what_loading_the_profile_would_refuse(
    run: Any, isolated_home: Path, before: list[str], after: list[str], said: str
) -> None:
    # config init checked only some values: these profiles were saved, then
    # every later command refused them
    result = run(
        [
            *before, "config", "init", "--profile", "p", "--url", STORE_URL,
            "--store-code", "PS", "--api-token", TOKEN, "--signing-key", "", *after,
        ]
    )  # fmt: skip
    assert result.exit_code == 3, result.stderr
    assert said in result.stderr and result.stderr.count("\n") == 1
    assert not (isolated_home / "config.toml").exists()


def test_config_init_refuses_to_overwrite_without_force(
    run: Any, isolated_home: Path
) -> None:
    args = ["config", "init", "--profile", "a", "--url", STORE_URL]
    args += ["--store-code", "PS", "--api-token", TOKEN, "--signing-key", ""]
    assert run(args).exit_code == 0
    again = run(
        [*args[:-4], "--store-code", "NEW", "--api-token", TOKEN, "--signing-key", ""]
    )
    assert again.exit_code == 2 and "--force" in again.stderr
    forced = run(
        [
            *args[:-4],
            "--store-code",
            "NEW",
            "--api-token",
            TOKEN,
            "--signing-key",
            "",
            "--force",
        ]
    )
    assert forced.exit_code == 0
    assert load_settings({"profile": "a"}).store_code == "NEW"


def test_config_init_prompts_for_what_flags_leave_out(
    run: Any, isolated_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the runner's stdin is no terminal: say it is, so the prompts are asked
    monkeypatch.setattr("miva_sync.cli.common.stdin_is_terminal", lambda: True)
    answers = f"{STORE_URL}\nPS\n{TOKEN}\n{KEY}\n"
    result = run(["config", "init", "--profile", "p"], input=answers)
    assert result.exit_code == 0, result.stderr
    assert TOKEN not in result.stderr and KEY not in result.stderr  # hidden input
    settings = load_settings({"profile": "p"})
    assert (settings.url, settings.api_token, settings.signing_key) == (
        STORE_URL,
        TOKEN,
        KEY,
    )


def test_config_init_without_a_terminal_asks_for_flags(run: Any) -> None:
    result = run(["config", "init", "--url", STORE_URL], input="")
    assert result.exit_code == 3
    assert "--store-code" in result.stderr and "--api-token" in result.stderr


def test_config_init_rejects_a_bad_signing_key(run: Any, isolated_home: Path) -> None:
    result = run(
        ["config", "init", "--url", STORE_URL, "--store-code", "PS",
         "--api-token", TOKEN, "--signing-key", "%%%"]
    )  # fmt: skip
    assert result.exit_code == 3 and "not valid base64" in result.stderr
    assert not (isolated_home / "config.toml").exists()


def test_config_render_round_trips_awkward_strings() -> None:
    document = {
        "default_profile": "a",
        "profiles": {
            "a": {"url": 'https://x/"q"\\path', "columns": "é,\t,\n", "page_size": 5}
        },
    }
    assert tomllib.loads(render(document)) == document

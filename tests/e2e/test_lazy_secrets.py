"""Secrets resolve only when a command needs the store (issue 19, finding 6).

Through the real CLI: a default profile whose ``env:`` secret is unset must not
break the commands that never talk to the store, a command that does must exit
3 naming the variable, and a bad key given as a flag is named as that flag.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from miva_sync.config import load_settings
from miva_sync.errors import ConfigError
from tests.support.fakes import KEY, TOKEN
from tests.support.helpers import run_cli

# a store that is never reached: every case below ends before any request
STORE_URL = "https://shop.invalid/mm5/json.mvc"
PROFILE = (
    'default_profile = "shop"\n\n[profiles.shop]\n'
    f'url = "{STORE_URL}"\nstore_code = "PS"\n'
    'api_token = "env:SHOP_TOKEN"\nsigning_key = "env:SHOP_KEY"\n'
)


@pytest.fixture
def env(isolated_home: Path) -> dict[str, str]:
    """The default profile refers to SHOP_TOKEN and SHOP_KEY, neither of them set."""
    config = isolated_home / "config.toml"
    config.write_text(PROFILE)
    config.chmod(0o600)
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("MIVA_") and k not in ("SHOP_TOKEN", "SHOP_KEY")
    }
    return {**clean, "MIVA_SYNC_HOME": str(isolated_home)}


def test_state_show_sandbox_needs_no_store_secret(
    env: dict[str, str], tmp_path: Path
) -> None:
    run_cli(
        "pull", "--sandbox", "--since", "30d", "-o", str(tmp_path / "o.jsonl"), env=env
    )
    shown = run_cli("state", "show", "--sandbox", "--json", env=env)
    assert json.loads(shown.stdout)["store"] == "sandbox"
    assert "SHOP_TOKEN" not in shown.stderr


def test_config_path_state_needs_no_store_secret(
    env: dict[str, str], isolated_home: Path
) -> None:
    done = run_cli("config", "path", "--state", env=env)
    assert done.stdout.strip() == str(isolated_home / "state.json")


def test_config_show_shows_references_and_whether_they_are_set(
    env: dict[str, str],
) -> None:
    text = run_cli("config", "show", env=env).stdout
    assert "env:SHOP_TOKEN (NOT SET)" in text and "env:SHOP_KEY (NOT SET)" in text

    data = json.loads(
        run_cli("config", "show", "--json", env={**env, "SHOP_KEY": KEY}).stdout
    )
    token, key = data["settings"]["api_token"], data["settings"]["signing_key"]
    assert token["value"] == "env:SHOP_TOKEN" and token["set"] is False
    assert "SHOP_TOKEN" in token["problem"] and "not set" in token["problem"]
    assert key == {
        "value": "env:SHOP_KEY",
        "source": "profile shop",
        "env": "MIVA_SIGNING_KEY",
        "set": True,
    }
    # a variable that is set to a bad key: shown, and said what is wrong
    bad = json.loads(
        run_cli("config", "show", "--json", env={**env, "SHOP_KEY": "%%%"}).stdout
    )["settings"]["signing_key"]
    assert bad["set"] is True and "SHOP_KEY" in bad["problem"]
    assert "%%%" not in bad["problem"]


@pytest.mark.parametrize("command", [("pull", "--since", "1d"), ("check",)])
def test_a_command_that_needs_the_store_names_the_unset_variable(
    env: dict[str, str], command: tuple[str, ...]
) -> None:
    done = run_cli(*command, env=env, expect=3)
    assert "SHOP_TOKEN" in done.stderr and "not set" in done.stderr
    assert "Traceback" not in done.stderr and "internal error" not in done.stderr
    # with the token there, the key's variable is the next one named
    done = run_cli(*command, env={**env, "SHOP_TOKEN": TOKEN}, expect=3)
    assert "SHOP_KEY" in done.stderr and "not set" in done.stderr


def test_listen_still_needs_the_profile_secrets(env: dict[str, str]) -> None:
    done = run_cli(
        "listen", "-o", "w.jsonl", "--secret", "s3cret-path-0123456789abcdef",
        env=env, expect=3,
    )  # fmt: skip
    assert "SHOP_TOKEN" in done.stderr


def test_a_bad_key_is_named_where_it_came_from(isolated_home: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    base.update(
        MIVA_SYNC_HOME=str(isolated_home),
        MIVA_URL=STORE_URL,
        MIVA_STORE_CODE="PS",
        MIVA_API_TOKEN=TOKEN,
    )
    from_flag = run_cli(
        "pull", "--since", "1d", "--signing-key", "%%%", env=base, expect=3
    )
    assert "--signing-key is not valid base64" in from_flag.stderr
    assert "MIVA_SIGNING_KEY" not in from_flag.stderr
    # the flag wins over a good key in the environment, and is what is named
    both = {**base, "MIVA_SIGNING_KEY": KEY}
    flagged = run_cli("check", "--signing-key", "%%%", env=both, expect=3)
    assert (
        "--signing-key" in flagged.stderr and "MIVA_SIGNING_KEY" not in flagged.stderr
    )

    from_env = run_cli(
        "pull", "--since", "1d", env={**base, "MIVA_SIGNING_KEY": "%%%"}, expect=3
    )
    assert "MIVA_SIGNING_KEY is not valid base64" in from_env.stderr
    # and a command that does not use the key does not care
    run_cli("config", "path", "--state", "--signing-key", "%%%", env=base)
    shown = run_cli("config", "show", "--json", "--signing-key", "%%%", env=base)
    assert (
        "--signing-key"
        in json.loads(shown.stdout)["settings"]["signing_key"]["problem"]
    )


def test_config_init_names_the_flag_of_a_bad_key(isolated_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    env["MIVA_SYNC_HOME"] = str(isolated_home)
    done = run_cli(
        "config", "init", "--profile", "shop", "--url", STORE_URL,
        "--store-code", "PS", "--api-token", TOKEN, "--signing-key", "%%%",
        env=env, expect=3,
    )  # fmt: skip
    assert "--signing-key is not valid base64" in done.stderr
    assert not (isolated_home / "config.toml").exists()


def test_sandbox_pull_with_the_profile_still_works(
    env: dict[str, str], tmp_path: Path
) -> None:
    # the sandbox brings its own secrets: the profile's unset ones do not matter
    out = tmp_path / "o.jsonl"
    run_cli("pull", "--sandbox", "--since", "30d", "-o", str(out), env=env)
    assert out.read_text().count("\n") > 0


def test_library_settings_load_and_fail_only_when_used(isolated_home: Path) -> None:
    (isolated_home / "config.toml").write_text(PROFILE)
    settings = load_settings({}, env={"MIVA_SYNC_HOME": str(isolated_home)})
    assert settings.api_token is None and settings.signing_key is None
    assert settings.state_path() == isolated_home / "state.json"
    with pytest.raises(ConfigError, match="SHOP_TOKEN") as caught:
        settings.require_connection()
    assert caught.value.exit_code == 3
    # flags override the profile's references, which then need not resolve
    flags = {"api_token": TOKEN, "signing_key": KEY}
    resolved = load_settings(flags, env={"MIVA_SYNC_HOME": str(isolated_home)})
    resolved.require_connection()
    assert resolved.signing_key == KEY


@pytest.mark.parametrize("source", ["flag", "environment", "profile"])
def test_a_refused_signature_names_where_the_key_came_from(
    run: object, isolated_home: Path, source: str
) -> None:
    """The store refuses the signature: the hint names the flag, the variable or
    the profile's env: reference the key came from, never a setting not used."""
    from miva_sync.sandbox import Sandbox, new_signing_key

    wrong = new_signing_key()
    with Sandbox(orders=5, seed=2) as sb:
        env = {**sb.env(), "MIVA_SYNC_HOME": str(isolated_home)}
        args = ["pull", "--since", "1d", "-o", str(isolated_home / "o.jsonl")]
        if source == "flag":
            args = ["--signing-key", wrong, *args]
            expected = "--signing-key"
        elif source == "environment":
            env["MIVA_SIGNING_KEY"] = wrong
            expected = "MIVA_SIGNING_KEY"
        else:
            del env["MIVA_SIGNING_KEY"]
            env["SHOP_KEY"] = wrong
            config = isolated_home / "config.toml"
            config.write_text(
                'default_profile = "shop"\n\n[profiles.shop]\n'
                f'url = "{sb.url}"\nstore_code = "{sb.store_code}"\n'
                f'api_token = "{sb.api_token}"\nsigning_key = "env:SHOP_KEY"\n'
            )
            config.chmod(0o600)
            expected = "SHOP_KEY"
        result = run(args, env=env)  # type: ignore[operator]
    assert result.exit_code == 4, result.stderr
    line = result.stderr.strip().splitlines()[-1]
    assert "Invalid request signature" in line and expected in line, line
    if source != "environment":
        assert "MIVA_SIGNING_KEY" not in line, line
    assert wrong not in result.stderr

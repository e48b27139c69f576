"""Secrets and privacy: token, signing key, webhook secret and passphrase never shown."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest

from miva_sync.sandbox import Sandbox
from tests.support.helpers import cli_env, read_jsonl, run_cli

PASSPHRASE = "correct-horse-battery-staple-42"
WEBHOOK_SECRET = "hook-secret-value-0123456789"
URL_PASSWORD = "basic-auth-pass-9876"  # a staging store behind HTTP basic auth


def all_text(home: Path, *streams: str, extra: tuple[Path, ...] = ()) -> str:
    """Everything miva-sync printed or wrote: streams, state, outputs."""
    parts = list(streams)
    for path in [*home.rglob("*"), *extra]:
        if path.is_file():
            parts.append(path.read_bytes().decode("utf-8", "replace"))
    return "\n".join(parts)


@pytest.mark.parametrize(
    "verbosity", [[], ["-v"], ["-vv"], ["-vv", "--log-format", "json"]]
)
def test_secrets_never_appear_anywhere(tmp_path: Path, verbosity: list[str]) -> None:
    with Sandbox(orders=30, seed=81) as sb:
        home = tmp_path / "home"
        url = sb.url.replace("http://", f"http://stage:{URL_PASSWORD}@")
        env = cli_env(sb, home, MIVA_SYNC_PASSPHRASE=PASSPHRASE,
                      MIVA_SYNC_WEBHOOK_SECRET=WEBHOOK_SECRET, MIVA_URL=url)  # fmt: skip
        out = tmp_path / "o.jsonl"
        runs = [
            run_cli("pull", *verbosity, "--since", "90d", "-o", str(out), env=env),
            run_cli(
                "pull",
                *verbosity,
                "--since",
                "90d",
                "--columns",
                "default,payment_data",
                "-o",
                str(tmp_path / "card.jsonl"),
                env=env,
            ),
            run_cli("check", *verbosity, env=env, expect=None),
            run_cli("check", "--json", env=env, expect=None),
            run_cli("config", "show", env=env, expect=None),
            run_cli("state", "show", "--json", env=env, expect=None),
            # a failing run: the wrong token is reported without being shown
            run_cli(
                "pull", *verbosity, env={**env, "MIVA_API_TOKEN": "f" * 32}, expect=4
            ),
        ]
        text = all_text(home, *(r.stdout + r.stderr for r in runs), extra=(out,))
        for secret in (
            sb.api_token,
            sb.signing_key,
            PASSPHRASE,
            WEBHOOK_SECRET,
            URL_PASSWORD,
            "f" * 32,
        ):
            assert secret and secret not in text, f"a secret leaked ({secret[:4]}…)"
        if "-vv" in verbosity:
            assert "[redacted]" in text  # the authorization header was logged, redacted


def test_secrets_state_and_output_files_are_owner_only(tmp_path: Path) -> None:
    with Sandbox(orders=10, seed=82) as sb:
        home = tmp_path / "home"
        env = cli_env(sb, home)
        run_cli("pull", "--since", "90d", "-o", str(tmp_path / "o.jsonl"), env=env)
        # the same window into each new target: a saved cursor wins over a
        # repeated start (issue 19), so the re-pulls say --full-refresh
        again = ("pull", "--since", "90d", "--full-refresh", "-o")
        run_cli(*again, f"sqlite:///{tmp_path / 'o.db'}", env=env)
        run_cli(*again, f"{tmp_path / 'dir'}/", env=env)
        files = [home / "state.json", tmp_path / "o.jsonl", tmp_path / "o.db",
                 next((tmp_path / "dir").glob("*.json"))]  # fmt: skip
        for path in files:
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, path


def test_payment_data_needs_an_explicit_ask_and_the_passphrase(tmp_path: Path) -> None:
    with Sandbox(orders=10, seed=83) as sb:
        env = cli_env(sb, tmp_path / "home")
        plain = tmp_path / "plain.jsonl"
        run_cli("pull", "--since", "90d", "-o", str(plain), env=env)
        assert sb.requests, "the sandbox saw no request"
        bodies = [entry.body for entry in sb.requests if entry.body]
        assert not any("payment_data" in json.dumps(b) for b in bodies)
        assert not any("Passphrase" in b for b in bodies)
        # asked for by name, without a passphrase and without a terminal: refused
        refused = run_cli("pull", "--since", "90d", "--columns", "default,payment_data",
                          "-o", str(tmp_path / "x.jsonl"), env=env, expect=3)  # fmt: skip
        assert "MIVA_SYNC_PASSPHRASE" in refused.stderr
        # with the passphrase from the environment (never a flag); the window
        # again, so --full-refresh (a saved cursor wins over a repeated start)
        card = tmp_path / "card.jsonl"
        run_cli("pull", "--since", "90d", "--full-refresh", "--columns",
                "default,payment_data", "-o", str(card),
                env={**env, "MIVA_SYNC_PASSPHRASE": PASSPHRASE})  # fmt: skip
        sent = [b for b in (e.body for e in sb.requests) if b and "Passphrase" in b]
        assert sent and all(b["Passphrase"] == PASSPHRASE for b in sent)
        orders = read_jsonl(card)
        assert orders and any(
            p.get("data") for o in orders for p in o.get("payments", [])
        )


def test_payment_data_from_a_profiles_columns_takes_the_passphrase(
    tmp_path: Path,
) -> None:
    """Found in review: the passphrase was looked up before the profile's
    defaults applied, so a profile's columns asking for payment_data exited 2
    even with MIVA_SYNC_PASSPHRASE set."""
    home = tmp_path / "shop-home"
    home.mkdir()
    config = home / "config.toml"
    config.write_text(
        'default_profile = "shop"\n[profiles.shop]\ncolumns = "default,payment_data"\n'
    )
    config.chmod(0o600)
    with Sandbox(orders=10, seed=84) as sb:
        env = {**cli_env(sb, home), "MIVA_SYNC_PASSPHRASE": PASSPHRASE}
        run_cli("pull", "--since", "90d", "-o", str(tmp_path / "card.jsonl"), env=env)
        sent = [b for b in (e.body for e in sb.requests) if b and "Passphrase" in b]
        assert sent and all(b["Passphrase"] == PASSPHRASE for b in sent)


def test_listen_binds_to_loopback_by_default(tmp_path: Path) -> None:
    from tests.support.webhook import Receiver

    receiver = Receiver(str(tmp_path / "hooks.jsonl"), tmp_path / "home")
    try:
        port = receiver.port
        # the kernel's own table of listening sockets (state 0A): the receiver's
        # is bound to 127.0.0.1 (0100007F), not to every interface (00000000)
        listening = [
            line.split()[1]
            for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
            if line.split()[3] == "0A" and line.split()[1].endswith(f":{port:04X}")
        ]
        assert listening == [f"0100007F:{port:04X}"]
    finally:
        receiver.kill()


def test_every_sql_statement_is_parameterised() -> None:
    """No SQL built from order data: every f-string SQL interpolates only our names."""
    import re

    import miva_sync

    files = list(Path(miva_sync.__file__).parent.rglob("*.py"))
    assert len(files) > 20  # the package itself, wherever pytest runs from
    for path in files:
        text = path.read_text()
        for match in re.finditer(
            r'f"(?:INSERT|UPDATE|DELETE|SELECT)[^"]*\{([^}]*)\}', text
        ):
            expression = match.group(1)
            assert not re.search(r"order|value|payload|record\[", expression), (
                f"{path}: SQL built from data: {match.group(0)[:80]}"
            )


def test_directory_output_paths_come_from_integer_ids_only(tmp_path: Path) -> None:
    from miva_sync.errors import ApiError
    from miva_sync.sinks.directory import DirectorySink

    sink = DirectorySink(tmp_path / "out")
    with pytest.raises(ApiError):
        sink.write([{"id": "../../etc/passwd", "dt_updated": 1}])
    sink.close()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [".miva-sync.lock"]

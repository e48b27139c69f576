"""Write profiles into ``config.toml`` and show settings with their secrets masked.

Reading is :mod:`miva_sync.config` (``tomllib``). Writing is by hand: the file
holds only ``default_profile`` and ``[profiles.NAME]`` tables of strings and
numbers, which a few lines render exactly, so no runtime dependency is needed.
The file is written atomically with mode 0600, because it may hold API tokens.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from miva_sync.base.fsio import replace_durably
from miva_sync.config import (
    ENV_REF_PREFIX,
    ENV_VARS,
    PROFILE_NAME,
    SECRET_KEYS,
    Settings,
    check_profile,
    config_path,
    read_config,
)
from miva_sync.errors import ConfigError, UsageError

# the order keys are written in, so files read the same from one init to the next
KEY_ORDER = (
    "url",
    "store_code",
    "api_token",
    "signing_key",
    "digest",
    "timeout",
    "retry_budget",
    "max_rps",
    "state_file",
    "output",
    "overlap",
    "lookback",
    "page_size",
    "queue",
    "columns",
    "webhook_secret",
)
MASK = "****"


def mask(value: str | None) -> str | None:
    """A secret as shown to people: an ``env:NAME`` reference as is, else a hint.

    Long secrets keep their first four characters (enough to tell two tokens
    apart, as GitHub's token list does); short ones show nothing at all.
    """
    if value is None:
        return None
    if value.startswith(ENV_REF_PREFIX):
        return value
    return value[:4] + "…" if len(value) >= 16 else MASK


def check_profile_name(name: str) -> str:
    if not PROFILE_NAME.match(name):
        raise UsageError(
            f"profile name {name!r}: use letters, digits, '-' and '_' only"
        )
    return name


def save_profile(
    home: Path | None,
    name: str,
    values: Mapping[str, Any],
    *,
    force: bool = False,
    make_default: bool | None = None,
) -> Path:
    """Add or replace one profile in ``config.toml`` (0600, atomic); return its path.

    ``make_default``: None makes it the default only when there is none yet.
    """
    check_profile_name(name)
    clean = {k: v for k, v in values.items() if v not in (None, "")}
    check_profile(clean, where=f"profile {name!r}")
    path = config_path(home)
    document = read_config(home) or {}
    profiles: dict[str, Any] = dict(document.get("profiles", {}))
    if name in profiles and not force:
        raise UsageError(
            f"profile {name!r} already exists in {path}: pass --force to replace it"
        )
    profiles[name] = clean
    document = {**document, "profiles": profiles}
    if make_default or (make_default is None and not document.get("default_profile")):
        document["default_profile"] = name
    write_atomically(path, render(document))
    return path


def render(document: Mapping[str, Any]) -> str:
    """The config document as TOML: top-level values, then one table per profile."""
    lines = ["# miva-sync configuration: see 'miva-sync config --help'"]
    for key, value in document.items():
        if key == "profiles":
            continue
        lines.append(f"{_key(key)} = {_value(value, key)}")
    profiles: Mapping[str, Any] = document.get("profiles", {})
    for name in sorted(profiles):
        section = profiles[name]
        lines.append("")
        lines.append(f"[profiles.{_key(name)}]")
        ordered = sorted(
            section, key=lambda k: (KEY_ORDER.index(k) if k in KEY_ORDER else 99, k)
        )
        lines.extend(f"{_key(k)} = {_value(section[k], k)}" for k in ordered)
    return "\n".join(lines) + "\n"


def _key(key: str) -> str:
    return key if PROFILE_NAME.match(key) else _string(key)


def _value(value: Any, key: str) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return _string(value)
    raise ConfigError(
        f"cannot rewrite the config file: {key} holds a {type(value).__name__}; "
        "edit the file by hand"
    )


def _string(text: str) -> str:
    """A TOML basic string (quotes, backslashes and control characters escaped)."""
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def write_atomically(path: Path, text: str) -> None:
    """Never a torn config (see :func:`~miva_sync.base.fsio.replace_durably`)."""
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        replace_durably(path, text.encode("utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot write config file {path}: {exc.strerror}") from None


def describe(
    settings: Settings, env: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The effective settings for ``config show``: values (secrets masked) and sources.

    A secret given as an ``env:NAME`` reference shows as that reference, with
    whether $NAME is set in ``env`` (default: this process's environment) and
    what is wrong with it, if anything: showing settings never needs them.
    """
    import os

    env = os.environ if env is None else env
    from miva_sync.sinks import is_postgres
    from miva_sync.store.urls import redact_url

    shown: dict[str, Any] = {}
    for name in (
        "url",
        "store_code",
        "api_token",
        "signing_key",
        "digest",
        "webhook_secret",
        "timeout",
        "retry_budget",
        "max_rps",
        "insecure",
        "timezone",
    ):
        value: Any = getattr(settings, "read_timeout" if name == "timeout" else name)
        if name in SECRET_KEYS:
            value = settings.refs.get(name) or mask(value)
        elif name == "url" and value:
            value = redact_url(value)  # a store behind basic auth
        shown[name] = {
            "value": value,
            "source": settings.sources.get(name, "default" if value else "unset"),
            "env": ENV_VARS.get(name),
        }
        ref = settings.refs.get(name)
        if ref is not None:
            shown[name]["set"] = bool(env.get(ref.removeprefix(ENV_REF_PREFIX)))
        if name in settings.secret_errors:
            shown[name]["problem"] = settings.secret_errors[name]
    return {
        "profile": settings.profile,
        "profile_source": settings.sources.get("profile"),
        "config_file": str(config_path(settings.home)),
        "state_file": str(settings.state_path()),
        "store_key": settings.store_key if settings.profile or settings.url else None,
        "settings": shown,
        "defaults": {
            # a PostgreSQL output URL may carry the database password
            name: redact_url(value)
            if name == "output" and is_postgres(str(value))
            else value
            for name, value in settings.defaults.items()
        },
    }

"""Settings: flags > environment > profile in the config file; platformdirs paths.

Everything a user can configure is resolved here, once, into a frozen
:class:`Settings`. Secrets are kept out of ``repr`` so a stray log line or
traceback cannot show them.
"""

from __future__ import annotations

import base64
import binascii
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from miva_sync.errors import ConfigError

APP_NAME = "miva-sync"
CONFIG_FILE_NAME = "config.toml"
STATE_FILE_NAME = "state.json"

DEFAULT_CONNECT_TIMEOUT = 10.0
DEFAULT_READ_TIMEOUT = 60.0  # Miva's own per-request server timeout is 60 s
DEFAULT_RETRY_BUDGET = 20.0
DIGESTS = ("sha256", "sha1")

# setting name -> environment variable (design.md §4.1)
ENV_VARS = {
    "url": "MIVA_URL",
    "store_code": "MIVA_STORE_CODE",
    "api_token": "MIVA_API_TOKEN",
    "signing_key": "MIVA_SIGNING_KEY",
    "digest": "MIVA_SYNC_DIGEST",
    "profile": "MIVA_SYNC_PROFILE",
    "state_file": "MIVA_SYNC_STATE_FILE",
    "timeout": "MIVA_SYNC_TIMEOUT",
    "retry_budget": "MIVA_SYNC_RETRY_BUDGET",
    "max_rps": "MIVA_SYNC_MAX_RPS",
    "webhook_secret": "MIVA_SYNC_WEBHOOK_SECRET",
}
# keys a profile in the config file may set
PROFILE_KEYS = frozenset(ENV_VARS) - {"profile"}


@dataclass(frozen=True)
class Settings:
    """Resolved connection and tool settings for one store."""

    url: str | None = None
    store_code: str | None = None
    api_token: str | None = field(default=None, repr=False)
    signing_key: str | None = field(default=None, repr=False)
    digest: str = "sha256"
    profile: str | None = None
    home: Path | None = None
    state_file: Path | None = None
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    read_timeout: float = DEFAULT_READ_TIMEOUT
    retry_budget: float = DEFAULT_RETRY_BUDGET
    max_rps: float | None = None
    webhook_secret: str | None = field(default=None, repr=False)

    @property
    def secrets(self) -> tuple[str, ...]:
        """Every secret value, so messages and logs can be scrubbed of them."""
        return tuple(
            s for s in (self.api_token, self.signing_key, self.webhook_secret) if s
        )

    @property
    def store_key(self) -> str:
        """The key of this store's state record (design.md §4.2)."""
        if self.profile:
            return f"profile:{self.profile}"
        return f"{normalise_url(self.url or '')}#{self.store_code or ''}"

    @property
    def has_connection(self) -> bool:
        return bool(self.url and self.store_code and self.api_token)

    def require_connection(self) -> None:
        """Raise :class:`ConfigError` naming every missing connection setting."""
        missing = [
            ENV_VARS[name]
            for name in ("url", "store_code", "api_token")
            if not getattr(self, name)
        ]
        if missing:
            raise ConfigError(
                f"missing {', '.join(missing)}: set them in the environment, pass "
                "--url/--store-code/--api-token, or use a --profile "
                "(or try --sandbox)"
            )

    def state_path(self) -> Path:
        """The state file: explicit, else ``state.json`` in the state folder."""
        if self.state_file:
            return self.state_file
        return state_dir(self.home) / STATE_FILE_NAME


def config_dir(home: Path | None) -> Path:
    if home:
        return home
    import platformdirs

    return platformdirs.user_config_path(APP_NAME)


def state_dir(home: Path | None) -> Path:
    if home:
        return home
    import platformdirs

    return platformdirs.user_state_path(APP_NAME)


def normalise_url(url: str) -> str:
    """Scheme, host and path, lower-cased host, no trailing slash."""
    parts = urlsplit(url.strip())
    host = (parts.hostname or "").lower()
    if parts.port:
        host = f"{host}:{parts.port}"
    return f"{parts.scheme.lower()}://{host}{parts.path.rstrip('/')}"


def decode_signing_key(key: str) -> bytes:
    """Decode a base64 signing key; Miva shows keys with or without ``=`` padding."""
    text = "".join(key.split())
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            "MIVA_SIGNING_KEY is not valid base64: copy the signing key exactly "
            "as the Miva admin shows it (the key itself is not shown here)"
        ) from None
    if not raw:
        raise ConfigError("MIVA_SIGNING_KEY decodes to an empty key")
    return raw


def load_settings(
    flags: Mapping[str, Any] | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Resolve settings: command-line flags, then environment, then the profile."""
    flags = {k: v for k, v in (flags or {}).items() if v is not None}
    env = os.environ if env is None else env
    home = _home(env)

    def from_env(name: str) -> str | None:
        value = env.get(ENV_VARS[name])
        return value if value not in (None, "") else None

    profile = flags.get("profile") or from_env("profile")
    values: dict[str, Any] = dict(_load_profile(home, profile))
    for name in PROFILE_KEYS:
        env_value = from_env(name)
        if env_value is not None:
            values[name] = env_value
    values.update({k: v for k, v in flags.items() if k in PROFILE_KEYS})
    return _build(values, profile=profile, home=home)


def _home(env: Mapping[str, str]) -> Path | None:
    home = env.get("MIVA_SYNC_HOME")
    return Path(home).expanduser() if home else None


def _load_profile(home: Path | None, profile: str | None) -> dict[str, Any]:
    path = config_dir(home) / CONFIG_FILE_NAME
    if not path.exists():
        if profile:
            raise ConfigError(
                f"profile {profile!r} not found: no config file at {path}"
            )
        return {}
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise ConfigError(f"cannot read config file {path}: {reason}") from None
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict):
        raise ConfigError(f"{path}: [profiles] must be a table")
    name = profile or document.get("default_profile")
    if not name:
        return {}
    section = profiles.get(name)
    if not isinstance(section, dict):
        raise ConfigError(f"profile {name!r} not found in {path}")
    unknown = sorted(set(section) - PROFILE_KEYS)
    if unknown:
        raise ConfigError(
            f"{path}: profile {name!r} has unknown keys: {', '.join(unknown)}"
        )
    return section


def _build(
    values: dict[str, Any], *, profile: str | None, home: Path | None
) -> Settings:
    url = _text(values.get("url"))
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                "MIVA_URL must be an http(s) URL of the store's JSON endpoint, "
                "e.g. https://shop.example.com/mm5/json.mvc"
            )
    signing_key = _text(values.get("signing_key"))
    if signing_key:
        decode_signing_key(signing_key)  # fail early, at configuration time
    digest = str(values.get("digest") or "sha256").lower().replace("-", "")
    if digest not in DIGESTS:
        raise ConfigError(f"digest must be one of {', '.join(DIGESTS)}, not {digest!r}")
    state_file = _text(values.get("state_file"))
    timeout = _number(
        values.get("timeout"), "timeout", DEFAULT_READ_TIMEOUT, minimum=0.1
    )
    return Settings(
        url=url,
        store_code=_text(values.get("store_code")),
        api_token=_text(values.get("api_token")),
        signing_key=signing_key,
        digest=digest,
        profile=profile,
        home=home,
        state_file=Path(state_file).expanduser() if state_file else None,
        connect_timeout=min(DEFAULT_CONNECT_TIMEOUT, timeout),
        read_timeout=timeout,
        retry_budget=_number(
            values.get("retry_budget"), "retry budget", DEFAULT_RETRY_BUDGET, minimum=0
        ),
        max_rps=_number(values.get("max_rps"), "max-rps", None, minimum=0.001),
        webhook_secret=_text(values.get("webhook_secret")),
    )


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _number(value: Any, name: str, default: float | None, *, minimum: float) -> Any:
    if value is None or value == "":
        return default
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a number, not {value!r}") from None
    if not number >= minimum or number == float("inf"):
        raise ConfigError(f"{name} must be at least {minimum}, not {value!r}")
    return number

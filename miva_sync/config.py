"""Settings: flags > environment > profile in the config file; platformdirs paths.

Everything a user can configure is resolved here, once, into a frozen
:class:`Settings`. Secrets are kept out of ``repr`` so a stray log line or
traceback cannot show them.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import tzinfo
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
MAX_TIMEOUT = 86400.0
DIGESTS = ("sha256", "sha1")

# setting name -> environment variable (docs/design.md §4.1)
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
    "insecure": "MIVA_SYNC_INSECURE",
    "webhook_secret": "MIVA_SYNC_WEBHOOK_SECRET",
    "timezone": "MIVA_SYNC_TIMEZONE",
}
# how to talk to a store, beyond which store and its credentials: a global flag,
# an environment variable or a profile key each (config init saves the flags,
# --all-profiles hands them to every store's run)
CONNECTION_KEYS = (
    "digest",
    "state_file",
    "timeout",
    "retry_budget",
    "max_rps",
    "insecure",
    "timezone",
)
# Pull/listen defaults a profile may hold; a flag on the command line wins.
DEFAULT_KEYS = frozenset(
    {"output", "overlap", "lookback", "page_size", "queue", "columns"}
)
# keys a profile in the config file may set
PROFILE_KEYS = (frozenset(ENV_VARS) - {"profile"}) | DEFAULT_KEYS
# settings that may be written as a reference, ``"env:NAME"``, instead of a literal
SECRET_KEYS = ("api_token", "signing_key", "webhook_secret")
ENV_REF_PREFIX = "env:"
_ENV_REF = re.compile(r"^env:([A-Za-z_][A-Za-z0-9_]*)$")
PROFILE_NAME = re.compile(r"^[A-Za-z0-9_-]+$")

log = logging.getLogger("miva_sync.config")
_warned: set[tuple[str, int, int]] = set()
_told: set[tuple[str, ...]] = set()


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
    insecure: bool = False  # TLS certificate verification off (never the default)
    webhook_secret: str | None = field(default=None, repr=False)
    # the store's IANA time zone: bare dates on the command line are its days
    timezone: str = "UTC"
    # the profile's pull/listen defaults (DEFAULT_KEYS), already validated
    defaults: Mapping[str, Any] = field(default_factory=dict, compare=False)
    # where each setting came from: "flag", "env MIVA_URL", "profile shop", ...
    sources: Mapping[str, str] = field(default_factory=dict, compare=False)
    # secrets the profile gives as "env:NAME" references (shown instead of values)
    refs: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)
    # secrets that cannot be used, by setting: an env:NAME reference whose
    # variable is unset, a signing key that is not base64. Raised only by a
    # command that uses them (require_connection, require_secrets), so state
    # show, config show and config path work without the store's secrets.
    secret_errors: Mapping[str, str] = field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def store_key(self) -> str:
        """The key of this store's state record (docs/design.md §6.1)."""
        if self.profile:
            return f"profile:{self.profile}"
        return url_key(self.url, self.store_code)

    @property
    def has_connection(self) -> bool:
        return bool(self.url and self.store_code and self.api_token)

    def origin(self, name: str) -> str:
        """Where a setting came from, as a person would fix it (see :func:`origin_of`)."""
        return origin_of(name, self.sources, self.refs, self.profile)

    def require_secrets(self, *names: str) -> None:
        """Raise the deferred problem of the first of these secrets (default: all)
        that cannot be used, naming the variable or flag it came from."""
        for name in names or SECRET_KEYS:
            problem = self.secret_errors.get(name)
            if problem:
                raise ConfigError(problem)

    def require_connection(self) -> None:
        """Raise :class:`ConfigError` naming every missing connection setting."""
        self.require_secrets("api_token", "signing_key")
        missing = [
            ENV_VARS[name]
            for name in ("url", "store_code", "api_token")
            if not getattr(self, name)
        ]
        if missing:
            raise ConfigError(
                f"missing {', '.join(missing)}: set them in the environment, pass "
                "--url/--store-code/--api-token, or save a profile with "
                "'miva-sync config init' (or try --sandbox)"
            )

    @property
    def zone(self) -> tzinfo:
        """:attr:`timezone` as a tzinfo (checked when the settings were built)."""
        from miva_sync.base.timespec import zone_named

        return zone_named(self.timezone)

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


def config_path(home: Path | None) -> Path:
    """The config file: ``config.toml`` in the config folder."""
    return config_dir(home) / CONFIG_FILE_NAME


def home_from() -> Path | None:
    """``MIVA_SYNC_HOME`` (one folder for config and state), if set."""
    return _home(os.environ)


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


def url_key(url: str | None, store_code: str | None) -> str:
    """A store named by its URL and store code (``https://host/mm5/json.mvc#S01``):
    the state key of settings without a profile, and a database's store identity
    (store/urls.py), one text so the one recognises what the other claimed."""
    return f"{normalise_url(url or '')}#{(store_code or '').strip()}"


def decode_signing_key(key: str, *, where: str = "the signing key") -> bytes:
    """Decode a base64 signing key; Miva shows keys with or without ``=`` padding.

    ``where`` names where the key came from (``--signing-key``,
    ``MIVA_SIGNING_KEY``, a profile's reference), so the error says what to fix.
    """
    text = "".join(key.split())
    text += "=" * (-len(text) % 4)
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(
            f"{where} is not valid base64: copy the signing key exactly "
            "as the Miva admin shows it (the key itself is not shown here)"
        ) from None
    if not raw:
        raise ConfigError(f"{where} decodes to an empty key")
    return raw


def origin_of(
    name: str,
    sources: Mapping[str, str],
    refs: Mapping[str, str],
    profile: str | None,
) -> str:
    """Where setting ``name`` came from, as a person would fix it: the flag, the
    environment variable (for a profile's ``env:NAME`` reference, NAME), or the
    profile's key."""
    source = sources.get(name, "")
    if source == "flag":
        return f"--{name.replace('_', '-')}"
    if source.startswith("env "):
        return source.removeprefix("env ")
    if name in refs:
        variable = refs[name].removeprefix(ENV_REF_PREFIX)
        return f"{variable} (profile {profile!r}: {name} = {refs[name]})"
    if source.startswith("profile "):
        return f"profile {profile!r}: {name}"
    return ENV_VARS.get(name, name)


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
    name, section = _load_profile(home, profile)
    values: dict[str, Any] = {k: v for k, v in section.items() if k not in DEFAULT_KEYS}
    sources = {k: f"profile {name}" for k in values}
    for key in PROFILE_KEYS - DEFAULT_KEYS:
        env_value = from_env(key)
        if env_value is not None:
            values[key] = env_value
            sources[key] = f"env {ENV_VARS[key]}"
    for key, value in flags.items():
        if key in PROFILE_KEYS - DEFAULT_KEYS:
            values[key] = value
            sources[key] = "flag"
    _warn_if_overridden(home, name, section, sources)
    # Only a reference that is actually used must resolve: an environment
    # variable or flag that overrides the profile's secret makes it moot. And
    # only a command that uses the secret may fail on it (exit 3 naming the
    # variable or flag): the problem is kept in secret_errors, not raised.
    refs: dict[str, str] = {}
    problems: dict[str, str] = {}
    for key in SECRET_KEYS:
        if sources.get(key, "").startswith("profile ") and _is_ref(values.get(key)):
            refs[key] = str(values[key])
            try:
                values[key] = resolve_ref(refs[key], env, key=key, profile=name)
            except ConfigError as exc:
                if not _ENV_REF.match(refs[key]):
                    raise  # not a reference at all: broken for every command
                problems[key], values[key] = str(exc), None
    signing_key = _text(values.get("signing_key"))
    if signing_key and "signing_key" not in problems:
        where = origin_of("signing_key", sources, refs, name)
        try:
            decode_signing_key(signing_key, where=where)
        except ConfigError as exc:
            # never left in place: a bad key must not quietly mean token-only auth
            problems["signing_key"], values["signing_key"] = str(exc), None
    defaults = validate_defaults(
        {k: v for k, v in section.items() if k in DEFAULT_KEYS},
        where=f"profile {name!r}",
    )
    if profile is None and name:
        sources["profile"] = "default_profile"
    elif profile is not None:
        sources["profile"] = "flag" if flags.get("profile") else "env MIVA_SYNC_PROFILE"
    return _build(
        values,
        profile=name,
        home=home,
        extra={
            "defaults": defaults,
            "sources": sources,
            "refs": refs,
            "secret_errors": problems,
        },
    )


def _is_ref(value: Any) -> bool:
    return isinstance(value, str) and value.startswith(ENV_REF_PREFIX)


def resolve_ref(
    ref: str, env: Mapping[str, str], *, key: str, profile: str | None
) -> str:
    """``env:NAME`` -> the value of $NAME; a missing one is a ConfigError naming it."""
    match = _ENV_REF.match(ref)
    where = f"profile {profile!r}: {key}" if profile else key
    if not match:
        raise ConfigError(
            f"{where}: {ref!r} is not a valid reference; write env:NAME, "
            "e.g. env:SHOP_API_TOKEN"
        )
    value = env.get(match.group(1))
    if not value:
        raise ConfigError(
            f"{where} refers to the environment variable {match.group(1)}, which is "
            "not set: export it (e.g. in the cron line or the systemd unit's "
            "EnvironmentFile) or write the value into the profile"
        )
    return value


# Miva's largest Count (store/query.py MAX_PAGE_SIZE; a test keeps the two
# equal): settings sit below the store layer and cannot import it.
MAX_PAGE_SIZE = 1000


def validate_defaults(values: Mapping[str, Any], *, where: str) -> dict[str, Any]:
    """Check a profile's pull/listen defaults; return them normalised."""
    from miva_sync.base.timespec import parse_span

    out: dict[str, Any] = {}
    for key, value in values.items():
        if key == "page_size":
            if not isinstance(value, int) or isinstance(value, bool):
                raise ConfigError(
                    f"{where}: page_size must be an integer 1..{MAX_PAGE_SIZE}"
                )
            if not 1 <= value <= MAX_PAGE_SIZE:
                raise ConfigError(
                    f"{where}: page_size must be 1..{MAX_PAGE_SIZE} (never 0, which Miva reads "
                    f"as 'everything'), not {value}"
                )
            out[key] = value
            continue
        if not isinstance(value, str | int) or isinstance(value, bool):
            raise ConfigError(f"{where}: {key} must be a string")
        text = str(value).strip()
        try:
            # an overlap is a count of ids (30) or a span (45m); a lookback a span
            if key == "lookback" or (key == "overlap" and not text.isdigit()):
                parse_span(text)
        except ValueError as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
        if not text:
            raise ConfigError(f"{where}: {key} is empty")
        out[key] = text
    return out


def _home(env: Mapping[str, str]) -> Path | None:
    home = env.get("MIVA_SYNC_HOME")
    return Path(home).expanduser() if home else None


def read_config(home: Path | None) -> dict[str, Any] | None:
    """The whole config document, or None when there is no config file."""
    path = config_path(home)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise ConfigError(f"cannot read config file {path}: {reason}") from None
    _warn_if_exposed(path)
    import tomllib  # here: most runs have no config file (cron sets variables)

    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(
            f"cannot read config file {path}: {str(exc).splitlines()[0]}"
        ) from None
    except RecursionError:  # a = [[[[… : tomllib parses recursively
        raise ConfigError(
            f"cannot read config file {path}: values nested too deeply"
        ) from None
    profiles = document.get("profiles", {})
    if not isinstance(profiles, dict) or not all(
        isinstance(section, dict) for section in profiles.values()
    ):
        raise ConfigError(
            f"{path}: [profiles] must be a table of [profiles.NAME] tables"
        )
    return document


def _warn_if_exposed(path: Path) -> None:
    # The file may hold API tokens: say so when others can read it (llm/ssh do
    # the same). Once per file version, as a command may load settings twice.
    try:
        info = path.stat()
    except OSError:
        return
    mode = stat.S_IMODE(info.st_mode)
    key = (str(path), mode, info.st_mtime_ns)
    if mode & 0o077 and key not in _warned:
        _warned.add(key)
        log.warning(
            "config file %s is readable by others (mode %04o) and may hold "
            "secrets: run 'chmod 600 %s'",
            path,
            mode,
            path,
        )


def _warn_if_overridden(
    home: Path | None,
    profile: str | None,
    section: Mapping[str, Any],
    sources: Mapping[str, str],
) -> None:
    # An environment variable over a value the profile sets (a sandbox's
    # exported MIVA_URL, an old export in a shell) would otherwise switch
    # stores unnoticed: name the variables, never their values. A warning
    # record: a console line unless -q. Once per process and profile.
    names = sorted(
        sources[key].removeprefix("env ")
        for key in section
        if sources.get(key, "").startswith("env ")
    )
    told = (str(config_path(home)), str(profile), *names)
    if names and told not in _told:
        _told.add(told)
        log.warning(
            "%s override%s profile %r (unset %s to use the profile; "
            "'miva-sync config show' lists where each setting comes from)",
            ", ".join(names),
            "" if len(names) > 1 else "s",
            profile,
            "them" if len(names) > 1 else "it",
        )


def _load_profile(
    home: Path | None, profile: str | None
) -> tuple[str | None, dict[str, Any]]:
    path = config_path(home)
    document = read_config(home)
    if document is None:
        if profile:
            raise ConfigError(
                f"profile {profile!r} not found: no config file at {path}; "
                f"create it with 'miva-sync config init --profile {profile}'"
            )
        return None, {}
    profiles = document.get("profiles", {})
    name = profile or document.get("default_profile")
    if not name:
        return None, {}
    if not isinstance(name, str):
        raise ConfigError(f"{path}: default_profile must be a profile's name")
    section = profiles.get(name)
    if not isinstance(section, dict):
        known = ", ".join(sorted(profiles)) or "none"
        raise ConfigError(
            f"profile {name!r} not found in {path} (profiles: {known}); "
            f"add it with 'miva-sync config init --profile {name}'"
        )
    check_keys(section, where=f"{path}: profile {name!r}")
    return str(name), section


def check_keys(section: Mapping[str, Any], *, where: str) -> None:
    """Refuse unknown keys and values of the wrong TOML type in a profile."""
    unknown = sorted(set(section) - PROFILE_KEYS)
    if unknown:
        raise ConfigError(
            f"{where} has unknown keys: {', '.join(unknown)} "
            f"(known: {', '.join(sorted(PROFILE_KEYS))})"
        )
    for key, value in section.items():
        _check_type(key, value, where=where)


def check_profile(section: Mapping[str, Any], *, where: str) -> None:
    """Refuse now what :func:`load_settings` would refuse in this profile later
    (``config init``: exit 3 at once, not at 3 am); ``env:`` references are
    checked for their form only (their variables may be set elsewhere)."""
    check_keys(section, where=where)
    for key in SECRET_KEYS:
        if _is_ref(section.get(key)) and not _ENV_REF.match(str(section[key])):
            resolve_ref(str(section[key]), {}, key=key, profile=None)  # says why
    literal = {
        k: v for k, v in section.items() if k not in DEFAULT_KEYS and not _is_ref(v)
    }
    _build(literal, profile=None, home=None)
    signing_key = _text(literal.get("signing_key"))
    if signing_key:  # load_settings defers this check; config init must not
        decode_signing_key(signing_key, where=f"{where}: signing_key")
    validate_defaults(
        {k: v for k, v in section.items() if k in DEFAULT_KEYS}, where=where
    )


# what each kind of profile value may be written as in TOML (the rest: DEFAULT_KEYS,
# which validate_defaults checks): a number may also be a string ("30")
_NUMBER_KEYS = frozenset({"timeout", "retry_budget", "max_rps"})


def _check_type(key: str, value: Any, *, where: str) -> None:
    """Refuse a profile value of the wrong TOML type instead of str()-ing it."""
    if isinstance(value, str):
        if "\x00" in value:
            raise ConfigError(f"{where}: {key} contains a NUL character")
        return
    if key in _NUMBER_KEYS:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        kind = "a number"
    elif key == "insecure":
        ok, kind = isinstance(value, bool), "true or false"
    else:  # validate_defaults says what is wrong with a default's value
        ok, kind = key in DEFAULT_KEYS, "a string"
    if not ok:
        raise ConfigError(
            f"{where}: {key} must be {kind}, not a TOML {type(value).__name__}"
        )


def _build(
    values: dict[str, Any],
    *,
    profile: str | None,
    home: Path | None,
    extra: dict[str, Any] | None = None,
) -> Settings:
    url = _text(values.get("url"))
    if url:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(
                "the store URL (--url, MIVA_URL or a profile's url) must be the "
                "http(s) URL of its JSON endpoint, e.g. "
                "https://shop.example.com/mm5/json.mvc"
            )
    signing_key = _text(values.get("signing_key"))
    digest = str(values.get("digest") or "sha256").lower().replace("-", "")
    if digest not in DIGESTS:
        raise ConfigError(f"digest must be one of {', '.join(DIGESTS)}, not {digest!r}")
    state_file = _text(values.get("state_file"))
    timeout = _number(
        values.get("timeout"), "timeout", DEFAULT_READ_TIMEOUT, minimum=0.1
    )
    timezone = check_timezone(values.get("timezone"))
    if timeout > MAX_TIMEOUT:  # socket and timer waits overflow far beyond this
        raise ConfigError(f"timeout must be at most {MAX_TIMEOUT:g} seconds")
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
        insecure=_flag(values.get("insecure"), "insecure"),
        webhook_secret=_text(values.get("webhook_secret")),
        timezone=timezone,
        **(extra or {}),
    )


def check_timezone(value: Any) -> str:
    """A timezone setting's name, checked (ConfigError, exit 3); UTC if unset."""
    from miva_sync.base.timespec import zone_named

    name = _text(value) or "UTC"
    try:
        zone_named(name)
    except ValueError as exc:
        raise ConfigError(
            f"timezone (--timezone, MIVA_SYNC_TIMEZONE or a profile's timezone): {exc}"
        ) from None
    return name


def load_timezone(
    flags: Mapping[str, Any] | None = None, env: Mapping[str, str] | None = None
) -> tzinfo:
    """The store's time zone alone: flag > environment > profile, default UTC.

    For reading the dates typed on the command line: it does not need (or
    check) the rest of the settings, so it also serves ``--sandbox``, whose
    connection settings come from the sandbox.
    """
    from miva_sync.base.timespec import zone_named

    flags = flags or {}
    env = os.environ if env is None else env
    name = _text(flags.get("timezone")) or _text(env.get(ENV_VARS["timezone"]))
    if name is None:
        profile = _text(flags.get("profile")) or _text(env.get(ENV_VARS["profile"]))
        name = _text(_load_profile(_home(env), profile)[1].get("timezone"))
    return zone_named(check_timezone(name))


def _flag(value: Any, name: str) -> bool:
    if value is None or value is False or value == "":
        return False
    if value is True:
        return True
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(f"{name} must be true or false, not {value!r}")


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

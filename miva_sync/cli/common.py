"""What every command shares: the connection and verbosity options (accepted
before or after the subcommand), the option types, messages on stderr."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import tzinfo
from typing import Any, TypeVar

import click

from miva_sync.cli.completion import profile_names
from miva_sync.cli.params import TimeZone

F = TypeVar("F", bound=Callable[..., Any])

# Options shared by every command, accepted before or after the subcommand.
# Their values are collected on the root context (a later one wins), so
# ``miva-sync -v pull`` and ``miva-sync pull -v`` mean the same.
_SHARED_KEY = "shared_options"


def _remember(ctx: click.Context, param: click.Parameter, value: Any) -> Any:
    if value is not None and value != () and param.name:
        ctx.find_root().meta.setdefault(_SHARED_KEY, {})[param.name] = value
    return value


def _count(ctx: click.Context, param: click.Parameter, value: int) -> int:
    if value and param.name:
        shared = ctx.find_root().meta.setdefault(_SHARED_KEY, {})
        shared[param.name] = shared.get(param.name, 0) + value
    return value


def shared_options(func: F) -> F:
    """Connection and output-verbosity options (docs/design.md §4.1, §4.3)."""
    options = [
        click.option("--url", help="The store's JSON endpoint [env MIVA_URL]."),
        click.option("--store-code", help="Store_Code [env MIVA_STORE_CODE]."),
        click.option("--api-token", help="API access token [env MIVA_API_TOKEN]."),
        click.option(
            "--signing-key",
            help="Base64 signing key; empty for token-only auth [env MIVA_SIGNING_KEY].",
        ),
        click.option(
            "--digest",
            type=click.Choice(["sha256", "sha1"], case_sensitive=False),
            help="HMAC digest for signing (default sha256) [env MIVA_SYNC_DIGEST].",
        ),
        click.option(
            "--profile",
            help="Profile in the config file [env MIVA_SYNC_PROFILE].",
            shell_complete=profile_names,
        ),
        click.option(
            "--state-file", help="Explicit state file [env MIVA_SYNC_STATE_FILE]."
        ),
        click.option(
            "--timeout",
            type=float,
            help="Per-request read timeout in seconds (default 60) [env MIVA_SYNC_TIMEOUT].",
        ),
        click.option(
            "--retry-budget",
            type=float,
            help="Seconds spent retrying one request before giving up (default 20) "
            "[env MIVA_SYNC_RETRY_BUDGET].",
        ),
        click.option(
            "--max-rps",
            type=float,
            help="Request-rate ceiling per second (off by default) [env MIVA_SYNC_MAX_RPS].",
        ),
        click.option(
            "--insecure",
            is_flag=True,
            default=None,
            help="Do not verify the store's TLS certificate (a warning is shown) "
            "[env MIVA_SYNC_INSECURE].",
        ),
        click.option(
            "--timezone",
            type=TimeZone(),
            help="The store's IANA time zone: dates without an offset (--since "
            "2026-12-01, today) are its days (default UTC) [env MIVA_SYNC_TIMEZONE].",
        ),
        click.option(
            "-v", "--verbose", count=True, help="Show requests (secrets redacted)."
        ),
        click.option(
            "--log-format",
            type=click.Choice(["text", "json"]),
            help="Messages on stderr as text, or as JSON lines for log shippers "
            "[env MIVA_SYNC_LOG_FORMAT].",
        ),
        click.option(
            "-q", "--quiet", is_flag=True, default=None, help="Only errors on stderr."
        ),
        click.option("--debug", is_flag=True, default=None, help="Show tracebacks."),
    ]
    for option in reversed(options):
        func = option(func)
    # every shared option lands in ctx.meta, not in the function's arguments
    for param in func.__click_params__[-len(options) :]:  # type: ignore[attr-defined]
        param.expose_value = False
        param.callback = _count if param.name == "verbose" else _remember
    return func


def shared(ctx: click.Context) -> dict[str, Any]:
    return dict(ctx.find_root().meta.get(_SHARED_KEY, {}))


@contextmanager
def reporting(ctx: click.Context) -> Iterator[None]:
    """The console for a command: -v/-vv, -q and --log-format rule every line it
    writes to stderr, the library's log records included."""
    from miva_sync import console

    opts = shared(ctx)
    with console.configured(
        verbose=opts.get("verbose", 0),
        quiet=bool(opts.get("quiet")),
        log_format=log_format(opts.get("log_format")),
        logs=True,
    ):
        yield


LOG_FORMATS = ("text", "json")


def log_format(flag: str | None) -> str:
    """``--log-format`` if given, else MIVA_SYNC_LOG_FORMAT, else text."""
    if flag:
        return flag
    chosen = os.environ.get("MIVA_SYNC_LOG_FORMAT") or "text"
    if chosen not in LOG_FORMATS:
        from miva_sync.errors import ConfigError

        raise ConfigError(f"MIVA_SYNC_LOG_FORMAT must be text or json, not {chosen!r}")
    return chosen


def tell(ctx: click.Context, message: str, level: str = "info") -> None:
    """A command's own line on stderr, also after its ``reporting`` block:
    ``miva-sync: MESSAGE`` (nothing under -q), or for a warning
    ``miva-sync: note: MESSAGE``."""
    from miva_sync import console

    with reporting(ctx):
        (console.note if level == "warning" else console.info)(message)


def settings_from(ctx: click.Context) -> Any:
    from miva_sync.config import load_settings

    return load_settings(shared(ctx))


def read_times(
    ctx: click.Context,
    options: dict[str, Any],
    names: tuple[str, ...],
    zone: tzinfo | None = None,
) -> None:
    """Replace the When options ``names`` by unix seconds, reading dates and
    times without an offset in the store's zone (flag > environment > profile):
    ``zone`` when the caller has loaded the settings, else looked up alone."""
    from miva_sync.base.timespec import WhenText

    typed = {n: options[n] for n in names if isinstance(options.get(n), WhenText)}
    if not typed:
        return  # no need to look for a zone (nor to read the config file)
    if zone is None:
        from miva_sync.config import load_timezone

        zone = load_timezone(shared(ctx))
    for name, value in typed.items():
        try:
            options[name] = value.resolve(zone)
        except ValueError as exc:
            raise click.BadParameter(
                str(exc), ctx, param_hint=f"'--{name.replace('_', '-')}'"
            ) from None


def stdin_is_terminal() -> bool:
    """Someone at a terminal who can answer a prompt (stdin is a tty)."""
    import sys

    try:
        return sys.stdin is not None and sys.stdin.isatty()
    except (OSError, ValueError):  # a closed stdin
        return False


def require_terminal(instead: str) -> None:
    """Before a prompt: without a terminal, exit 3 saying what to set ``instead``
    (cron, scripts, ``< /dev/null``: a prompt would read nothing or hang, and
    a hidden one would warn that it cannot hide the input)."""
    from miva_sync.errors import ConfigError

    if not stdin_is_terminal():
        raise ConfigError(f"no terminal to prompt on: {instead}")


def from_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) in (
        click.core.ParameterSource.COMMANDLINE,
        click.core.ParameterSource.PROMPT,
    )

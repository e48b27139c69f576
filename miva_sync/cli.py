"""The command line: parse, build objects, call the library once, render, map errors.

Only this module imports click. Heavy modules (requests, rich, the sandbox) are
imported inside the commands that need them so ``--version`` and ``--help`` stay
instant for cron.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

import click

from miva_sync import __version__
from miva_sync.errors import MivaSyncError

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


class TimeZone(click.ParamType):
    """An IANA time zone name (America/Los_Angeles, UTC), checked at once."""

    name = "ZONE"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from miva_sync.timespec import zone_named

        try:
            zone_named(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return str(value).strip()


def shared_options(func: F) -> F:
    """Connection and output-verbosity options (design.md §4.1)."""
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
            "--profile", help="Profile in the config file [env MIVA_SYNC_PROFILE]."
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
    """Route the library's log records to stderr (-v, -vv, --log-format) for a command."""
    from miva_sync.stderr_log import route_to_stderr

    opts = shared(ctx)
    fmt = log_format(opts.get("log_format"))
    if fmt == "json":
        from miva_sync import ui

        ui.set_log_format(fmt)
    route_to_stderr(
        verbose=opts.get("verbose", 0),
        quiet=bool(opts.get("quiet")),
        json_lines=fmt == "json",
    )
    try:
        yield
    finally:
        if fmt == "json":
            from miva_sync import ui

            ui.set_log_format("text")  # the process may run another command


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
    """A command's own line on stderr: nothing under -q (but a warning), a JSON
    line under --log-format json, else ``miva-sync: MESSAGE``."""
    opts = shared(ctx)
    if opts.get("quiet") and level == "info":
        return
    if log_format(opts.get("log_format")) == "json":
        from miva_sync.stderr_log import json_log_line

        click.echo(json_log_line(level, message), err=True)
    else:
        prefix = "note: " if level == "warning" else ""
        click.echo(f"miva-sync: {prefix}{message}", err=True)


def settings_from(ctx: click.Context) -> Any:
    from miva_sync.config import load_settings

    return load_settings(shared(ctx))


class MivaSyncGroup(click.Group):
    """The root group: every error becomes one stderr line and its exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        argv = list((args[0] if args else kwargs.get("args")) or sys.argv[1:])
        debug = os.environ.get("MIVA_SYNC_DEBUG") == "1" or "--debug" in argv
        global _json_errors
        _json_errors = _wants_json(argv)
        try:
            result = super().main(*args, **kwargs)
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            where = exc.ctx.command_path if exc.ctx else "miva-sync"
            _fail(f"{exc.format_message()} (see '{where} --help')", 2)
        except click.ClickException as exc:
            _fail(exc.format_message(), exc.exit_code)
        except (click.Abort, KeyboardInterrupt):
            _fail("interrupted", 130)
        except MivaSyncError as exc:
            if debug:
                raise
            _fail(str(exc), exc.exit_code)
        except BrokenPipeError:
            _close_stdout_quietly()
            _fail("output closed (broken pipe)", 8)
        except Exception as exc:
            if debug:
                raise
            _fail(
                f"internal error ({type(exc).__name__}); this is a bug, please "
                "report it, with --debug for a traceback",
                1,
            )
        _flush_stdout()  # a failure now is still exit 8; at exit it would be 120
        # click returns the exit code of `--help`/`--version` style exits
        sys.exit(result if isinstance(result, int) else 0)


@click.group(
    cls=MivaSyncGroup, context_settings={"help_option_names": ["-h", "--help"]}
)
@click.version_option(__version__, "--version", prog_name="miva-sync")
@shared_options
def cli() -> None:
    """Get every order out of a Miva Merchant store, safely, from cron.

    Data goes to stdout (JSON lines); messages go to stderr. Exit codes:
    0 ok, 2 usage, 3 config, 4 auth, 5 API refused, 6 store unreachable,
    7 locked, 8 output failed, 9 incomplete or stale, 130 interrupted.

    Example:

        miva-sync config init && miva-sync check && miva-sync pull --since 7d

    Shell completion: eval "$(_MIVA_SYNC_COMPLETE=bash_source miva-sync)"
    """


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@click.option(
    "--queue",
    "queue_code",
    metavar="CODE",
    help="Also check this workflow queue (default: the profile's queue).",
)
@click.option(
    "--require",
    type=click.Choice(["updated", "queue"]),
    multiple=True,
    help="Fail (exit 5) when a probe shows updated mode / the queue unsupported.",
)
@shared_options
@click.pass_context
def check(
    ctx: click.Context, as_json: bool, queue_code: str | None, require: tuple[str, ...]
) -> None:
    """Diagnose the connection to a store, one row per check, on stderr.

    Fatal rows: settings (exit 3), reachability and TLS (6), authentication
    (4), listing orders (5). The clock row shows the skew against the
    store's Date header (the store's timestamp window is unknown). Probe
    rows prove updated mode on this store (dt_updated in rows, its filter
    honoured, pages sorted both ways) and whether the store knows the queue:
    each is supported, unsupported or unknown (--json gives the reason), and
    informational unless --require names it (exit 5). Ends with a suggested
    pull mode. Every request reads a few orders at most; nothing is
    acknowledged.

    Examples:

        miva-sync check

        miva-sync --profile shop check --queue new_updated_orders --require queue

        miva-sync check --json | jq .suggested_mode
    """
    import json

    from miva_sync.doctor import run_checks

    with reporting(ctx):
        settings = settings_from(ctx)
        queue = queue_code or settings.defaults.get("queue")
        report = run_checks(settings, queue=queue, require=require)
        if as_json:
            click.echo(json.dumps(report.to_json(), indent=2))
        elif not shared(ctx).get("quiet"):
            from miva_sync import ui

            ui.print_check(report.rows)
        error = report.error()
        if error is not None:
            raise error
    if not as_json:
        from miva_sync.urls import redact_url

        tell(
            ctx,
            f"ok: {redact_url(settings.url or '')} answered; the store holds "
            f"{report.total_count} orders; suggested mode: {report.suggested_mode}",
        )


@cli.group()
def config() -> None:
    """Profiles in the config file: init, show, path.

    A profile holds a store's connection settings and pull defaults in
    config.toml (mode 0600) in the config folder, or in $MIVA_SYNC_HOME.
    A secret may be a reference, api_token = "env:SHOP_TOKEN", read from the
    environment at run time. Flags win over the environment, which wins
    over the profile.

    Example:

        miva-sync config init --profile shop && miva-sync config show
    """


@config.command("init")
@click.option("--output", "-o", "output", help="Default -o for pull and listen.")
@click.option("--overlap", help="Default number-mode overlap (30, or a span like 45m).")
@click.option("--lookback", help="Default date/updated lookback (a span like 15m).")
@click.option("--page-size", type=click.IntRange(1, 1000), help="Default page size.")
@click.option("--queue", "queue", metavar="CODE", help="The store's workflow queue.")
@click.option("--columns", help="Default on-demand columns.")
@click.option(
    "--webhook-secret",
    help="Secret path segment for listen (or env:NAME).",
)
@click.option("--force", is_flag=True, help="Replace an existing profile.")
@click.option(
    "--default/--no-default",
    "make_default",
    default=None,
    help="Make it the default profile (default: when there is none yet).",
)
@shared_options
@click.pass_context
def config_init(ctx: click.Context, /, **options: Any) -> None:
    """Write a profile to the config file, prompting for what flags do not give.

    Secrets are prompted without echo. In scripts, give every value as a
    flag; a value "env:NAME" is saved as a reference to that environment
    variable, so the file holds no secret (and ps shows none).

    Examples:

        miva-sync config init --profile shop

        miva-sync config init --profile shop --url https://shop.example.com/mm5/json.mvc \\
            --store-code PS --api-token env:SHOP_TOKEN --signing-key env:SHOP_KEY \\
            -o sqlite:///shop.db
    """
    from miva_sync.config import (
        CONNECTION_KEYS,
        DEFAULT_KEYS,
        ENV_REF_PREFIX,
        decode_signing_key,
        home_from,
    )
    from miva_sync.profiles import check_profile_name, save_profile

    with reporting(ctx):
        opts = shared(ctx)
        name = check_profile_name(opts.get("profile") or "default")
        values: dict[str, Any] = {
            "url": opts.get("url"),
            "store_code": opts.get("store_code"),
            "api_token": opts.get("api_token"),
            "signing_key": opts.get("signing_key"),
        }
        try:
            if values["url"] is None:
                values["url"] = click.prompt(
                    "Store JSON URL (e.g. https://shop.example.com/mm5/json.mvc)",
                    err=True,
                )
            if values["store_code"] is None:
                values["store_code"] = click.prompt("Store code", err=True)
            if values["api_token"] is None:
                values["api_token"] = click.prompt(
                    "API token (or env:NAME)", hide_input=True, err=True
                )
            if values["signing_key"] is None:
                values["signing_key"] = click.prompt(
                    "Signing key (empty for token-only auth; or env:NAME)",
                    default="",
                    show_default=False,
                    hide_input=True,
                    err=True,
                )
        except click.Abort:
            missing = [
                f"--{k.replace('_', '-')}" for k, v in values.items() if v is None
            ]
            raise click.UsageError(
                f"no terminal to prompt on: pass {', '.join(missing)}"
            ) from None
        for key in CONNECTION_KEYS:
            if opts.get(key) is not None:
                values[key] = opts[key]
        # the profile's pull defaults, and the receiver's secret
        values.update(
            {k: options[k] for k in (*sorted(DEFAULT_KEYS), "webhook_secret")}
        )
        given_key = opts.get("signing_key")
        if given_key and not str(given_key).startswith(ENV_REF_PREFIX):
            # a bad key typed as a flag is named as the flag, not as the profile key
            decode_signing_key(str(given_key), where="--signing-key")
        path = save_profile(
            home_from(),
            name,
            values,
            force=options["force"],
            make_default=options["make_default"],
        )
    tell(
        ctx,
        f"saved profile {name!r} in {path} (mode 0600); next: "
        f"miva-sync --profile {name} check",
    )


@config.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@shared_options
@click.pass_context
def config_show(ctx: click.Context, as_json: bool) -> None:
    """Show the effective settings and where each comes from (secrets masked).

    Secrets show their first characters only, or the env:NAME reference
    they come from. Flags and the environment are applied, so this is
    exactly what a pull would use.

    Examples:

        miva-sync config show

        miva-sync --profile shop config show --json | jq .settings.url
    """
    import json

    from miva_sync.profiles import describe

    with reporting(ctx):
        data = describe(settings_from(ctx))
    if as_json:
        click.echo(json.dumps(data, indent=2))
        return
    click.echo(f"{'profile':<15}{data['profile'] or '-'}")
    click.echo(f"{'config file':<15}{data['config_file']}")
    click.echo(f"{'state file':<15}{data['state_file']}")
    click.echo(f"{'store key':<15}{data['store_key'] or '-'}")
    for name, item in data["settings"].items():
        value = "-" if item["value"] is None else item["value"]
        if "set" in item:  # an env:NAME reference: is NAME there for a pull?
            value = f"{value} ({'set' if item['set'] else 'NOT SET'})"
        click.echo(f"{name:<15}{value!s:<44} {item['source']}")
        if item.get("problem"):
            click.echo(f"{'':<15}! {item['problem']}")
    for name, value in data["defaults"].items():
        click.echo(f"{'default ' + name:<15}{value!s:<44} profile")


@config.command("path")
@click.option("--state", is_flag=True, help="Print the state file's path instead.")
@shared_options
@click.pass_context
def config_path_cmd(ctx: click.Context, state: bool) -> None:
    """Print the config file's path (or the state file's) on stdout.

    Example:

        $EDITOR "$(miva-sync config path)"
    """
    from miva_sync.config import config_path, home_from

    if state:
        with reporting(ctx):
            click.echo(settings_from(ctx).state_path())
        return
    click.echo(config_path(home_from()))


def _state_ref(ctx: click.Context, use_sandbox: bool, output: str | None) -> Any:
    from miva_sync.state_view import store_ref

    settings = settings_from(ctx)
    if output is None and not use_sandbox:
        output = settings.defaults.get("output")
    return store_ref(settings, sandbox=use_sandbox, output=output)


class When(click.ParamType):
    """ISO date/datetime (in the store's timezone unless an offset is given),
    unix seconds, today/yesterday, or a span (2h).

    Options are parsed before the settings that name the store's zone are
    loaded, so the text is checked now and read later by :func:`read_times`.
    """

    name = "WHEN"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from miva_sync.timespec import WhenText

        if isinstance(value, WhenText):
            return value
        try:
            return WhenText(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def read_times(
    ctx: click.Context, options: dict[str, Any], names: tuple[str, ...]
) -> None:
    """Replace the When options ``names`` by unix seconds, reading dates and
    times without an offset in the store's zone (flag > environment > profile)."""
    from miva_sync.timespec import WhenText

    typed = {n: options[n] for n in names if isinstance(options.get(n), WhenText)}
    if not typed:
        return  # no need to look for a zone (nor to read the config file)
    from miva_sync.config import load_timezone

    zone = load_timezone(shared(ctx))
    for name, value in typed.items():
        try:
            options[name] = value.resolve(zone)
        except ValueError as exc:
            raise click.BadParameter(
                str(exc), ctx, param_hint=f"'--{name.replace('_', '-')}'"
            ) from None


class Span(click.ParamType):
    """A length of time with its unit: 90m, 2h, 7d."""

    name = "SPAN"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from miva_sync.timespec import parse_span

        if isinstance(value, int):
            return value
        try:
            return parse_span(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def state_options(func: F) -> F:
    """Which store's state: the settings, or --sandbox; and its database target."""
    func = click.option(
        "-o",
        "--output",
        help="A database target (sqlite:///…, postgresql://…) whose own cursor copy "
        "to use (default: the profile's output).",
    )(func)
    return click.option(
        "--sandbox",
        "use_sandbox",
        is_flag=True,
        help="The built-in sandbox store's state (pull --sandbox).",
    )(func)


@cli.group()
def state() -> None:
    """Look at a store's saved state, rewind it or start it over.

    The store is the one the settings name (--profile, MIVA_URL +
    MIVA_STORE_CODE) or --sandbox. A database target keeps its own copy of
    the cursor; name it with -o (or set output in the profile) so these
    commands read and write that copy too.

    Examples:

        miva-sync state show

        miva-sync state show --max-age 2h || echo "the cron pull stopped working"
    """


@state.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@click.option(
    "--max-age",
    type=Span(),
    help="Exit 9 when the last successful run is older than SPAN (2h, 1d), "
    "or the active queue has delivered no order for longer.",
)
@state_options
@shared_options
@click.pass_context
def state_show(
    ctx: click.Context,
    as_json: bool,
    max_age: int | None,
    use_sandbox: bool,
    output: str | None,
) -> None:
    """Show the active mode, cursors, held orders and the last run.

    Cursors show as ISO time and raw value (order numbers for number mode).
    With --max-age, exit 9 when the last successful run finished longer ago:
    the alarm for a cron job that silently stopped working. In queue mode
    also when the queue has delivered no order for longer (since its first
    run if it never did): a mistyped queue code may answer like an empty
    queue, so pick a SPAN longer than the store's quietest stretch.

    Examples:

        miva-sync state show

        miva-sync state show --sandbox -o sqlite:///orders.db

        miva-sync state show --json | jq .watermark_iso

        miva-sync --profile shop state show --max-age 2h >/dev/null || alert
    """
    import json
    import time

    from miva_sync.state_view import check_age, load, no_state, render, view

    with reporting(ctx):
        ref = _state_ref(ctx, use_sandbox, output)
        record, source = load(ref)
        if record is None:
            raise no_state(ref.key)
        data = view(record, ref.key, source, now=time.time())
        if as_json:
            click.echo(json.dumps(data, indent=2))
        else:
            for line in render(data):
                click.echo(line)
        if max_age is not None:
            check_age(data, max_age)


@state.command("reset")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@click.option("--wait", is_flag=True, help="Wait for a running pull instead of exit 7.")
@state_options
@shared_options
@click.pass_context
def state_reset(
    ctx: click.Context, yes: bool, wait: bool, use_sandbox: bool, output: str | None
) -> None:
    """Forget a store's saved state (cursors, dedupe window, held orders).

    Asks first unless --yes. The next pull must name a start again
    (--since, --from-order or --queue). Takes the store's run lock, so it
    exits 7 while a pull is running.

    Example:

        miva-sync state reset --sandbox --yes
    """
    from miva_sync.state_view import describe_point, reset

    with reporting(ctx):
        ref = _state_ref(ctx, use_sandbox, output)
        if not yes:
            try:
                agreed = click.confirm(
                    f"Forget the saved state of {ref.key} in "
                    f"{ref.settings.state_path()}?",
                    default=False,
                    err=True,
                )
            except click.Abort:  # end of input: nobody there to answer
                raise click.UsageError(
                    "state reset forgets the store's cursor: pass --yes to confirm "
                    "(no terminal to ask on)"
                ) from None
            if not agreed:
                tell(ctx, "kept the saved state")
                return
        record, note = reset(ref, wait=wait)
    if record is None:
        tell(ctx, f"{ref.key} had no saved state")
    else:
        mode = record.get("mode", "?")
        cursor = record.get("cursors", {}).get(mode)
        tell(
            ctx,
            f"forgot {ref.key}: {mode} mode at {describe_point(mode, cursor)}; "
            "start again with --since, --from-order or --queue",
        )
    if note:
        tell(ctx, note, "warning")


@state.command("set")
@click.option("--order", type=click.IntRange(0), help="Number mode: start at order N.")
@click.option("--since", type=When(), help="Date mode: start at WHEN.")
@click.option("--updated", is_flag=True, help="With --since: updated mode.")
@click.option(
    "--forget-seen",
    is_flag=True,
    help="Also clear the dedupe window, so unchanged orders are emitted again.",
)
@click.option("--wait", is_flag=True, help="Wait for a running pull instead of exit 7.")
@state_options
@shared_options
@click.pass_context
def state_set(ctx: click.Context, /, **options: Any) -> None:
    """Move a store's cursor on purpose: the next pull reads from there.

    Makes that mode active and restarts its cursor at the point given,
    without pulling: the next pull (bare, or repeating its --since or
    --from-order, whose saved cursor wins) reads from there. A time in the
    future is refused. Rewinding keeps the dedupe window unless --forget-seen: orders
    already emitted unchanged are not emitted again. Prints before -> after.

    Examples:

        miva-sync state set --since 2026-11-01T00:00:00Z

        miva-sync state set --since 6h --updated

        miva-sync state set --order 1020 --forget-seen
    """
    from miva_sync.state_view import apply, describe_point, set_cursor

    with reporting(ctx):
        read_times(ctx, options, ("since",))
        since = options["since"]
        _refuse_future_since(since)
        ref = _state_ref(ctx, options["use_sandbox"], options["output"])

        def change(record: dict[str, Any] | None) -> Any:
            return set_cursor(
                record,
                order=options["order"],
                since=since,
                updated=options["updated"],
                forget_seen=options["forget_seen"],
            )

        done = apply(ref, change, wait=options["wait"])
    tell(
        ctx,
        f"{ref.key}: {done.mode} cursor {describe_point(done.mode, done.before)} -> "
        f"{describe_point(done.mode, done.after)}; the next pull reads from there"
        + ("; dedupe window cleared" if options["forget_seen"] else ""),
    )


def _refuse_future_since(since: int | None) -> None:
    """A cursor is never saved in the future (exit 2): see plan.refuse_future_since."""
    import time

    from miva_sync.sync.plan import FUTURE_TOLERANCE, refuse_future_since

    refuse_future_since(since, time.time(), FUTURE_TOLERANCE)


class Overlap(click.ParamType):
    name = "N|SPAN"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from miva_sync.sync.plan import validate_overlap

        try:
            return validate_overlap(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither a count (30) nor a span (45m)", param, ctx)


def hold_options(func: F) -> F:
    """--require-payment and --hold-for, shared by pull and listen (design.md §5)."""
    func = click.option(
        "--hold-for",
        type=Span(),
        default="24h",
        show_default=True,
        help="With --require-payment: emit a still-unpaid order (with a warning) "
        "this long after it was first seen (check, PO and terms orders).",
    )(func)
    return click.option(
        "--require-payment",
        is_flag=True,
        help="Hold orders with no payment record and pay_status 0 (unpaid admin "
        "orders) until they are paid or the hold expires.",
    )(func)


@cli.command()
@click.option(
    "--since",
    type=When(),
    help="Date mode: orders placed since WHEN (2026-11-01, 1700000000, 2h, 7d).",
)
@click.option(
    "--updated",
    is_flag=True,
    help="Use dt_updated (new AND updated orders; Miva 10.03+).",
)
@click.option(
    "--from-order", type=click.IntRange(0), help="Number mode: orders with id >= N."
)
@click.option(
    "--queue", "queue_code", metavar="CODE", help="Queue mode: pull a workflow queue."
)
@click.option(
    "--ack/--no-ack",
    default=True,
    help="Queue mode: acknowledge after a durable write (default); --no-ack for "
    "a queue whose downloads move orders out.",
)
@click.option(
    "--received-queue",
    metavar="CODE",
    help="Queue mode with --no-ack: the queue downloaded orders move to, read to "
    "recover a lost download.",
)
@click.option(
    "--overlap",
    type=Overlap(),
    help="Number mode: ids to re-query (default 30) or a span (45m).",
)
@click.option(
    "--lookback",
    type=Span(),
    help="Date/updated modes: re-query this far behind the watermark (default 15m).",
)
@click.option(
    "--until",
    type=When(),
    help="Upper bound: a backfill that leaves the saved cursor alone.",
)
@click.option(
    "--to-order",
    type=click.IntRange(0),
    help="Upper id bound: a backfill that leaves the saved cursor alone.",
)
@click.option(
    "--full-refresh",
    is_flag=True,
    help="With --since/--from-order: restart that mode's cursor at the start and "
    "deliver every order since then again (the ack journal and held orders are "
    "kept). Without it, a saved cursor wins over the start.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Print the plan and the store's count; write nothing.",
)
@click.option(
    "-o",
    "--output",
    default="-",
    show_default=True,
    help="- (stdout), FILE.jsonl, DIR/ (a file per order), sqlite:///PATH or postgresql://…",
)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["jsonl", "singer"]),
    default="jsonl",
    show_default=True,
)
@click.option(
    "--page-size", type=click.IntRange(1, 1000), default=100, show_default=True
)
@click.option(
    "--workers",
    type=click.IntRange(1, 16),
    default=1,
    show_default=True,
    help="Fetch a first pull or a bounded re-pull (--until/--to-order) in N "
    "concurrent windows; the cursor moves only over the windows completed in order.",
)
@click.option(
    "--columns",
    help="On-demand columns, comma separated ('default' = all useful ones).",
)
@click.option(
    "--emit-unchanged", is_flag=True, help="Emit orders again even if unchanged."
)
@click.option(
    "--progress/--no-progress",
    default=None,
    help="Progress bar (default: when stderr is a terminal).",
)
@click.option(
    "--wait",
    is_flag=True,
    help="Wait for another run of this store instead of exiting 7.",
)
@click.option(
    "--ids",
    metavar="LIST",
    help="Re-send exactly these orders (1020,1021,...) without touching the cursor.",
)
@click.option(
    "--ids-from",
    type=click.File("r"),
    help="Like --ids, reading ids (one per line, or comma separated) from FILE or -.",
)
@hold_options
@click.option(
    "--sandbox",
    "use_sandbox",
    is_flag=True,
    help="Pull from a built-in local sandbox store.",
)
@click.option(
    "--all-profiles",
    is_flag=True,
    help="Pull every profile in the config file, each in its own process and "
    "lock; one summary; exit code = the most severe.",
)
@click.option(
    "--jobs",
    type=click.IntRange(1, 32),
    default=3,
    show_default=True,
    help="With --all-profiles: how many profiles run at once.",
)
@shared_options
@click.pass_context
def pull(ctx: click.Context, /, **options: Any) -> None:
    """Pull orders and write them as JSON lines (stdout by default).

    Without --since/--from-order/--queue, resume this store's active mode from
    its saved watermark or queue (what cron runs). Messages go to stderr.

    Starts: --since/--from-order is where a mode begins when it has no saved
    cursor. Once it has one, the saved cursor wins and the run resumes (it
    says so on stderr), so a crontab may repeat its first command line with
    no gap and no duplicates. To pull a window again: --until/--to-order
    (delivers the whole window, leaves the cursor alone) or --full-refresh
    (restarts the mode at the start and delivers everything since again).
    Another mode (--updated after date mode, --queue) uses its own cursor. A
    start in the future is refused (exit 2). A mode becomes the active one
    with its first durable commit: a run that fails before it (a mistyped
    --queue, say) leaves the saved mode and cursor as they were.

    Queue mode (--queue CODE) reads an order-workflow queue page by page,
    writes each page durably and only then acknowledges its orders; a run that
    dies in between acknowledges them first next time. --no-ack is for queues
    that move orders on download; prefer the acknowledgement variant.

    Examples:

        miva-sync pull --since 2h

        miva-sync pull --since 2026-11-01 --updated -o orders.jsonl

        miva-sync pull --from-order 1020 --overlap 45m

        miva-sync pull --queue new_updated_orders -o orders.jsonl

        miva-sync pull --sandbox --since 30d | jq .id

        miva-sync pull --all-profiles --jobs 4
    """
    from miva_sync import flag_rules

    # the flags typed on the command line: a profile's defaults are never refused
    given = {
        name: value for name, value in options.items() if _from_command_line(ctx, name)
    }
    if options.pop("all_profiles"):
        with reporting(ctx):
            # times are still text here (each profile reads them in its zone):
            # each child checks what needs their values, and its saved mode
            flag_rules.check(given)
            _pull_all_profiles(ctx, options)
        return
    options.pop("jobs")
    from miva_sync.runner import run_pull

    with reporting(ctx):
        if not options["use_sandbox"]:
            _apply_profile_defaults(ctx, options, settings_from(ctx))
        read_times(ctx, options, ("since", "until"))
        given.update(
            {name: options[name] for name in ("since", "until") if name in given}
        )
        if options["output"] != "-":
            given["output"] = options["output"]  # -o x.db from a profile is refused too
        flag_rules.check(given)
        options["given"] = given  # the runner checks again in a bare pull's saved mode
        unknown = flag_rules.unknown_columns(options.get("columns"))
        if unknown:
            tell(ctx, flag_rules.column_warning(unknown), "warning")
        # after the defaults: a profile's columns may ask for payment_data
        options["passphrase"] = _payment_data_passphrase(options.get("columns"))
        run_pull(shared(ctx), options)


def _payment_data_passphrase(columns: str | None) -> str | None:
    """The passphrase, only when payment_data (card data) is asked for by name.

    From MIVA_SYNC_PASSPHRASE or a hidden prompt: never a flag, which other
    users could read in ps.
    """
    if not columns or "payment_data" not in columns.lower():
        return None
    passphrase = os.environ.get("MIVA_SYNC_PASSPHRASE")
    if not passphrase and sys.stdin.isatty():
        passphrase = click.prompt("Passphrase for payment data", hide_input=True)
    return passphrase or None


def _from_command_line(ctx: click.Context, name: str) -> bool:
    return ctx.get_parameter_source(name) in (
        click.core.ParameterSource.COMMANDLINE,
        click.core.ParameterSource.PROMPT,
    )


def _apply_profile_defaults(
    ctx: click.Context, options: dict[str, Any], settings: Any
) -> None:
    """A profile's defaults fill in the pull options the command line left out."""
    from miva_sync.timespec import parse_span

    defaults = settings.defaults
    if not defaults:
        return
    for name in ("output", "page_size"):
        if name in defaults and not _from_command_line(ctx, name):
            options[name] = defaults[name]
    if options["overlap"] is None and "overlap" in defaults:
        options["overlap"] = defaults["overlap"]
    if options["lookback"] is None and "lookback" in defaults:
        options["lookback"] = parse_span(defaults["lookback"])
    if options["columns"] is None and "columns" in defaults:
        options["columns"] = defaults["columns"]
    if "queue" in defaults and _names_no_mode(options):
        # The profile's queue starts queue mode on the first bare pull; once
        # state exists, a bare pull resumes whatever mode is active.
        from miva_sync.state import StateStore

        if StateStore(settings.state_path()).get(settings.store_key) is None:
            options["queue_code"] = defaults["queue"]


def _names_no_mode(options: dict[str, Any]) -> bool:
    chosen = ("since", "from_order", "queue_code", "until", "to_order", "ids")
    return not any(options.get(k) for k in chosen) and options.get("ids_from") is None


# pull options that --all-profiles cannot pass on to every profile
_PER_STORE = {
    "ids": "--ids",
    "ids_from": "--ids-from",
    "use_sandbox": "--sandbox",
}
_SHARED_PER_STORE = {
    "url": "--url",
    "store_code": "--store-code",
    "api_token": "--api-token",
    "signing_key": "--signing-key",
    "profile": "--profile",
}


def _forwarded_args(ctx: click.Context) -> list[str]:
    """The pull's own options, as given on the command line, for each child."""
    opts = shared(ctx)
    clash = [flag for key, flag in _SHARED_PER_STORE.items() if opts.get(key)]
    clash += [
        flag
        for key, flag in _PER_STORE.items()
        if _from_command_line(ctx, key) and ctx.params.get(key)
    ]
    if clash:
        raise click.UsageError(
            f"--all-profiles takes each store's settings from its profile; "
            f"drop {', '.join(clash)}"
        )
    from miva_sync.config import CONNECTION_KEYS

    args: list[str] = []
    for key in (*CONNECTION_KEYS, "log_format"):
        flag, value = f"--{key.replace('_', '-')}", opts.get(key)
        if value is True:
            args.append(flag)  # --insecure
        elif value is not None and value is not False:
            args.append(f"{flag}={value}")
    args += ["-v"] * int(opts.get("verbose") or 0)
    args += ["-q"] if opts.get("quiet") else []
    args += ["--debug"] if opts.get("debug") else []
    args.append("pull")
    for param in ctx.command.params:
        name = param.name or ""
        if (
            not isinstance(param, click.Option)
            or not param.expose_value
            or name in ("all_profiles", "jobs")
            or not _from_command_line(ctx, name)
        ):
            continue
        value = ctx.params.get(name)
        flag = max(param.opts, key=len)
        if param.is_flag and param.secondary_opts:
            args.append(flag if value else max(param.secondary_opts, key=len))
        elif param.is_flag:
            if value:
                args.append(flag)
        elif value is not None:
            # Span options arrive as seconds: pass them on as such ("900s")
            text = f"{value}s" if isinstance(param.type, Span) else str(value)
            args.append(f"{flag}={text}")
    return args


def _pull_all_profiles(ctx: click.Context, options: dict[str, Any]) -> None:
    from miva_sync import multi, ui
    from miva_sync.config import home_from, read_config
    from miva_sync.errors import ConfigError

    # the config file as it is, not the default profile's settings: one broken
    # profile must not stop the rest (its own run reports it)
    profiles = (read_config(home_from()) or {}).get("profiles", {})
    names = sorted(profiles)
    if not names:
        raise ConfigError(
            "--all-profiles: the config file has no profiles; add one with "
            "'miva-sync config init --profile NAME'"
        )
    child_args = _forwarded_args(ctx)
    if _from_command_line(ctx, "output"):
        to_stdout = names if options["output"] == "-" else []
    else:
        to_stdout = [
            name
            for name in names
            if isinstance(profiles[name], dict)
            and profiles[name].get("output", "-") == "-"
        ]
    if len(to_stdout) > 1:
        raise click.UsageError(
            f"profiles {', '.join(to_stdout)} would all write to stdout, interleaved: "
            "set output in each profile (miva-sync config init --force -o …) or "
            "pass -o with a database target"
        )
    quiet = bool(shared(ctx).get("quiet"))

    def done(result: Any) -> None:
        # each child's messages, whole and labelled, as it finishes
        for line in result.stderr.splitlines():
            sys.stderr.write(f"[{result.profile}] {line}\n")
        sys.stderr.flush()

    results = multi.run_profiles(names, child_args, jobs=options["jobs"], on_done=done)
    if not quiet:
        ui.print_table(
            f"miva-sync pull --all-profiles: {len(results)} profiles",
            ["profile", "exit", "result", "last message"],
            [
                [r.profile, str(r.exit_code), r.meaning, _clip(r.last_line, 160)]
                for r in results
            ],
            styles=[None if r.exit_code == 0 else "red" for r in results],
        )
    error = multi.summary_error(results)
    if error is not None:
        raise error


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option(
    "--secret",
    help="The secret path segment (better: MIVA_SYNC_WEBHOOK_SECRET, not visible in ps).",
)
@click.option(
    "-o",
    "--output",
    help="FILE.jsonl, DIR/, sqlite:///PATH or postgresql://… (- for stdout); "
    "required unless the profile sets output.",
)
@click.option(
    "--verify-with-api",
    is_flag=True,
    help="Treat deliveries as notifications: write the order as re-read from the store.",
)
@click.option(
    "--max-body",
    type=click.IntRange(1),
    default=1_000_000,
    show_default=True,
    help="Largest body accepted (bytes); larger ones get 413.",
)
@hold_options
@shared_options
@click.pass_context
def listen(ctx: click.Context, /, **options: Any) -> None:
    """Receive Miva order webhooks at /webhook/SECRET into an output.

    A 2xx is answered only after the order is durably written; repeats and
    older versions are no-ops. Point a Miva Order Workflow webhook at
    https://your-proxy/webhook/SECRET. Never takes the run lock, so it can
    share a folder or SQLite target with a cron pull.

    Example:

        MIVA_SYNC_WEBHOOK_SECRET=... miva-sync listen --port 8080 -o sqlite:///orders.db
    """
    from miva_sync.webhook import run_listen

    with reporting(ctx):
        if options["output"] is None:
            options["output"] = settings_from(ctx).defaults.get("output")
        if options["output"] is None:
            raise click.UsageError(
                "Missing option '-o' / '--output' (or set output in the profile)"
            )
        run_listen(shared(ctx), options)


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8080, show_default=True)
@click.option("--orders", type=click.IntRange(0), default=500, show_default=True)
@click.option("--seed", type=int, default=1, show_default=True)
@click.option("--store-code", default="SANDBOX", show_default=True)
@click.option("--api-token", default=None, help="Default: a random throwaway token.")
@click.option("--signing-key", default=None, help="Default: a random throwaway key.")
@click.option("--no-signing", is_flag=True, help="Accept token-only MIVA auth.")
@click.option(
    "--latency", type=click.FloatRange(0), default=0.0, help="Added latency (ms)."
)
@click.option("--fault-rate", type=click.FloatRange(0, 1), default=0.0)
@click.option(
    "--tie-order",
    type=click.Choice(["id", "id-desc", "random"]),
    default="random",
    show_default=True,
)
@click.option(
    "--timestamp-window", type=click.IntRange(0), default=120, show_default=True
)
@click.option("--no-dt-updated", is_flag=True, help="Behave like a store before 10.03.")
@click.option("--webhook", "webhook_url", default=None, help="POST orders to this URL.")
@click.option(
    "--webhook-paid-only",
    is_flag=True,
    help="Deliver webhooks only once an order has a payment record.",
)
@click.option(
    "--quirk",
    "quirks",
    metavar="NAME",
    multiple=True,
    help="Behave like a less friendly real store: ignore-sort-dt-updated, "
    "lenient-fields, ack-rewrites-order, unknown-queue-empty, auth-error-401, ... "
    "(repeatable; docs/sandbox.md).",
)
def sandbox(**options: Any) -> None:
    """Run a local Miva store emulator and print the settings to use it.

    Example:

        eval "$(miva-sync sandbox --port 0 &)"; miva-sync pull --since 30d
    """
    from miva_sync.sandbox.server import run_from_cli

    try:
        run_from_cli(**options)
    except ValueError as exc:  # e.g. a signing key that is not base64
        raise click.UsageError(str(exc)) from None


def _clip(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


@cli.command()
@click.option(
    "--since", type=When(), help="Date mode: orders placed since WHEN (2h, 7d, ISO)."
)
@click.option("--until", type=When(), help="Upper time bound (default: now).")
@click.option(
    "--updated",
    is_flag=True,
    help="Range by dt_updated, and count an older version in the target as incomplete.",
)
@click.option(
    "--from-order", type=click.IntRange(0), help="Number mode: orders with id >= N."
)
@click.option("--to-order", type=click.IntRange(0), help="Upper id bound.")
@click.option(
    "-o",
    "--output",
    required=True,
    help="The target to check: FILE.jsonl, DIR/, sqlite:///PATH or postgresql://…",
)
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print the report as JSON on stdout (missing, stale, extra: id lists).",
)
@click.option(
    "--repair",
    is_flag=True,
    help="Re-pull the missing and stale orders into the target (takes the run lock).",
)
@click.option(
    "--columns", help="With --repair: on-demand columns to re-pull (default as pull)."
)
@click.option(
    "--wait",
    is_flag=True,
    help="With --repair: wait for another run of this store instead of exiting 7.",
)
@click.option(
    "--sandbox", "use_sandbox", is_flag=True, help="Check against the built-in sandbox."
)
@shared_options
@click.pass_context
def verify(ctx: click.Context, /, **options: Any) -> None:
    """Prove an output holds every order of a range; --repair fills the gaps.

    Lists the store's orders in the range (base columns, 1000 a page) and
    compares them id by id with what the target holds: missing orders, stale
    versions (an older dt_updated) and extra orders the store no longer has.
    Exit 0 when the target is complete, 9 when it is not. In date and number
    modes a stale version is reported apart (those modes do not re-pull
    updates); with --updated it counts as incomplete.

    Examples:

        miva-sync verify --since 7d -o sqlite:///orders.db

        miva-sync verify --since 2026-11-01 --updated -o orders.jsonl --json

        miva-sync verify --from-order 1020 -o orders/ --repair
    """
    from miva_sync.verify import run_verify

    with reporting(ctx):
        read_times(ctx, options, ("since", "until"))
        report = run_verify(shared(ctx), options)
    if options["as_json"]:
        import json

        click.echo(json.dumps(report.as_json()))
    report.raise_if_incomplete()


def main() -> None:
    """Console entry point."""
    from miva_sync.stdio import guard_std_streams

    # first, before any file is opened: closed fds 1/2 must not be reused, a
    # closed stdout is exit 8, and a closed or full stderr never fails the run
    guard_std_streams()
    cli.main(prog_name="miva-sync")


# --log-format json: the final error line is a JSON line too (set per run)
_json_errors = False


def _wants_json(argv: list[str]) -> bool:
    """Before click parses anything: will errors be JSON lines? (the flag wins)"""
    flag = None
    for i, arg in enumerate(argv):
        if arg == "--":
            break
        if arg.startswith("--log-format="):
            flag = arg.partition("=")[2]
        elif arg == "--log-format":
            flag = next(iter(argv[i + 1 : i + 2]), None)
    if flag is not None and flag not in LOG_FORMATS:
        return False  # click refuses it, in text
    try:
        return log_format(flag) == "json"
    except MivaSyncError:
        return False  # the bad variable is reported, in text


def _fail(message: str, code: int) -> None:
    # Bytes stdout cannot take would fail Python's flush at exit and turn
    # this code into 120: drop them now (the run has failed anyway).
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except (OSError, ValueError, MivaSyncError):
        _close_stdout_quietly()
    line = (
        _json_error_line(message, code)
        if _json_errors
        else f"miva-sync: error: {message}"
    )
    # stderr may be closed or full (2>&-, 2>/dev/full): the exit code still
    # tells cron what happened, so a lost message must not change it
    with contextlib.suppress(OSError, ValueError):
        click.echo(line, err=True)
    sys.exit(code)


def _json_error_line(message: str, code: int) -> str:
    from miva_sync.stderr_log import json_log_line

    return json_log_line("error", message, exit_code=code)


def _flush_stdout() -> None:
    """Hand stdout its last bytes while a failure can still be reported (exit 8)."""
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _close_stdout_quietly()
        _fail("output closed (broken pipe)", 8)
    except (OSError, ValueError) as exc:
        _close_stdout_quietly()
        reason = getattr(exc, "strerror", None) or str(exc)
        _fail(f"cannot write to stdout: {reason}", 8)
    except MivaSyncError as exc:  # miva_sync.stdio.CheckedStdout
        _close_stdout_quietly()
        _fail(str(exc), exc.exit_code)


def _close_stdout_quietly() -> None:
    # Point fd 1 at /dev/null so Python's exit-time flush cannot raise again.
    # By number: sys.stdout may be None or a stand-in without a descriptor.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        return
    with contextlib.suppress(OSError):
        os.dup2(devnull, 1)
    if devnull != 1:
        os.close(devnull)

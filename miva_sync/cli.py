"""The command line: parse, build objects, call the library once, render, map errors.

Only this module imports click. Heavy modules (requests, rich, the sandbox) are
imported inside the commands that need them so ``--version`` and ``--help`` stay
instant for cron.
"""

from __future__ import annotations

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
            "-v", "--verbose", count=True, help="Show requests (secrets redacted)."
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
    """Set up logging for -v before a command runs the library."""
    opts = shared(ctx)
    if opts.get("verbose"):
        import logging

        logging.basicConfig(
            level=logging.DEBUG if opts["verbose"] > 1 else logging.INFO,
            format="miva-sync: %(message)s",
            stream=sys.stderr,
        )
        logging.getLogger("urllib3").setLevel(logging.WARNING)
    yield


def settings_from(ctx: click.Context) -> Any:
    from miva_sync.config import load_settings

    return load_settings(shared(ctx))


class MivaSyncGroup(click.Group):
    """The root group: every error becomes one stderr line and its exit code."""

    def main(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        kwargs["standalone_mode"] = False
        debug = os.environ.get("MIVA_SYNC_DEBUG") == "1" or "--debug" in (
            (args[0] if args else kwargs.get("args")) or sys.argv
        )
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
    7 locked, 8 output failed, 9 incomplete, 130 interrupted.
    """


@cli.command()
@shared_options
@click.pass_context
def check(ctx: click.Context) -> None:
    """Check the connection: settings, authentication and one small query.

    Example:

        miva-sync check --url https://shop.example.com/mm5/json.mvc
    """
    from miva_sync.client import MivaClient
    from miva_sync.query import ListQuery

    with reporting(ctx):
        settings = settings_from(ctx)
        settings.require_connection()
        with MivaClient.from_settings(settings) as client:
            page = client.list_orders(ListQuery(count=1))
    click.echo(
        f"ok: {settings.url} answered; the store holds {page.total_count} orders",
        err=True,
    )


class When(click.ParamType):
    """ISO date/datetime (UTC unless an offset is given), unix seconds, or a span (2h)."""

    name = "WHEN"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        import time

        from miva_sync.timespec import parse_when

        if isinstance(value, int):
            return value
        try:
            return parse_when(str(value), time.time())
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Span(click.ParamType):
    name = "SPAN"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from miva_sync.timespec import parse_span

        if isinstance(value, int):
            return value
        try:
            return parse_span(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


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
@shared_options
@click.pass_context
def pull(ctx: click.Context, **options: Any) -> None:
    """Pull orders and write them as JSON lines (stdout by default).

    Without --since/--from-order/--queue, resume this store's active mode from
    its saved watermark or queue (what cron runs). Messages go to stderr.

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
    """
    from miva_sync.runner import run_pull

    with reporting(ctx):
        run_pull(shared(ctx), options)


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
    required=True,
    help="FILE.jsonl, DIR/, sqlite:///PATH or postgresql://… (- for stdout).",
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
def listen(ctx: click.Context, **options: Any) -> None:
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


def main() -> None:
    """Console entry point."""
    cli.main(prog_name="miva-sync")


def _fail(message: str, code: int) -> None:
    click.echo(f"miva-sync: error: {message}", err=True)
    sys.exit(code)


def _close_stdout_quietly() -> None:
    # Point stdout at /dev/null so Python's exit-time flush cannot raise again.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except OSError:
        pass

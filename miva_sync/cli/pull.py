"""``miva-sync pull``: every mode of pulling orders, parsed into one request."""

from __future__ import annotations

import os
from typing import IO, Any

import click

from miva_sync.cli.common import (
    from_command_line,
    read_times,
    reporting,
    require_terminal,
    settings_from,
    shared,
    shared_options,
    tell,
)
from miva_sync.cli.completion import queue_codes
from miva_sync.cli.params import Overlap, Span, When, hold_options, wait_option


@click.command()
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
    "--queue",
    "queue_code",
    metavar="CODE",
    help="Queue mode: pull a workflow queue.",
    shell_complete=queue_codes,
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
    shell_complete=queue_codes,
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
    "--json",
    "as_json",
    is_flag=True,
    help="Print the run summary as one JSON object: on stdout with -o TARGET, "
    "else as the last stderr line (docs/schemas/run-summary.schema.json).",
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
    help="The stream written to stdout or a file: JSON lines (the orders as the "
    "store sent them) or Singer messages.",
)
@click.option(
    "--page-size",
    type=click.IntRange(1, 1000),
    default=100,
    show_default=True,
    help="Orders per request, 1 to 1000.",
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
@wait_option()
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

    \b
    Examples:
        miva-sync pull --since 2h
        miva-sync pull --since 2026-11-01 --updated -o orders.jsonl
        miva-sync pull --from-order 1020 --overlap 45m
        miva-sync pull --queue new_updated_orders -o orders.jsonl
        miva-sync pull --sandbox --since 30d | jq .id
        miva-sync pull --all-profiles --jobs 4
    """
    from miva_sync.app import flag_rules

    # the flags typed on the command line: a profile's defaults are never refused
    given = {
        name: value for name, value in options.items() if from_command_line(ctx, name)
    }
    if options.pop("all_profiles"):
        from miva_sync.cli.all_profiles import pull_all_profiles

        with reporting(ctx):
            # times are still text here (each profile reads them in its zone):
            # each child checks what needs their values, and its saved mode
            flag_rules.check(given)
            pull_all_profiles(ctx, options)
        return
    from miva_sync.app.pull import run_pull
    from miva_sync.app.requests import GlobalOptions, PullRequest

    with reporting(ctx):
        # --sandbox: the sandbox supplies the connection; no settings to load
        settings = None if options["use_sandbox"] else settings_from(ctx)
        if settings is not None:
            _apply_profile_defaults(ctx, options, settings)
        zone = settings.zone if settings is not None else None
        read_times(ctx, options, ("since", "until"), zone)
        given.update(
            {name: options[name] for name in ("since", "until") if name in given}
        )
        if options["output"] != "-":
            given["output"] = options["output"]  # -o x.db from a profile is refused too
        flag_rules.check(given)
        unknown = flag_rules.unknown_columns(options.get("columns"))
        if unknown:
            tell(ctx, flag_rules.column_warning(unknown), "warning")
        request = PullRequest.of(
            options,
            # after the defaults: a profile's columns may ask for payment_data
            passphrase=_payment_data_passphrase(options["columns"]),
            ids=_requested_ids(options["ids"], options["ids_from"]),
            # the dispatcher checks them again in a bare pull's saved mode
            given=given,
        )
        run_pull(GlobalOptions.of(shared(ctx)), request, settings)


def _requested_ids(text: str | None, source: IO[str] | None) -> tuple[int, ...] | None:
    """--ids and --ids-from together, parsed; None: neither was given."""
    from miva_sync.app.requests import parse_ids

    if text is None and source is None:
        return None
    return parse_ids((text or "") + ("\n" + source.read() if source else ""))


def _payment_data_passphrase(columns: str | None) -> str | None:
    """The passphrase, only when payment_data (card data) is asked for by name.

    From MIVA_SYNC_PASSPHRASE or a hidden prompt: never a flag, which other
    users could read in ps. Without either (no terminal), exit 3.
    """
    if not columns or "payment_data" not in columns.lower():
        return None
    passphrase = os.environ.get("MIVA_SYNC_PASSPHRASE")
    if not passphrase:
        require_terminal(
            "set MIVA_SYNC_PASSPHRASE to the passphrase that decrypts payment_data"
        )
        passphrase = click.prompt(
            "Passphrase for payment data", hide_input=True, err=True
        )
    return passphrase or None


def _apply_profile_defaults(
    ctx: click.Context, options: dict[str, Any], settings: Any
) -> None:
    """A profile's defaults fill in the pull options the command line left out."""
    from miva_sync.base.timespec import parse_span

    defaults = settings.defaults
    if not defaults:
        return
    for name in ("output", "page_size"):
        if name in defaults and not from_command_line(ctx, name):
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
        from miva_sync.state.file import StateStore

        if StateStore(settings.state_path()).get(settings.store_key) is None:
            options["queue_code"] = defaults["queue"]


def _names_no_mode(options: dict[str, Any]) -> bool:
    chosen = ("since", "from_order", "queue_code", "until", "to_order", "ids")
    return not any(options.get(k) for k in chosen) and options.get("ids_from") is None

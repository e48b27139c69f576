"""``miva-sync listen``: receive Miva order webhooks into an output."""

from __future__ import annotations

from typing import Any

import click

from miva_sync.cli.common import reporting, settings_from, shared, shared_options
from miva_sync.cli.params import bind_options, hold_options


@click.command()
@bind_options(8080, "Port to listen on; 0 picks a free one.")
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

    \b
    Examples:
        MIVA_SYNC_WEBHOOK_SECRET=... miva-sync listen --port 8080 -o sqlite:///orders.db
    """
    from miva_sync.app.listen import run_listen
    from miva_sync.app.requests import GlobalOptions, ListenRequest

    with reporting(ctx):
        if options["output"] is None:
            options["output"] = settings_from(ctx).defaults.get("output")
        if options["output"] is None:
            raise click.UsageError(
                "Missing option '-o' / '--output' (or set output in the profile)"
            )
        run_listen(GlobalOptions.of(shared(ctx)), ListenRequest.of(options))

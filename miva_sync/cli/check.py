"""``miva-sync check``: diagnose the connection to a store."""

from __future__ import annotations

import click

from miva_sync.cli.common import reporting, settings_from, shared, shared_options, tell
from miva_sync.cli.completion import queue_codes


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object on stdout.")
@click.option(
    "--queue",
    "queue_code",
    metavar="CODE",
    help="Also check this workflow queue (default: the profile's queue).",
    shell_complete=queue_codes,
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
    pull mode and one command line that pull takes as meant in this store's
    saved state (--json: suggested_mode, suggested_command). Every request
    reads a few orders at most; nothing is acknowledged.

    \b
    Examples:
        miva-sync check
        miva-sync --profile shop check --queue new_updated_orders --require queue
        miva-sync check --json | jq -r .suggested_command
    """
    import json

    from miva_sync.app.check import run_checks

    with reporting(ctx):
        settings = settings_from(ctx)
        queue = queue_code or settings.defaults.get("queue")
        report = run_checks(settings, queue=queue, require=require)
        if as_json:
            click.echo(json.dumps(report.to_json(), indent=2))
        elif not shared(ctx).get("quiet"):
            from miva_sync import console as ui

            ui.print_check(report.rows)
        error = report.error()
        if error is not None:
            raise error
    if not as_json:
        from miva_sync.store.urls import redact_url

        suggested = report.suggestion or "none (see the suggestion row)"
        tell(
            ctx,
            f"ok: {redact_url(settings.url or '')} answered; the store holds "
            f"{report.total_count} orders; suggested mode: {suggested}",
        )

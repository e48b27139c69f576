"""``miva-sync verify``: prove an output holds every order of a range."""

from __future__ import annotations

from typing import Any

import click

from miva_sync.cli.common import read_times, reporting, shared, shared_options
from miva_sync.cli.params import When, wait_option


@click.command()
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
@wait_option("With --repair: ")
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

    \b
    Examples:
        miva-sync verify --since 7d -o sqlite:///orders.db
        miva-sync verify --since 2026-11-01 --updated -o orders.jsonl --json
        miva-sync verify --from-order 1020 -o orders/ --repair
    """
    from miva_sync.app.requests import GlobalOptions, VerifyRequest
    from miva_sync.app.verify import run_verify

    with reporting(ctx):
        read_times(ctx, options, ("since", "until"))
        request = VerifyRequest.of(options)
        report = run_verify(GlobalOptions.of(shared(ctx)), request)
    if request.as_json:
        import json

        click.echo(json.dumps(report.as_json()))
    report.raise_if_incomplete()

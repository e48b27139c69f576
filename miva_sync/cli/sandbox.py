"""``miva-sync sandbox``: run the local Miva store emulator."""

from __future__ import annotations

from typing import Any

import click


@click.command()
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

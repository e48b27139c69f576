"""``miva-sync sandbox``: run the local Miva store emulator."""

from __future__ import annotations

from typing import Any

import click

from miva_sync.cli.params import bind_options


@click.command()
@bind_options(
    8090,  # not listen's 8080, so the two run side by side
    "Port to serve on; 0 picks a free one (MIVA_URL shows it).",
)
@click.option(
    "--orders",
    type=click.IntRange(0),
    default=500,
    show_default=True,
    help="Orders visible at start (a few late numbers stay hidden).",
)
@click.option(
    "--seed",
    type=int,
    default=1,
    show_default=True,
    help="Seed for the orders, the random tie order and the random faults.",
)
@click.option(
    "--store-code",
    default="SANDBOX",
    show_default=True,
    help="The Store_Code requests must send.",
)
@click.option("--api-token", default=None, help="Default: a random throwaway token.")
@click.option("--signing-key", default=None, help="Default: a random throwaway key.")
@click.option("--no-signing", is_flag=True, help="Accept token-only MIVA auth.")
@click.option(
    "--latency", type=click.FloatRange(0), default=0.0, help="Added latency (ms)."
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0, 1),
    default=0.0,
    help="Share of requests that get a random fault (0 to 1).",
)
@click.option(
    "--tie-order",
    type=click.Choice(["id", "id-desc", "random"]),
    default="random",
    show_default=True,
    help="How rows with equal sort keys come back.",
)
@click.option(
    "--timestamp-window",
    type=click.IntRange(0),
    default=120,
    show_default=True,
    help="Seconds of Miva_Request_Timestamp skew accepted; 0 turns the check off.",
)
@click.option("--no-dt-updated", is_flag=True, help="Behave like a store before 10.03.")
@click.option(
    "--webhook",
    "webhook_url",
    metavar="URL",
    default=None,
    help="POST orders to this loopback URL: every order at start, then each new "
    "or updated one (see --add-every).",
)
@click.option(
    "--add-every",
    type=click.FloatRange(0),
    default=0.0,
    metavar="SECONDS",
    help="While serving, add a new order and update an older one every SECONDS "
    "(default 0: never).",
)
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

    Prints `export MIVA_URL=…` lines (MIVA_STORE_CODE, MIVA_API_TOKEN,
    MIVA_SIGNING_KEY) and MIVA_SANDBOX_PID, its process id, then serves until
    SIGINT or SIGTERM. Stop it and unset its settings when done: exported, they
    would override a profile's.

    Example:

    \b
        eval "$(miva-sync sandbox --port 0 &)"
        miva-sync pull --since 30d
        kill "$MIVA_SANDBOX_PID"; unset MIVA_URL MIVA_STORE_CODE MIVA_API_TOKEN MIVA_SIGNING_KEY
    """
    from miva_sync.errors import ConfigError
    from miva_sync.sandbox.server import BindError, run_from_cli

    try:
        run_from_cli(**options)
    except BindError as exc:  # a busy port: one line, exit 3
        raise ConfigError(str(exc)) from None
    except ValueError as exc:  # e.g. a signing key that is not base64
        raise click.UsageError(str(exc)) from None

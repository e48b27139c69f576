"""``miva-sync state``: look at, rewind or forget a store's saved state."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import click

from miva_sync.cli.common import (
    F,
    read_times,
    reporting,
    require_terminal,
    settings_from,
    shared_options,
    tell,
)
from miva_sync.cli.params import Span, When, wait_option

if TYPE_CHECKING:
    from miva_sync.app.state_view import Change
    from miva_sync.state.record import StateRecord


def _state_ref(ctx: click.Context, use_sandbox: bool, output: str | None) -> Any:
    from miva_sync.app.state_view import store_ref

    settings = settings_from(ctx)
    if output is None and not use_sandbox:
        output = settings.defaults.get("output")
    return store_ref(settings, sandbox=use_sandbox, output=output)


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


@click.group()
def state() -> None:
    """Look at a store's saved state, rewind it or start it over.

    The store is the one the settings name (--profile, MIVA_URL +
    MIVA_STORE_CODE) or --sandbox. A database target keeps its own copy of
    the cursor; name it with -o (or set output in the profile) so these
    commands read and write that copy too.

    \b
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

    \b
    Examples:
        miva-sync state show
        miva-sync state show --sandbox -o sqlite:///orders.db
        miva-sync state show --json | jq .watermark_iso
        miva-sync --profile shop state show --max-age 2h >/dev/null || alert
    """
    import json
    import time

    from miva_sync.app.state_view import (
        StaleStateError,
        check_age,
        load,
        no_state,
        render,
        view,
    )

    with reporting(ctx):
        ref = _state_ref(ctx, use_sandbox, output)
        record, source = load(ref)
        if record is None:
            raise no_state(ref.key)
        data = view(record, ref.key, source, now=time.time())
        stale = None
        if max_age is not None:
            try:
                check_age(data, max_age)
            except StaleStateError as exc:
                stale = exc  # raised after the answer is printed
        if as_json:
            # docs/schemas/state-show.schema.json
            data["exit_status"] = int(stale.exit_code) if stale else 0
            click.echo(json.dumps(data, indent=2))
        else:
            for line in render(data):
                click.echo(line)
        if stale is not None:
            raise stale


@state.command("reset")
@click.option("--yes", "-y", is_flag=True, help="Do not ask.")
@wait_option()
@state_options
@shared_options
@click.pass_context
def state_reset(
    ctx: click.Context,
    yes: bool,
    wait: bool | int,
    use_sandbox: bool,
    output: str | None,
) -> None:
    """Forget a store's saved state (cursors, dedupe window, held orders).

    Asks first unless --yes. The next pull must name a start again
    (--since, --from-order or --queue). Takes the store's run lock, so it
    exits 7 while a pull is running.

    \b
    Examples:
        miva-sync state reset --sandbox --yes
    """
    from miva_sync.app.state_view import describe_point, reset

    with reporting(ctx):
        ref = _state_ref(ctx, use_sandbox, output)
        if not yes:
            require_terminal("pass --yes to forget the store's saved state")
            agreed = click.confirm(
                f"Forget the saved state of {ref.key} in {ref.settings.state_path()}?",
                default=False,
                err=True,
            )
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
@wait_option()
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

    \b
    Examples:
        miva-sync state set --since 2026-11-01T00:00:00Z
        miva-sync state set --since 6h --updated
        miva-sync state set --order 1020 --forget-seen
    """
    from miva_sync.app.state_view import apply, describe_point, set_cursor

    with reporting(ctx):
        read_times(ctx, options, ("since",))
        since = options["since"]
        _refuse_future_since(since)
        ref = _state_ref(ctx, options["use_sandbox"], options["output"])

        def change(record: StateRecord | None) -> Change:
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

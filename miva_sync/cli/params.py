"""The option types the commands share: times, spans, zones, overlaps, --wait.

Values are checked as click parses them (exit 2 naming the option); times that
need the store's zone are read later (:func:`miva_sync.cli.common.read_times`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


class TimeZone(click.ParamType):
    """An IANA time zone name (America/Los_Angeles, UTC), checked at once."""

    name = "ZONE"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from miva_sync.base.timespec import zone_named

        try:
            zone_named(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)
        return str(value).strip()


class When(click.ParamType):
    """ISO date/datetime (in the store's timezone unless an offset is given),
    unix seconds, today/yesterday, or a span (2h).

    Options are parsed before the settings that name the store's zone are
    loaded, so the text is checked now and read later by :func:`read_times`.
    """

    name = "WHEN"

    def convert(self, value: Any, param: Any, ctx: Any) -> Any:
        from miva_sync.base.timespec import WhenText

        if isinstance(value, WhenText):
            return value
        try:
            return WhenText(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class Span(click.ParamType):
    """A length of time with its unit: 90m, 2h, 7d."""

    name = "SPAN"

    def convert(self, value: Any, param: Any, ctx: Any) -> int:
        from miva_sync.base.timespec import parse_span

        if isinstance(value, int):
            return value
        try:
            return parse_span(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class WaitFor(click.ParamType):
    """``--wait`` alone (True: without limit) or ``--wait SPAN`` (seconds)."""

    name = "SPAN"

    def convert(self, value: Any, param: Any, ctx: Any) -> bool | int:
        from miva_sync.base.timespec import parse_span

        if isinstance(value, bool | int):
            return value
        try:
            return parse_span(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


def wait_option(when: str = "") -> Callable[[F], F]:
    """``--wait[=SPAN]``: for another run's lock, without limit or at most SPAN.

    The value is optional: ``--wait --no-progress`` waits without limit, and
    ``--wait 10m`` or ``--wait=10m`` at most 10 minutes, then exits 7."""
    return click.option(
        "--wait",
        type=WaitFor(),
        is_flag=False,
        flag_value=True,
        default=False,
        metavar="[SPAN]",
        help=f"{when}Wait for another run of this store instead of exiting 7: "
        "without limit, or at most SPAN (--wait 10m), then exit 7.",
    )


class Overlap(click.ParamType):
    name = "N|SPAN"

    def convert(self, value: Any, param: Any, ctx: Any) -> str:
        from miva_sync.sync.plan import validate_overlap

        try:
            return validate_overlap(str(value))
        except ValueError:
            self.fail(f"{value!r} is neither a count (30) nor a span (45m)", param, ctx)


def hold_options(func: F) -> F:
    """--require-payment and --hold-for, shared by pull and listen
    (docs/design.md §5.8)."""
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


def bind_options(port: int, port_help: str) -> Callable[[F], F]:
    """``--host`` and ``--port``: where a server command (listen, sandbox) binds."""

    def decorate(func: F) -> F:
        func = click.option(
            "--port",
            type=click.IntRange(0, 65535),
            default=port,
            show_default=True,
            help=port_help,
        )(func)
        return click.option(
            "--host", default="127.0.0.1", show_default=True, help="Address to bind."
        )(func)

    return decorate

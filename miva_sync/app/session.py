"""Wire a command's objects together: settings, state, lock, client, sink, reporter.

Kept out of ``cli.py`` so the command stays a thin parse-and-call, and out of
the engine so the engine only sees small interfaces.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from miva_sync.config import Settings, load_settings
from miva_sync.errors import UsageError

if TYPE_CHECKING:
    from miva_sync.console import ConsoleReporter
    from miva_sync.sinks.base import Sink
    from miva_sync.state.file import StateStore
    from miva_sync.store.client import MivaClient
    from miva_sync.store.query import ListQuery
    from miva_sync.store.urls import StoreIdentity

SANDBOX_STORE_KEY = "sandbox"
SANDBOX_SEED = 1
SANDBOX_ORDERS = 500


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """systemd and cron stop jobs with SIGTERM: treat it like Ctrl-C (exit 130)."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (e.g. inside a test runner thread)
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def connection(
    shared: dict[str, Any], use_sandbox: bool
) -> Iterator[tuple[Settings, str]]:
    """Settings and the state key, for a real store or the built-in sandbox."""
    if not use_sandbox:
        settings = load_settings(shared)
        settings.require_connection()
        yield settings, settings.store_key
        return
    from miva_sync.sandbox import Sandbox

    # Anchored at the start of the UTC day, the demo store holds the same orders
    # on every start that day, so a bare `pull --sandbox` resumes as it would
    # against a real store instead of seeing every order "change".
    anchor = time.time() // 86400 * 86400
    with Sandbox(orders=SANDBOX_ORDERS, seed=SANDBOX_SEED, anchor=anchor) as sandbox:
        overrides = {
            "url": sandbox.url,
            "store_code": sandbox.store_code,
            "api_token": sandbox.api_token,
            "signing_key": sandbox.signing_key,
        }
        yield load_settings({**shared, **overrides}), SANDBOX_STORE_KEY


def store_identity(settings: Settings, key: str) -> StoreIdentity:
    """The store a database target holds (issue 19): URL and store code, not
    the state key, so a renamed profile reaches its own database; the
    built-in sandbox, which moves port every run, has one fixed identity.
    The state key is an alias: older databases recorded it."""
    from miva_sync.store.urls import StoreIdentity

    if key == SANDBOX_STORE_KEY:
        return StoreIdentity.sandbox()
    return StoreIdentity.of(settings.url, settings.store_code, aliases=(key,))


@dataclass
class Session:
    """One command's view of one store: settings, state key, state, client."""

    settings: Settings
    key: str
    state: StateStore
    client: MivaClient

    @property
    def identity(self) -> StoreIdentity:
        return store_identity(self.settings, self.key)


@contextlib.contextmanager
def store_session(
    shared: dict[str, Any], use_sandbox: bool, *, lock: bool, wait: bool = False
) -> Iterator[Session]:
    """SIGTERM as Ctrl-C, the store (or the sandbox), its state, optionally its
    run lock, and a client: the set-up every command that syncs a store shares."""
    from miva_sync.state.file import StateStore
    from miva_sync.store.client import MivaClient

    with sigterm_as_interrupt(), connection(shared, use_sandbox) as (settings, key):
        state = StateStore(settings.state_path())
        held = state.run_lock(key, wait=wait) if lock else contextlib.nullcontext()
        with held, MivaClient.from_settings(settings) as client:
            yield Session(settings, key, state, client)


def base_query_from(options: dict[str, Any]) -> ListQuery:
    """The page size and on-demand columns of a pull, from its options."""
    from miva_sync.store.query import DEFAULT_COLUMNS, ListQuery, parse_columns

    try:
        columns = (
            parse_columns(options["columns"]) if options["columns"] else DEFAULT_COLUMNS
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if options.get("require_payment"):
        from miva_sync.sync.held import with_payments

        columns = with_payments(columns)
    try:
        return ListQuery(
            count=options["page_size"],
            columns=columns,
            passphrase=options.get("passphrase"),
        )
    except ValueError as exc:  # payment_data without its passphrase
        raise UsageError(str(exc)) from None


def reporter_from(shared: dict[str, Any], options: dict[str, Any]) -> ConsoleReporter:
    from miva_sync.console import ConsoleReporter

    return ConsoleReporter(
        quiet=bool(shared.get("quiet")), progress=options["progress"]
    )


def starting_record(
    sink: Sink,
    store_key: str,
    record: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """The state a run starts from.

    A database target's own copy of the cursor is authoritative for it: it
    commits with the rows, so it is never ahead of or behind them; a database
    with no copy yet holds none of the orders the dedupe window remembers.
    A run continues cursor and dedupe window into any other target (a new
    file per run gets just the new orders). A mode that begins at its start
    into another target than the last one seeds a new consumer: that run
    emits unchanged orders too (see :func:`is_new_consumer`), rather than
    dropping the window the still-active mode relies on.
    """
    own = sink.load_checkpoint(store_key)
    if own is not None:
        return own
    if record is None:
        return None
    if sink.keeps_checkpoint:
        return {**record, "dedupe": {}, "output": None}
    return record


def is_new_consumer(sink: Sink, record: dict[str, Any] | None, *, begins: bool) -> bool:
    """A run that begins a mode (``begins``) into another target than the
    record's last one: the dedupe window remembers orders this target never
    received, so the run must not skip them."""
    from miva_sync.sinks import identity

    return (
        begins
        and record is not None
        and record.get("target") not in (None, identity(sink))
    )


def check_flags_in_mode(options: dict[str, Any], mode: str | None) -> None:
    """The flag table (flag_rules.py) once the mode is known: a bare pull's
    mode comes from the saved state, so the command line could not check it.
    Only flags given on the command line count (``options["given"]``), not a
    profile's defaults; library callers pass none and are not checked."""
    given = options.get("given")
    if given is None or mode is None:
        return
    from miva_sync.app.flag_rules import check

    check(given, mode=mode)


def check_start(
    options: dict[str, Any], record: dict[str, Any] | None, client: MivaClient
) -> None:
    """Before a pull's plan: the flag table in the saved mode (bare pulls), and
    a ``--from-order`` beyond the store's highest order number (exit 2).

    The store is read (one Count-1 request sorted by ``-id``) only when the
    start is above the number cursor's watermark: an order number at or below
    one already seen cannot be in the future, so a crontab repeating its
    ``--from-order`` costs nothing.
    """
    from miva_sync.store.orders import order_id
    from miva_sync.store.query import ListQuery
    from miva_sync.sync.plan import DEFAULT_OVERLAP, refuse_future_order

    explicit = options["since"] is not None or options["from_order"] is not None
    if not explicit:
        check_flags_in_mode(options, record.get("mode") if record else None)
    from_order = options["from_order"]
    if from_order is None:
        return
    cursor = ((record or {}).get("cursors") or {}).get("number") or {}
    seen = cursor.get("watermark")
    if isinstance(seen, int) and from_order <= seen:
        return
    top = client.list_orders(ListQuery(count=1).sorted_by("id", descending=True))
    highest = order_id(top.orders[0]) if top.orders else None
    overlap = options["overlap"] or str(cursor.get("overlap", DEFAULT_OVERLAP))
    refuse_future_order(from_order, highest, overlap)


# A pull allocates each page's order objects in a burst and frees them by
# reference counting; the cycle collector's default (a young collection every
# 700 net container allocations) would run about ten times per page for
# nothing. Measured: about 7% of a --workers 4 backfill (benchmarks/README.md).
GC_YOUNG_THRESHOLD = 10_000


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect cyclic garbage less often for the duration of a pull."""
    import gc

    before = gc.get_threshold()
    gc.set_threshold(max(GC_YOUNG_THRESHOLD, before[0]), *before[1:])
    try:
        yield
    finally:
        gc.set_threshold(*before)


def run_pull(shared: dict[str, Any], options: dict[str, Any]) -> None:
    """``miva-sync pull``: resolve the plan, hold the lock, run, report."""
    with fewer_collections():
        _run_pull(shared, options)


def _run_pull(shared: dict[str, Any], options: dict[str, Any]) -> None:
    from miva_sync.app.queue import is_bare, run_queue, saved_mode
    from miva_sync.sinks import open_sink
    from miva_sync.store.client import MivaClient
    from miva_sync.sync.held import DEFAULT_HOLD_FOR
    from miva_sync.sync.plan import (
        FUTURE_TOLERANCE,
        PullOptions,
        make_plan,
        refuse_future_since,
    )
    from miva_sync.sync.pull import PullRun

    if options.get("ids") is not None or options.get("ids_from") is not None:
        from miva_sync.app.resend import run_resend

        run_resend(shared, options)
        return
    queue_flags = options["queue_code"] is not None or not options["ack"]
    bare_mode = saved_mode(shared, options) if is_bare(options) else None
    if queue_flags or options.get("received_queue") or bare_mode == "queue":
        check_flags_in_mode(options, "queue" if options["queue_code"] else bare_mode)
        run_queue(shared, options)
        return
    # before anything connects or saves (exit 2): a start in the future
    refuse_future_since(options["since"], time.time(), FUTURE_TOLERANCE)
    pull_options = PullOptions(
        since=options["since"],
        updated=options["updated"],
        from_order=options["from_order"],
        until=options["until"],
        to_order=options["to_order"],
        lookback=options["lookback"],
        overlap=options["overlap"],
        emit_unchanged=options["emit_unchanged"],
        full_refresh=bool(options.get("full_refresh")),
    )
    base_query = base_query_from(options)
    reporter = reporter_from(shared, options)
    dry_run = options["dry_run"]

    saves_state = not (dry_run or pull_options.bounded)
    with store_session(
        shared, options["use_sandbox"], lock=saves_state, wait=options["wait"]
    ) as session:
        key, state, client = session.key, session.state, session.client
        record = state.get(key) if not pull_options.bounded else None
        if dry_run:
            check_start(options, record, client)
            plan = make_plan(record, pull_options)
            plan.zone = session.settings.zone  # the window in the store's zone too
            run = PullRun(client, _NoSink(), plan, key, None, reporter, base_query)
            for notice in plan.notices:
                reporter.info(notice)
            reporter.table({"dry run": "nothing is written", **run.preview()})
            return
        sink = open_sink(
            options["output"],
            source="pull",
            fmt=options["fmt"],
            wait=options["wait"],
            store=session.identity,
        )
        try:
            if saves_state:
                record = starting_record(sink, key, record)
            check_start(options, record, client)
            plan = make_plan(record, pull_options)
            plan.zone = session.settings.zone
            # a mode beginning at its start into another target seeds a new consumer
            new_consumer = is_new_consumer(sink, record, begins=plan.watermark is None)
            for notice in plan.notices:
                reporter.info(notice)
            run = PullRun(
                client,
                sink,
                plan,
                key,
                state if saves_state else None,
                reporter,
                base_query,
                emit_unchanged=pull_options.emit_unchanged
                # --full-refresh delivers its whole window again
                or pull_options.full_refresh
                or new_consumer,
                require_payment=options.get("require_payment", False),
                hold_for=options.get("hold_for") or DEFAULT_HOLD_FOR,
                # --workers: each worker thread gets its own client (session)
                workers=options.get("workers") or 1,
                make_client=lambda: MivaClient.from_settings(session.settings),
            )
            with reporter:
                result = run.run()
        finally:
            sink.close()
    reporter.info(
        f"{result.emitted} orders emitted, {result.unchanged} unchanged skipped"
        + (
            f", {result.held} held unpaid, {result.released} released"
            if result.held or result.released
            else ""
        )
        + f"; {plan.mode} watermark {plan.describe_cursor(result.watermark)},"
        f" queried from {plan.describe_cursor(result.lo)}; "
        f"{result.requests} requests in {result.seconds:.1f}s"
        + ("" if saves_state else "; saved state untouched")
    )


class _NoSink:
    description = "nothing (dry run)"
    keeps_checkpoint = False

    def write(self, orders: list[dict[str, Any]]) -> None:
        raise AssertionError("a dry run writes nothing")

    def commit(self, store_key: str, checkpoint: dict[str, Any] | None) -> None:
        raise AssertionError("a dry run writes nothing")

    def load_checkpoint(self, store_key: str) -> dict[str, Any] | None:
        return None

    def close(self) -> None:
        return None

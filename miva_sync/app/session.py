"""Wire a command's objects together: settings, state, lock, client, sink, reporter.

Shared by the use cases (pull in every mode, verify, listen): kept out of
``cli/`` so a command stays a thin parse-and-call, and out of the engine so
the engine only sees small interfaces.
"""

from __future__ import annotations

import contextlib
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from miva_sync.app.requests import GlobalOptions
from miva_sync.config import Settings, load_settings
from miva_sync.errors import UsageError

if TYPE_CHECKING:
    from miva_sync.console import ConsoleReporter
    from miva_sync.sinks.base import Sink
    from miva_sync.state.file import StateStore
    from miva_sync.state.record import StateRecord
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


def waiting_line(message: str) -> None:
    """Say who holds the run lock a command is about to wait for."""
    from miva_sync import console

    console.info(message)


@contextlib.contextmanager
def connection(
    options: GlobalOptions, use_sandbox: bool, settings: Settings | None = None
) -> Iterator[tuple[Settings, str]]:
    """Settings and the state key, for a real store or the built-in sandbox.

    ``settings``: a real store's, when the caller has loaded them already from
    the same ``options`` (the command line has, for a profile's defaults):
    they are not loaded a second time.
    """
    if not use_sandbox:
        settings = settings or load_settings(options.settings_flags())
        settings.require_connection()
        yield settings, settings.store_key
        return
    from miva_sync.sandbox import Sandbox

    # Anchored at the start of the UTC day, the demo store holds the same orders
    # on every start that day, so a bare `pull --sandbox` resumes as it would
    # against a real store instead of seeing every order "change".
    anchor = time.time() // 86400 * 86400
    with Sandbox(orders=SANDBOX_ORDERS, seed=SANDBOX_SEED, anchor=anchor) as sandbox:
        reach = replace(
            options,
            url=sandbox.url,
            store_code=sandbox.store_code,
            api_token=sandbox.api_token,
            signing_key=sandbox.signing_key,
        )
        yield load_settings(reach.settings_flags()), SANDBOX_STORE_KEY


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
    options: GlobalOptions,
    use_sandbox: bool,
    *,
    lock: bool,
    wait: bool | float = False,
    settings: Settings | None = None,
    state: StateStore | None = None,
) -> Iterator[Session]:
    """SIGTERM as Ctrl-C, the store (or the sandbox), its state, optionally its
    run lock, and a client: the set-up every command that syncs a store shares.

    ``wait``: for a run lock another run holds, without limit (True), at most
    that many seconds, or not at all (False: exit 7 at once). ``settings``
    (see :func:`connection`) and ``state``: what the caller has already read
    of the store, used rather than read again (a state store that has read
    the file parses it again only if it changed)."""
    from miva_sync.state.file import StateStore
    from miva_sync.store.client import MivaClient

    with sigterm_as_interrupt(), connection(options, use_sandbox, settings) as reach:
        settings, key = reach
        if state is None or state.path != settings.state_path():
            state = StateStore(settings.state_path())
        held = (
            state.run_lock(key, wait=wait, on_wait=waiting_line)
            if lock
            else contextlib.nullcontext()
        )
        with held, MivaClient.from_settings(settings) as client:
            yield Session(settings, key, state, client)


def base_query(
    columns: str | None,
    *,
    page_size: int = 100,
    require_payment: bool = False,
    passphrase: str | None = None,
) -> ListQuery:
    """The page size and on-demand columns of a pull (a typo refused, exit 2)."""
    from miva_sync.store.query import DEFAULT_COLUMNS, ListQuery, parse_columns

    try:
        parsed = parse_columns(columns) if columns else DEFAULT_COLUMNS
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    if require_payment:
        from miva_sync.sync.held import with_payments

        parsed = with_payments(parsed)
    try:
        return ListQuery(count=page_size, columns=parsed, passphrase=passphrase)
    except ValueError as exc:  # payment_data without its passphrase
        raise UsageError(str(exc)) from None


def reporter(options: GlobalOptions, *, progress: bool | None) -> ConsoleReporter:
    """The console a run reports to (progress None: on a terminal, elsewhere
    only with -v, as a plain line every 30 s)."""
    from miva_sync.console import ConsoleReporter

    return ConsoleReporter(
        quiet=options.quiet, progress=progress, verbose=options.verbose
    )


def starting_record(
    sink: Sink,
    store_key: str,
    record: StateRecord | None,
) -> StateRecord | None:
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


def is_new_consumer(sink: Sink, record: StateRecord | None, *, begins: bool) -> bool:
    """A run that begins a mode (``begins``) into another target than the
    record's last one: the dedupe window remembers orders this target never
    received, so the run must not skip them."""
    from miva_sync.sinks import identity

    return (
        begins
        and record is not None
        and record.get("target") not in (None, identity(sink))
    )


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

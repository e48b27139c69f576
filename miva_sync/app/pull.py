"""``miva-sync pull``: one request, exactly one mode.

:func:`run_pull` sends a :class:`PullRequest` to one of three modes: a
re-send of given orders (``--ids``), a queue (``--queue``, or a bare pull
whose active mode is queue), or a window of the store's orders from a cursor
(date, updated and number modes). With ``--dry-run`` a queue or a window only
previews. A bare pull names no mode and resumes the one the state file saved.

A queue and a window run the same way (:meth:`Mode.run`): the store's
session (with the run lock when the run saves state), the output, the state
the run starts from, the plan, the engine in sync/, one summary line. What
differs is each mode's plan and engine.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from miva_sync.app import flag_rules
from miva_sync.app.requests import GlobalOptions, PullRequest
from miva_sync.app.session import (
    Session,
    base_query,
    connection,
    fewer_collections,
    is_new_consumer,
    reporter,
    starting_record,
    store_identity,
    store_session,
)
from miva_sync.config import Settings, load_settings
from miva_sync.errors import (
    ExitStatus,
    InterruptedRunError,
    MivaSyncError,
    UsageError,
)
from miva_sync.sync.held import DEFAULT_HOLD_FOR
from miva_sync.sync.plan import FUTURE_TOLERANCE, Plan, make_plan, refuse_future_since

if TYPE_CHECKING:
    from miva_sync.console import ConsoleReporter
    from miva_sync.sinks.base import Sink
    from miva_sync.state.file import StateStore
    from miva_sync.state.record import StateRecord
    from miva_sync.store.query import ListQuery
    from miva_sync.sync.pull import PullRun
    from miva_sync.sync.queue import QueueRun
    from miva_sync.sync.queue_state import QueuePlan
    from miva_sync.sync.summary import RunSummary

MISSING_SHOWN = 30  # order numbers a re-send names when the store lacks them

# queue mode's modules are imported by queue mode alone (start-up)
P = TypeVar("P", Plan, "QueuePlan")
E = TypeVar("E", "PullRun", "QueueRun")


def run_pull(
    options: GlobalOptions, request: PullRequest, settings: Settings | None = None
) -> None:
    """``miva-sync pull``: refuse what does not go together, choose the mode, run it.

    ``settings``: the store's, when the caller has loaded them from ``options``
    already (the command line has, for the profile's defaults)."""
    flags = request.flags()
    flag_rules.check(flags)
    with fewer_collections():
        if request.ids is not None:
            resend(options, request, settings)
        else:
            mode_of(options, request, flags, settings).run()


def mode_of(
    options: GlobalOptions,
    request: PullRequest,
    flags: Mapping[str, Any],
    settings: Settings | None = None,
) -> Window | Queue:
    """The queue or the window this request pulls (the flag table in its mode).

    A bare pull reads the saved mode from the state file; the settings and
    the state store that read it go on to the run, which neither loads the
    settings again nor parses the file again unless it has changed since."""
    saved: str | None = None
    state: StateStore | None = None
    if request.bare:
        settings = settings or load_settings(options.settings_flags())
        saved, state = saved_mode(settings, request)
    if (
        request.queue_code is not None
        or not request.ack
        or request.received_queue
        or saved == "queue"
    ):
        if request.queue_code:
            # the queue that runs, typed or a profile's (a first bare pull):
            # the flags typed with it must go with a queue
            flags = {**flags, "queue_code": request.queue_code}
        flag_rules.check(flags, mode="queue" if request.queue_code else saved)
        return Queue(options, request, flags, settings, state)
    # before anything connects or saves (exit 2): a start in the future
    refuse_future_since(request.since, time.time(), FUTURE_TOLERANCE)
    return Window(options, request, flags, settings, state)


def saved_mode(
    settings: Settings, request: PullRequest
) -> tuple[str | None, StateStore | None]:
    """The store's active mode in the state file, read without the run lock,
    and the state store that read it (None: no store to read yet)."""
    from miva_sync.app.session import SANDBOX_STORE_KEY
    from miva_sync.state.file import StateStore

    if request.use_sandbox:
        key = SANDBOX_STORE_KEY
    elif settings.url and settings.store_code:
        key = settings.store_key
    else:
        return None, None  # the pull itself reports the missing settings
    state = StateStore(settings.state_path())
    record = state.get(key)
    return (record.get("mode") if record else None), state


class Mode(ABC, Generic[P, E]):
    """How one queue or window pull runs; a subclass plans it and builds its engine."""

    source = "pull"  # what the output records as the orders' origin

    def __init__(
        self,
        options: GlobalOptions,
        request: PullRequest,
        flags: Mapping[str, Any],
        settings: Settings | None = None,
        state: StateStore | None = None,
    ) -> None:
        self.options = options
        self.request = request
        self.flags = flags  # as the flag table reads them
        # what has been read of the store already (see store_session)
        self.settings = settings
        self.state = state
        self.query = _query(request)  # a typo refused before anything connects
        self.console = reporter(options, progress=request.progress)

    @property
    def saves_state(self) -> bool:
        """Takes the run lock and saves the record (a dry run never does)."""
        return not self.request.dry_run

    def record(self, session: Session) -> StateRecord | None:
        return session.state.get(session.key)

    @property
    def hold_for(self) -> int:
        """--hold-for (a zero one reads as the default, as it always has)."""
        return self.request.hold_for or DEFAULT_HOLD_FOR

    @abstractmethod
    def plan(self, session: Session, record: StateRecord | None) -> P: ...

    @abstractmethod
    def begins(self, plan: P, record: StateRecord | None) -> bool:
        """This run begins its mode (a new consumer, into a new target)."""

    @abstractmethod
    def engine(
        self, session: Session, plan: P, sink: Sink, new_consumer: bool
    ) -> contextlib.AbstractContextManager[E]:
        """The engine in sync/ that runs ``plan`` into ``sink``."""

    @abstractmethod
    def preview(self, engine: E, plan: P) -> None:
        """Show a dry run's plan, with what the engine reads of the store."""

    def run(self) -> None:
        """Run the mode, then report its summary (with --json, also as one JSON
        object; a run that fails once it has read the store reports what it did
        with the status it ends with, before the error line)."""
        self.running: E | None = None
        try:
            summary = self._run()
        except BaseException as exc:
            before = self.running is None and self.saves_state
            if isinstance(exc, KeyboardInterrupt) and before:
                # waiting for the lock, say: the engine never wrote anything
                raise InterruptedRunError.after(0) from None
            partial = self.running.partial_summary() if self.running else None
            if partial is not None and self.request.as_json:
                with contextlib.suppress(Exception):  # the run's own error wins
                    publish(partial.finished(status_of(exc)), self.request)
            raise
        if summary is not None:
            report(self.console, self.request, summary.finished(ExitStatus.OK))

    def _run(self) -> RunSummary | None:
        request, console = self.request, self.console
        with store_session(
            self.options,
            request.use_sandbox,
            lock=self.saves_state,
            wait=request.wait,
            settings=self.settings,
            state=self.state,
        ) as session:
            record = self.record(session)
            if request.dry_run:
                plan = self.plan(session, record)
                with self.engine(session, plan, _DRY_RUN, False) as engine:
                    self.preview(engine, plan)
                return None
            sink = _open(request, self.source, session)
            try:
                if self.saves_state:
                    record = starting_record(sink, session.key, record)
                plan = self.plan(session, record)
                begins = self.begins(plan, record)
                new_consumer = is_new_consumer(sink, record, begins=begins)
                for notice in plan.notices:
                    console.info(notice)
                with self.engine(session, plan, sink, new_consumer) as engine, console:
                    self.running = engine
                    summary = engine.run()
            finally:
                sink.close()
        return summary


class Window(Mode[Plan, "PullRun"]):
    """Date, updated and number modes: the orders from a cursor, or a bounded
    re-pull (--until/--to-order) that saves nothing."""

    @property
    def saves_state(self) -> bool:
        return not (self.request.dry_run or self.request.bounded)

    def record(self, session: Session) -> StateRecord | None:
        return None if self.request.bounded else super().record(session)

    def plan(self, session: Session, record: StateRecord | None) -> Plan:
        self._check_start(record, session)
        plan = make_plan(record, self.request)
        plan.zone = session.settings.zone  # the window in the store's zone too
        return plan

    def _check_start(self, record: StateRecord | None, session: Session) -> None:
        """The flag table in a bare pull's saved mode, and a ``--from-order``
        beyond the store's highest order number (exit 2).

        The store is read only when the start is above the number cursor's
        watermark: an order number at or below one already seen cannot be in
        the future, so a crontab repeating its ``--from-order`` costs nothing.
        Whether any order is numbered near the start is asked with a filter
        (its count), not read off a sort: a store that ignores ``Sort`` would
        otherwise name its lowest order as its highest and refuse every start
        above that (docs/miva-api.md §4.2). Only a refusal reads the highest
        number, for its message.
        """
        from miva_sync.store.orders import order_id
        from miva_sync.store.query import Condition, ListQuery
        from miva_sync.sync.plan import (
            DEFAULT_OVERLAP,
            overlap_margin,
            refuse_future_order,
        )

        if not self.request.names_start:
            flag_rules.check(self.flags, mode=record.get("mode") if record else None)
        from_order = self.request.from_order
        if from_order is None:
            return
        cursor = record["cursors"].get("number", {}) if record else {}
        seen = cursor.get("watermark")
        if isinstance(seen, int) and from_order <= seen:
            return
        overlap = self.request.overlap or str(cursor.get("overlap", DEFAULT_OVERLAP))
        near = Condition("id", "GE", max(from_order - overlap_margin(overlap), 0))
        if session.client.list_orders(ListQuery(count=1).where(near)).total_count:
            return  # an order is numbered at or above the start (less the overlap)
        top = session.client.list_orders(
            ListQuery(count=1).sorted_by("id", descending=True)
        )
        highest = order_id(top.orders[0]) if top.orders else None
        refuse_future_order(from_order, highest, overlap)

    def begins(self, plan: Plan, record: StateRecord | None) -> bool:
        return plan.watermark is None

    @contextlib.contextmanager
    def engine(
        self, session: Session, plan: Plan, sink: Sink, new_consumer: bool
    ) -> Iterator[PullRun]:
        from miva_sync.store.client import MivaClient
        from miva_sync.sync.pull import PullRun

        request = self.request
        yield PullRun(
            session.client,
            sink,
            plan,
            session.key,
            session.state if self.saves_state else None,
            self.console,
            self.query,
            # --full-refresh delivers its whole window again
            emit_unchanged=request.emit_unchanged
            or request.full_refresh
            or new_consumer,
            require_payment=request.require_payment,
            hold_for=self.hold_for,
            # --workers: each worker thread gets its own client (session)
            workers=request.workers,
            make_client=lambda: MivaClient.from_settings(session.settings),
        )

    def preview(self, engine: PullRun, plan: Plan) -> None:
        from miva_sync.app.preview import window_plan

        for notice in plan.notices:
            self.console.info(notice)
        rows, fields = window_plan(engine.preview(), plan.zone)
        self.console.table(rows, fields=fields)


class Queue(Mode["QueuePlan", "QueueRun"]):
    """Queue mode: read a workflow queue from its front, write each page
    durably, then acknowledge it (or, --no-ack, recover a lost download)."""

    source = "queue"

    def plan(self, session: Session, record: StateRecord | None) -> QueuePlan:
        from miva_sync.sync.queue_state import make_queue_plan

        plan = make_queue_plan(record, self.request.queue_options())
        if self.request.dry_run and not plan.ack:  # a bare pull resuming a no-ack queue
            raise UsageError(flag_rules.NO_ACK_PREVIEW)
        return plan

    def begins(self, plan: QueuePlan, record: StateRecord | None) -> bool:
        """A queue named now that is not the one saved (none, or another code)."""
        saved = record["cursors"].get("queue") if record else None
        return bool(self.request.queue_code) and (
            saved is None or saved.get("queue_code") != plan.queue_code
        )

    @contextlib.contextmanager
    def engine(
        self, session: Session, plan: QueuePlan, sink: Sink, new_consumer: bool
    ) -> Iterator[QueueRun]:
        from miva_sync.store.client import MivaClient
        from miva_sync.sync.queue import QueueRun

        request = self.request
        with contextlib.ExitStack() as clients:
            # --no-ack downloads with a client that never retries on its own: a
            # retry after a lost answer would read the next page, hiding the lost one
            single = None
            if not plan.ack:
                single = clients.enter_context(
                    MivaClient.from_settings(session.settings, max_attempts=1)
                )
            yield QueueRun(
                session.client,
                sink,
                plan,
                session.key,
                session.state,
                self.console,
                self.query,
                emit_unchanged=request.emit_unchanged or new_consumer,
                download_client=single,
                require_payment=request.require_payment,
                hold_for=self.hold_for,
            )

    def preview(self, engine: QueueRun, plan: QueuePlan) -> None:
        from miva_sync.app.preview import queue_plan

        rows, fields = queue_plan(engine.preview())
        self.console.table(rows, fields=fields)


def resend(
    options: GlobalOptions, request: PullRequest, settings: Settings | None = None
) -> None:
    """``--ids``: re-send exactly these orders, leaving every cursor alone.

    For a downstream system that lost some orders: they are read by id (one
    ``id IN`` query per 100) and written through the output's normal write
    path (newest-wins upserts for databases and folders). No lock, no state.
    """
    from miva_sync.sinks import open_sink
    from miva_sync.store.client import MivaClient
    from miva_sync.store.orders import order_id
    from miva_sync.sync.held import fetcher
    from miva_sync.sync.summary import Tally

    ids = list(request.ids or ())
    console = reporter(options, progress=request.progress)
    query = _query(request)
    started = time.monotonic()
    with connection(options, request.use_sandbox, settings) as (settings, key):
        with MivaClient.from_settings(settings) as client:
            found = {order_id(o): o for o in fetcher(client, query)(ids)}
            tally = Tally(requests=client.requests_sent, retries=client.retries)
        orders = [found[i] for i in ids if i in found]
        sink = open_sink(
            request.output,
            source="pull",
            fmt=request.fmt,
            store=store_identity(settings, key),
        )
        try:
            if orders:
                sink.write(orders)
                sink.commit(key, None)  # no checkpoint: the cursor is not touched
        finally:
            sink.close()
    tally.emitted = len(orders)
    tally.seconds = time.monotonic() - started
    missing = [i for i in ids if i not in found]
    status = ExitStatus.USAGE if missing else ExitStatus.OK  # as raised below
    summary = tally.freeze("ids", saves_state=False, requested=len(ids), store=key)
    report(console, request, summary.finished(status))
    if missing:
        shown = ", ".join(str(i) for i in missing[:MISSING_SHOWN])
        raise UsageError(
            f"the store has no order {shown}"
            + (" …" if len(missing) > MISSING_SHOWN else "")
        )


def report(console: ConsoleReporter, request: PullRequest, summary: RunSummary) -> None:
    """A run's closing line on stderr and, with --json, its summary object."""
    console.summary(summary)
    if request.as_json:
        publish(summary, request)


def publish(summary: RunSummary, request: PullRequest) -> None:
    """``pull --json``: the summary as one JSON object on one line
    (docs/schemas/run-summary.schema.json): on stdout, unless stdout carries
    the orders (``-o -``); then as the last line on stderr."""
    from miva_sync import console

    data = summary.to_json()
    if request.output == "-":
        console.document(data)
    else:
        sys.stdout.write(json.dumps(data, ensure_ascii=False) + "\n")
        sys.stdout.flush()


def status_of(exc: BaseException) -> ExitStatus:
    """The status a run ends with for ``exc`` (as cli/main.py maps it)."""
    if isinstance(exc, MivaSyncError):
        return exc.exit_code
    if isinstance(exc, KeyboardInterrupt):
        return ExitStatus.INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return ExitStatus.OUTPUT
    return ExitStatus.INTERNAL


def _query(request: PullRequest) -> ListQuery:
    """The pull's page size and columns (a typo refused before anything connects)."""
    return base_query(
        request.columns,
        page_size=request.page_size,
        require_payment=request.require_payment,
        passphrase=request.passphrase,
    )


def _open(request: PullRequest, source: str, session: Session) -> Sink:
    from miva_sync.sinks import open_sink

    return open_sink(
        request.output,
        source=source,
        fmt=request.fmt,
        wait=request.wait,
        store=session.identity,
    )


class _DryRun:
    """The sink of a dry run: a preview reads the store and writes nothing."""

    description = "nothing (dry run)"
    keeps_checkpoint = False

    def write(self, orders: list[dict[str, Any]]) -> None:
        raise AssertionError("a dry run writes nothing")

    def commit(self, store_key: str, checkpoint: StateRecord | None) -> None:
        raise AssertionError("a dry run writes nothing")

    def load_checkpoint(self, store_key: str) -> StateRecord | None:
        return None

    def close(self) -> None:
        return None


_DRY_RUN = _DryRun()

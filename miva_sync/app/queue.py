"""Wire ``miva-sync pull --queue`` together: the same lock, state, sink and summary as pull."""

from __future__ import annotations

from typing import Any

from miva_sync.errors import UsageError

# options that choose another mode, or bound a re-pull; none of them mix with a queue
_OTHER_MODES = {
    "since": "--since",
    "from_order": "--from-order",
    "until": "--until",
    "to_order": "--to-order",
    "updated": "--updated",
}


def is_bare(options: dict[str, Any]) -> bool:
    """A pull that names no mode: it resumes whatever mode is active."""
    return not options.get("queue_code") and not any(
        options.get(name) for name in _OTHER_MODES
    )


def saved_mode(shared: dict[str, Any], options: dict[str, Any]) -> str | None:
    """The store's active mode in the state file, read without the run lock."""
    from miva_sync.app.session import SANDBOX_STORE_KEY
    from miva_sync.config import load_settings
    from miva_sync.state.file import StateStore

    settings = load_settings(shared)
    if options.get("use_sandbox"):
        key = SANDBOX_STORE_KEY
    elif settings.url and settings.store_code:
        key = settings.store_key
    else:
        return None  # the pull path reports the missing settings
    record = StateStore(settings.state_path()).get(key)
    return record.get("mode") if record else None


def check_options(options: dict[str, Any]) -> None:
    """Refuse flags that do not go together (exit 2) before anything connects."""
    queue = options.get("queue_code")
    if queue is not None and not queue.strip():
        raise UsageError("--queue needs the store's queue code")
    if queue:
        clash = [flag for name, flag in _OTHER_MODES.items() if options.get(name)]
        if clash:
            raise UsageError(f"--queue does not go with {', '.join(clash)}")
    if not options.get("ack", True) and not queue:
        raise UsageError(
            "--no-ack goes with --queue CODE (it is saved with the queue, "
            "so a bare pull keeps it)"
        )
    # a bare pull may add --received-queue to a saved --no-ack queue
    if (
        options.get("received_queue")
        and options.get("ack", True)
        and (queue or not is_bare(options))
    ):
        raise UsageError("--received-queue goes with --no-ack")
    if options.get("dry_run") and not options.get("ack", True):
        raise _no_dry_run()


def _no_dry_run() -> UsageError:
    return UsageError(
        "--dry-run cannot preview a --no-ack queue: in such a queue any download "
        "moves the orders out, so even a preview would take them without writing "
        "them. Drop --no-ack to preview an acknowledgement queue, or look at the "
        "queue in the Miva admin"
    )


def run_queue(shared: dict[str, Any], options: dict[str, Any]) -> None:
    """``miva-sync pull --queue CODE`` (or a bare pull whose active mode is queue)."""
    from miva_sync.app.session import (
        base_query_from,
        is_new_consumer,
        reporter_from,
        starting_record,
        store_session,
    )
    from miva_sync.sinks import open_sink
    from miva_sync.store.client import MivaClient
    from miva_sync.sync.held import DEFAULT_HOLD_FOR
    from miva_sync.sync.queue import QueueRun
    from miva_sync.sync.queue_state import QueueOptions, make_queue_plan

    check_options(options)
    queue_options = QueueOptions(
        queue_code=options.get("queue_code") or None,
        ack=options.get("ack", True),
        received_queue=options.get("received_queue") or None,
        emit_unchanged=options["emit_unchanged"],
    )
    base_query = base_query_from(options)
    reporter = reporter_from(shared, options)
    dry_run = options["dry_run"]

    with store_session(
        shared, options["use_sandbox"], lock=not dry_run, wait=options["wait"]
    ) as session:
        settings, key, state, client = (
            session.settings,
            session.key,
            session.state,
            session.client,
        )
        record = state.get(key)
        if dry_run:
            plan = make_queue_plan(record, queue_options)
            if not plan.ack:  # a bare pull resuming a no-ack queue
                raise _no_dry_run()
            run = QueueRun(client, _no_sink(), plan, key, state, reporter, base_query)
            reporter.table(
                {"dry run": "nothing is written or acknowledged", **run.preview()}
            )
            return
        sink = open_sink(
            options["output"],
            source="queue",
            fmt=options.get("fmt", "jsonl"),
            wait=options["wait"],
            store=session.identity,
        )
        try:
            record = starting_record(sink, key, record)
            plan = make_queue_plan(record, queue_options)
            saved = ((record or {}).get("cursors") or {}).get("queue")
            # this queue begins here (none saved, or another code): into another
            # target than the last, it seeds a new consumer (runner.starting_record)
            new_consumer = is_new_consumer(
                sink,
                record,
                begins=queue_options.queue_code is not None
                and (saved is None or saved.get("queue_code") != plan.queue_code),
            )
            for notice in plan.notices:
                reporter.info(notice)
            with (
                MivaClient.from_settings(settings, max_attempts=1) as single,
                reporter,
            ):
                run = QueueRun(
                    client,
                    sink,
                    plan,
                    key,
                    state,
                    reporter,
                    base_query,
                    emit_unchanged=queue_options.emit_unchanged or new_consumer,
                    download_client=None if plan.ack else single,
                    require_payment=options.get("require_payment", False),
                    hold_for=options.get("hold_for") or DEFAULT_HOLD_FOR,
                )
                result = run.run()
        finally:
            sink.close()
    extra = (
        f"{result.acknowledged} acknowledged, {result.newer} newer after "
        "acknowledgement"
        if result.ack
        else f"not acknowledged, {result.recovered} recovered"
    )
    reporter.info(
        f"{result.emitted} orders emitted, {result.unchanged} unchanged skipped"
        + (
            f", {result.held} held unpaid, {result.released} released"
            if result.held or result.released
            else ""
        )
        + f"; queue {result.queue_code}: {extra}; "
        f"{'drained' if result.drained else 'not drained'}; "
        f"{result.requests} requests in {result.seconds:.1f}s"
    )


def _no_sink() -> Any:
    from miva_sync.app.session import _NoSink

    return _NoSink()

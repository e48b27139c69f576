"""Which ``pull`` flag combinations mean nothing, in one table (issue 19).

A flag that does nothing in the mode it is given for is a mistake the user
cannot see: ``--overlap`` in date mode, ``--until`` before ``--since``, ``-o
orders.db`` (written as JSON Lines). Each row refuses one such combination
with one line saying what to use instead (exit 2). Pure: no click, no I/O.

The rows read the flags given on the command line (``given``: option name ->
value, as the pull command names them; a library caller's request counts
every field it sets, see :meth:`PullRequest.flags`) and the mode they apply
to. The command line checks them with the mode its flags name; a bare pull's
mode is only known from the saved state, so the dispatcher (app/pull.py)
checks them again with it. A profile's defaults are not flags the user typed
and are never refused. This is the only place such combinations are refused:
the planners in sync/ trust what they are given.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from miva_sync.errors import UsageError
from miva_sync.store.query import DEFAULT_COLUMNS, SENSITIVE_COLUMNS

TIME_MODES = ("date", "updated")
PULL_MODES = ("date", "updated", "number")
SQLITE_SUFFIXES = (".db", ".sqlite", ".sqlite3", ".db3")
CUSTOM_FIELDS = "customfield_values:"
KNOWN_COLUMNS = frozenset(
    c.lower() for c in (*DEFAULT_COLUMNS, *SENSITIVE_COLUMNS, "default")
)


@dataclass(frozen=True)
class Flags:
    """The flags one pull was given, and the mode they apply to (None: not
    known yet, a bare pull before its state is read)."""

    given: Mapping[str, Any]
    mode: str | None

    def has(self, name: str) -> bool:
        """Given on the command line (``--no-ack`` counts as ``ack`` given)."""
        value = self.given.get(name)
        return value is not None and value is not False and value != ()

    def __getitem__(self, name: str) -> Any:
        return self.given.get(name)

    def window(self) -> bool:
        return self.has("until") or self.has("to_order")

    def start(self) -> bool:
        return self.has("since") or self.has("from_order")

    def listed(self, names: dict[str, str]) -> str:
        return ", ".join(flag for name, flag in names.items() if self.has(name))


@dataclass(frozen=True)
class Rule:
    """One meaningless combination: when it applies, and what to say."""

    name: str
    applies: Callable[[Flags], bool]
    message: Callable[[Flags], str]


def _ints(*values: Any) -> bool:
    return all(isinstance(v, int) and not isinstance(v, bool) for v in values)


def _sqlite_file(flags: Flags) -> bool:
    target = flags["output"]
    return (
        isinstance(target, str)
        and "://" not in target
        and not target.endswith("/")
        and target.lower().endswith(SQLITE_SUFFIXES)
    )


# what --ids does not go with: it re-sends given orders and touches no cursor
_NOT_WITH_IDS = {
    "since": "--since",
    "from_order": "--from-order",
    "queue_code": "--queue",
    "until": "--until",
    "to_order": "--to-order",
    "updated": "--updated",
    "full_refresh": "--full-refresh",
    "overlap": "--overlap",
    "lookback": "--lookback",
    "received_queue": "--received-queue",
    "workers": "--workers",
    "emit_unchanged": "--emit-unchanged",
    "dry_run": "--dry-run",
    "require_payment": "--require-payment",
}
# what --queue does not go with: a queue is read from its front, no window
_NOT_WITH_QUEUE = {
    "since": "--since",
    "from_order": "--from-order",
    "until": "--until",
    "to_order": "--to-order",
    "updated": "--updated",
}


# also said by a dry run that resumes a saved --no-ack queue (app/pull.py)
NO_ACK_PREVIEW = (
    "--dry-run cannot preview a --no-ack queue: in such a queue any download "
    "moves the orders out, so even a preview would take them without writing "
    "them. Drop --no-ack to preview an acknowledgement queue, or look at the "
    "queue in the Miva admin"
)


def _no_ack(flags: Flags) -> bool:
    return "ack" in flags.given and flags["ack"] is False


RULES: tuple[Rule, ...] = (
    Rule(
        "since-and-from-order",
        lambda f: f.has("since") and f.has("from_order"),
        lambda f: (
            "--since and --from-order start different modes: use one "
            "(--since WHEN for date or updated mode, --from-order N for number mode)"
        ),
    ),
    Rule(
        "ids-with-others",
        lambda f: (
            (f.has("ids") or f.has("ids_from"))
            and bool(f.listed(_NOT_WITH_IDS) or _no_ack(f))
        ),
        lambda f: (
            "--ids re-sends exactly the given orders and touches no cursor: "
            f"drop {f.listed(_NOT_WITH_IDS) or '--no-ack'}"
        ),
    ),
    Rule(
        "queue-with-a-start-or-window",
        lambda f: f.has("queue_code") and bool(f.listed(_NOT_WITH_QUEUE)),
        lambda f: (
            f"--queue does not go with {f.listed(_NOT_WITH_QUEUE)}: a queue "
            "is read from its front, with no start or window; use one mode per run"
        ),
    ),
    Rule(
        "full-refresh-in-queue-mode",
        lambda f: f.has("full_refresh") and f.mode == "queue",
        lambda f: (
            "--full-refresh restarts a date or number cursor; a queue cannot "
            "deliver acknowledged orders again: re-pull them with --since WHEN "
            "--full-refresh, or re-send some with --ids"
        ),
    ),
    Rule(
        "full-refresh-without-a-start",
        lambda f: f.has("full_refresh") and not f.start(),
        lambda f: (
            "--full-refresh restarts a mode at its start: give --since WHEN "
            "or --from-order N with it"
        ),
    ),
    Rule(
        "full-refresh-with-a-window",
        lambda f: f.has("full_refresh") and f.window(),
        lambda f: (
            "a bounded window (--until/--to-order) already delivers all of it "
            "and leaves the cursor alone: drop --full-refresh"
        ),
    ),
    Rule(
        # a bounded window saves no state, so a hold would never be re-checked:
        # the unpaid orders would simply never be delivered
        "require-payment-with-a-window",
        lambda f: f.has("require_payment") and f.window(),
        lambda f: (
            "a bounded window (--until/--to-order) saves nothing, so it cannot "
            "hold unpaid orders for a later run: drop --require-payment (unpaid "
            "orders are then delivered too), or pull without the bound"
        ),
    ),
    Rule(
        "full-refresh-with-emit-unchanged",
        lambda f: f.has("full_refresh") and f.has("emit_unchanged"),
        lambda f: (
            "--full-refresh already delivers every order of its window again: "
            "drop --emit-unchanged"
        ),
    ),
    Rule(
        "until-with-from-order",
        lambda f: f.has("until") and f.has("from_order"),
        lambda f: (
            "--until bounds a --since window; bound --from-order with --to-order N"
        ),
    ),
    Rule(
        "to-order-with-since",
        lambda f: f.has("to_order") and f.has("since"),
        lambda f: (
            "--to-order bounds a --from-order window; bound --since with --until WHEN"
        ),
    ),
    Rule(
        "until-without-since",
        lambda f: f.has("until") and not f.start() and not f.has("queue_code"),
        lambda f: (
            "--until bounds a --since window: add --since WHEN (a re-pull that "
            "leaves the cursor alone), or drop --until"
        ),
    ),
    Rule(
        "to-order-without-from-order",
        lambda f: f.has("to_order") and not f.start() and not f.has("queue_code"),
        lambda f: (
            "--to-order bounds a --from-order window: add --from-order N (a "
            "re-pull that leaves the cursor alone), or drop --to-order"
        ),
    ),
    Rule(
        "until-before-since",
        lambda f: _ints(f["since"], f["until"]) and f["until"] < f["since"],
        lambda f: "--until is before --since: that window is empty; swap them",
    ),
    Rule(
        "to-order-below-from-order",
        lambda f: (
            _ints(f["from_order"], f["to_order"]) and f["to_order"] < f["from_order"]
        ),
        lambda f: (
            f"--to-order {f['to_order']} is below --from-order "
            f"{f['from_order']}: that window is empty; swap them"
        ),
    ),
    Rule(
        "overlap-in-date-or-updated-mode",
        lambda f: f.has("overlap") and f.mode in TIME_MODES,
        lambda f: (
            f"--overlap does nothing in {f.mode} mode: it is number mode's "
            "(--from-order); date and updated modes re-query by --lookback SPAN"
        ),
    ),
    Rule(
        "lookback-in-number-mode",
        lambda f: f.has("lookback") and f.mode == "number",
        lambda f: (
            "--lookback does nothing in number mode: it re-queries by "
            "--overlap N (order numbers) or --overlap SPAN (45m)"
        ),
    ),
    Rule(
        "updated-in-number-mode",
        lambda f: f.has("updated") and f.mode == "number",
        lambda f: (
            "--updated does nothing in number mode (it pulls by order "
            "number): for new and updated orders use --since WHEN --updated"
        ),
    ),
    Rule(
        "re-query-window-in-queue-mode",
        lambda f: (f.has("overlap") or f.has("lookback")) and f.mode == "queue",
        lambda f: (
            f"{'--overlap' if f.has('overlap') else '--lookback'} does "
            "nothing in queue mode: a queue is read from its front, with no window "
            "to re-query; drop it"
        ),
    ),
    Rule(
        "workers-in-queue-mode",
        lambda f: f.has("workers") and f.mode == "queue",
        lambda f: (
            "--workers does nothing in queue mode: a queue is read page by "
            "page from its front; drop it"
        ),
    ),
    Rule(
        "re-query-window-with-a-bounded-window",
        lambda f: (f.has("overlap") or f.has("lookback")) and f.window(),
        lambda f: (
            f"{'--overlap' if f.has('overlap') else '--lookback'} sets how "
            "later runs re-query; a bounded re-pull (--until/--to-order) reads its "
            "whole window and saves nothing: drop it"
        ),
    ),
    Rule(
        "emit-unchanged-with-a-bounded-window",
        lambda f: f.has("emit_unchanged") and f.window(),
        lambda f: (
            "a bounded re-pull (--until/--to-order) already delivers every "
            "order of its window: drop --emit-unchanged"
        ),
    ),
    Rule(
        "no-ack-outside-queue-mode",
        lambda f: _no_ack(f) and not f.has("queue_code"),
        lambda f: (
            "--no-ack goes with --queue CODE (it is saved with the queue, so a "
            "bare pull keeps it)"
        ),
    ),
    Rule(
        "received-queue-outside-queue-mode",
        lambda f: (
            f.has("received_queue")
            and (f.start() or f.window() or f.mode in PULL_MODES)
        ),
        lambda f: (
            "--received-queue goes with --no-ack: it is where a --no-ack queue's "
            "downloads go; use it with --queue CODE --no-ack"
        ),
    ),
    Rule(
        "received-queue-with-ack",
        lambda f: f.has("received_queue") and f.has("queue_code") and not _no_ack(f),
        lambda f: (
            "--received-queue goes with --no-ack: add --no-ack, or drop "
            "--received-queue"
        ),
    ),
    Rule(
        "sqlite-file-as-json-lines",
        _sqlite_file,
        lambda f: (
            f"-o {f['output']} would be written as JSON Lines: for a SQLite "
            f"database use -o sqlite:///{f['output']}"
        ),
    ),
    Rule(
        "hold-for-without-require-payment",
        lambda f: f.has("hold_for") and not f.has("require_payment"),
        lambda f: (
            "--hold-for sets how long --require-payment holds an unpaid "
            "order: add --require-payment, or drop --hold-for"
        ),
    ),
    Rule(
        "jobs-without-all-profiles",
        lambda f: f.has("jobs") and not f.has("all_profiles"),
        lambda f: (
            "--jobs sets how many profiles --all-profiles runs at once: add "
            "--all-profiles, or drop --jobs"
        ),
    ),
    Rule(
        "wait-with-dry-run",
        lambda f: f.has("wait") and f.has("dry_run"),
        lambda f: (
            "--dry-run takes no lock and writes nothing, so there is nothing "
            "to wait for: drop --wait"
        ),
    ),
    Rule(
        "queue-without-a-code",
        lambda f: isinstance(f["queue_code"], str) and not f["queue_code"].strip(),
        lambda f: "--queue needs the store's queue code",
    ),
    Rule(
        # --updated names a mode (date mode's switch), so this is no bare pull
        # adding a received queue to a saved --no-ack queue
        "received-queue-with-updated",
        lambda f: f.has("received_queue") and f.has("updated"),
        lambda f: "--received-queue goes with --no-ack",
    ),
    Rule(
        "dry-run-with-no-ack",
        lambda f: f.has("dry_run") and _no_ack(f),
        lambda f: NO_ACK_PREVIEW,
    ),
    Rule(
        "json-with-dry-run",
        lambda f: f.has("as_json") and f.has("dry_run"),
        lambda f: (
            "--json prints a run's summary and a dry run runs nothing: drop "
            "--json (with --log-format json the plan is JSON lines on stderr)"
        ),
    ),
    Rule(
        # one object per run: several children's would need another shape
        "json-with-all-profiles",
        lambda f: f.has("as_json") and f.has("all_profiles"),
        lambda f: (
            "--json prints the summary of one store's run: with --all-profiles "
            "use --log-format json instead (each profile's summary line carries "
            "its profile)"
        ),
    ),
)


def mode_named(given: Mapping[str, Any]) -> str | None:
    """The mode the flags themselves name (None: a bare pull resumes the saved one)."""
    flags = Flags(given, None)
    if flags.has("ids") or flags.has("ids_from"):
        return "ids"
    if flags.has("queue_code"):
        return "queue"
    if flags.has("from_order"):
        return "number"
    if flags.has("since"):
        return "updated" if flags.has("updated") else "date"
    return None


def refusing_rule(given: Mapping[str, Any], mode: str | None = None) -> Rule | None:
    """The first row that refuses these flags in ``mode`` (default: the mode
    the flags name), or None."""
    flags = Flags(given, mode if mode is not None else mode_named(given))
    return next((rule for rule in RULES if rule.applies(flags)), None)


def refusal(given: Mapping[str, Any], mode: str | None = None) -> str | None:
    """The first row that refuses these flags in ``mode``, as one line; else None."""
    mode = mode if mode is not None else mode_named(given)
    rule = refusing_rule(given, mode)
    return None if rule is None else rule.message(Flags(given, mode))


def check(given: Mapping[str, Any], mode: str | None = None) -> None:
    """Raise :class:`UsageError` (exit 2) for a meaningless combination."""
    message = refusal(given, mode)
    if message is not None:
        raise UsageError(message)


def unknown_columns(text: str | None) -> list[str]:
    """``--columns`` names that are not known on-demand columns.

    Warned about, not refused: stores and modules add their own columns. Known:
    the default set, ``payment_data``, ``default`` and any
    ``CustomField_Values:…`` form.
    """
    unknown = []
    for raw in (text or "").split(","):
        name = raw.strip()
        lowered = name.lower()
        if (
            name
            and lowered not in KNOWN_COLUMNS
            and not lowered.startswith(CUSTOM_FIELDS)
        ):
            unknown.append(name)
    return unknown


def column_warning(names: list[str]) -> str:
    shown = ", ".join(repr(n) for n in names)
    known = ", ".join(c for c in DEFAULT_COLUMNS if not c.endswith("*"))
    return (
        f"--columns: {shown} {'is not a' if len(names) == 1 else 'are not'} known "
        f"on-demand column{'' if len(names) == 1 else 's'} (known: {known}, "
        "payment_data, CustomField_Values:…); sent as given, since stores add their "
        "own, but a typo only leaves the column out of every order"
    )

"""``miva-sync check``: a doctor for one store's settings, in rows a person can act on.

Fatal rows (the run cannot work): settings (exit 3), reachability and TLS (6),
authentication (4), listing orders (5). Probe rows prove, on this very store,
what docs/miva-api.md leaves unconfirmed: whether updated mode can be trusted
(``dt_updated`` in rows, a ``dt_updated`` filter honoured, pages sorted by
``dt_updated`` both ways) and whether the store knows the queue. Each probe has
a machine value (``supported``, ``unsupported``, ``unknown``) and a reason in
``check --json``; a probe fails the check only when ``--require`` names it
(exit 5). Every request reads a few orders at most (no on-demand columns);
nothing is acknowledged and no queue loses an order. Pulls run no probes: the
pager verifies every page instead.
"""

from __future__ import annotations

import email.utils
import itertools
import shlex
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from miva_sync.app import flag_rules
from miva_sync.app.session import base_query
from miva_sync.base.timespec import parse_span
from miva_sync.config import Settings
from miva_sync.errors import (
    ApiError,
    AuthError,
    ConfigError,
    ExitStatus,
    MivaSyncError,
    TransientError,
    UsageError,
)
from miva_sync.store.urls import redact_url
from miva_sync.sync.plan import (
    Plan,
    PullOptions,
    make_plan,
)
from miva_sync.sync.queue_state import QueueOptions, make_queue_plan

if TYPE_CHECKING:
    from miva_sync.state.record import StateRecord
    from miva_sync.store.client import MivaClient, Page

# Skew worth a warning: Miva does not document its timestamp window
# (docs/miva-api.md §2.4), so no skew is "safe"; this only keeps NTP honest.
SKEW_WARN = 10.0
REQUIRABLE = ("updated", "queue")

OK, WARN, FAIL, INFO, SKIP = "ok", "warn", "fail", "info", "skip"
SUPPORTED, UNSUPPORTED, UNKNOWN = "supported", "unsupported", "unknown"

# Rows read by each sort probe: enough to see an order, small enough to be free.
SORT_PROBE_ROWS = 20
# "Far future" for the filter probe: a year ahead is beyond any honest
# dt_updated, yet stays inside a signed 32-bit time column for years to come.
FAR_FUTURE_SECONDS = 366 * 86400
# A queue code no store has: how the store answers it tells whether a
# success answer on the real code proves anything (docs/miva-api.md §6.1).
BOGUS_QUEUE = "miva_sync_check_no_such_queue"
# What a probe counts as the store's "no". Once the first list query passed,
# the credentials are proven, so a later ``access_denied`` (an AuthError: it
# is also Miva's answer for a function the token may not call, docs/miva-api.md
# §3.7) means "not granted", a probe result, not a failed check.
REFUSALS = (ApiError, AuthError)

_ERRORS: dict[int, type[MivaSyncError]] = {
    error.exit_code: error
    for error in (UsageError, ConfigError, AuthError, ApiError, TransientError)
}


@dataclass
class Row:
    """One line of the doctor's table."""

    name: str
    status: str
    detail: str
    exit_code: int = 0


@dataclass(frozen=True)
class Probe:
    """What one probe proved: ``supported``, ``unsupported`` or ``unknown``, and why."""

    value: str
    reason: str


@dataclass
class Report:
    """What ``check`` found; ``exit_code`` is the first failing row's."""

    settings: Settings
    rows: list[Row] = field(default_factory=list)
    probes: dict[str, Probe] = field(default_factory=dict)
    total_count: int | None = None
    skew_seconds: float | None = None
    dt_updated: bool | None = None
    queue: str | None = None
    queue_granted: bool | None = None
    # the suggested pull: its mode's plain name, the one command line to run
    # (judged by the flag table and the start rule in this store's saved
    # state), and the sentence the text output shows
    suggested_mode: str | None = None
    suggested_command: str | None = None
    suggestion: str | None = None

    def add(self, name: str, status: str, detail: str, exit_code: int = 0) -> None:
        self.rows.append(Row(name, status, detail, exit_code))

    @property
    def failure(self) -> Row | None:
        return next((r for r in self.rows if r.status == FAIL), None)

    @property
    def exit_code(self) -> int:
        row = self.failure
        return row.exit_code if row else 0

    @property
    def updated_mode(self) -> str | None:
        """``supported`` only when every updated-mode probe proved it."""
        values = [self.probes[k].value for k in UPDATED_PROBES if k in self.probes]
        if not values:
            return None
        if UNSUPPORTED in values:
            return UNSUPPORTED
        return SUPPORTED if all(v == SUPPORTED for v in values) else UNKNOWN

    def error(self) -> MivaSyncError | None:
        """The typed error for the first failing row (its class carries the exit code)."""
        row = self.failure
        if row is None:
            return None
        return _ERRORS.get(row.exit_code, MivaSyncError)(
            f"check failed: {row.name}: {row.detail}"
        )

    def to_json(self) -> dict[str, Any]:
        """The ``check --json`` object (documented in the README)."""
        return {
            "ok": self.failure is None,
            "exit_code": self.exit_code,
            "url": redact_url(self.settings.url or "") or None,
            "store_code": self.settings.store_code,
            "profile": self.settings.profile,
            "checks": [
                {
                    "name": r.name,
                    "status": r.status,
                    "detail": r.detail,
                    "exit_code": r.exit_code,
                }
                for r in self.rows
            ],
            "probes": {
                name: {
                    "value": p.value,
                    "status": self.status_of(PROBE_ROWS[name]),
                    "reason": p.reason,
                }
                for name, p in self.probes.items()
            },
            "updated_mode": self.updated_mode,
            "total_count": self.total_count,
            "clock_skew_seconds": self.skew_seconds,
            "clock_status": self.status_of("clock"),
            "dt_updated_searchable": self.dt_updated,
            "queue": self.queue,
            "queue_granted": self.queue_granted,
            "suggested_mode": self.suggested_mode,
            "suggested_command": self.suggested_command,
            "suggestion": self.suggestion,
        }

    def status_of(self, name: str) -> str | None:
        """The status of the row called ``name`` (None: no such row)."""
        return next((r.status for r in self.rows if r.name == name), None)


# Probe key (check --json) -> row name (the table).
PROBE_ROWS = {
    "dt_updated_field": "dt_updated field",
    "dt_updated_filter": "dt_updated filter",
    "sort_dt_updated": "sort dt_updated",
    "sort_dt_updated_desc": "sort -dt_updated",
    "queue": "queue",
}
UPDATED_PROBES = (
    "dt_updated_field",
    "dt_updated_filter",
    "sort_dt_updated",
    "sort_dt_updated_desc",
)


def run_checks(
    settings: Settings,
    *,
    queue: str | None = None,
    require: Collection[str] = (),
    clock: Callable[[], float] = time.time,
) -> Report:
    """Check one store, row by row; stop at the first row that makes the rest moot.

    ``clock`` is this machine's clock (tests shift it to see skew against the
    store's real ``Date`` header).
    """
    unknown = sorted(set(require) - set(REQUIRABLE))
    if unknown:
        raise UsageError(f"--require takes {' or '.join(REQUIRABLE)}, not {unknown[0]}")
    if "queue" in require and not queue:
        raise UsageError(
            "--require queue needs a queue: --queue CODE (or a profile's queue)"
        )
    report = Report(settings, queue=queue)
    try:
        settings.require_connection()
    except ConfigError as exc:
        report.add("settings", FAIL, str(exc), exc.exit_code)
        return report
    auth = f"HMAC-{settings.digest.upper()}" if settings.signing_key else "token only"
    where = f"profile {settings.profile}, " if settings.profile else ""
    report.add("settings", OK, f"{where}store {settings.store_code}, auth {auth}")
    from miva_sync.store.client import MivaClient

    with MivaClient.from_settings(settings, clock=clock) as client:
        rows = _connect(report, client)
        refused = report.failure is not None
        _skew(report, client, refused=refused)
        if rows is not None:
            _updated_probes(report, client, rows, clock, "updated" in require)
            _queue(report, client, queue, "queue" in require)
            _suggest(report, client, clock)
    return report


def _connect(report: Report, client: MivaClient) -> list[dict[str, Any]] | None:
    """Reachability, TLS, authentication and one list query.

    Returns the rows read when all passed, else None. "authentication ok" is
    said only after the store answered ``success: 1``: any refusal may be an
    authentication failure under an error code nobody has documented.
    """
    from miva_sync.store.query import ListQuery

    url = redact_url(report.settings.url or "")  # it goes into the rows
    https = url.lower().startswith("https://")
    try:
        page = client.list_orders(ListQuery(count=1))
    except TransientError as exc:
        if "TLS" in str(exc):
            report.add("reachable", OK, "the host answered")
            report.add(
                "TLS",
                FAIL,
                f"{exc}: check the certificate (expired, wrong host name, or a "
                "private CA this machine does not trust)",
                6,
            )
        else:
            report.add(
                "reachable",
                FAIL,
                f"{exc}: check MIVA_URL, DNS and firewalls; if the store is down, "
                "try later",
                6,
            )
        return None
    except ConfigError as exc:
        report.add("reachable", FAIL, str(exc), exc.exit_code)
        return None
    except AuthError as exc:
        status = f"HTTP {exc.http_status}" if exc.http_status else "an answer"
        report.add("reachable", OK, f"{status} from {url}")
        _tls(report, https)
        report.add(
            "authentication",
            FAIL,
            f"{exc} ('miva-sync config show' shows where each setting comes from)",
            exc.exit_code,
        )
        return None
    except ApiError as exc:
        report.add("reachable", OK, url)
        _tls(report, https)
        report.add(
            "authentication",
            WARN,
            "not proven: the store refused the first request; its error code is "
            "not one known to mean authentication (docs/miva-api.md §3.7), but may be",
        )
        report.add(
            "list orders",
            FAIL,
            f"{exc}: check the credentials, and grant the token "
            "OrderList_Load_Query in the Miva admin (User Management > API Tokens)",
            exc.exit_code,
        )
        return None
    report.add("reachable", OK, url)
    _tls(report, https)
    report.add("authentication", OK, "the store accepted the credentials")
    report.total_count = page.total_count
    report.add("list orders", OK, f"the store holds {page.total_count} orders")
    return page.orders


def _tls(report: Report, https: bool) -> None:
    if https and report.settings.insecure:
        report.add(
            "TLS",
            WARN,
            "https, but the certificate is not verified (--insecure): anyone on "
            "the path can read the token",
        )
    elif https:
        report.add("TLS", OK, "https, certificate verified")
    else:
        report.add(
            "TLS",
            WARN,
            "plain http: fine for a local sandbox, never for a real store "
            "(the token travels in clear)",
        )


def _skew(report: Report, client: MivaClient, *, refused: bool) -> None:
    """Report the skew against the store's ``Date`` header, from answers already
    received: check never sends a deliberately mis-timestamped request."""
    header = getattr(client, "last_response_date", None)
    local = getattr(client, "last_response_at", None)
    if local is None:
        return  # no answer came back at all
    if not header:
        report.add("clock", SKIP, "the store sent no Date header")
        return
    try:
        store_time = email.utils.parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError):
        report.add("clock", SKIP, f"unreadable Date header {header[:40]!r}")
        return
    # Date has whole seconds, so a skew below about a second is noise.
    skew = round(store_time - local, 1)
    report.skew_seconds = skew
    if abs(skew) <= SKEW_WARN:
        report.add(
            "clock", OK, f"within {max(abs(skew), 1):.0f}s of the store's Date header"
        )
        return
    side = "ahead of" if skew > 0 else "behind"
    text = (
        f"the store's clock is {abs(skew):.0f}s {side} this machine's; requests "
        "carry this machine's time and a store with timestamp validation refuses "
        "one outside its window, whose width is unknown (docs/miva-api.md §2.4)"
    )
    fix = "sync this machine's clock (NTP: timedatectl set-ntp true)"
    if refused:
        # the store refused us: a skewed clock is a likely cause, say so loudly
        report.add(
            "clock",
            FAIL,
            f"{text}: a likely cause of the refusal; {fix}",
            ExitStatus.AUTH,
        )
    else:
        report.add("clock", WARN, f"{text}; the store accepted it this time; {fix}")


# --- updated mode: four probes --------------------------------------------------------


def _updated_probes(
    report: Report,
    client: MivaClient,
    first_rows: list[dict[str, Any]],
    clock: Callable[[], float],
    required: bool,
) -> None:
    """Prove updated mode on this store (docs/design.md §5.1): the field, the
    filter and the sort both ways. Its per-page checks in pulls guard the same
    facts."""
    try:
        filter_probe = _filter_probe(client, report.total_count or 0, clock)
        ascending, asc_rows = _sort_probe(client, descending=False)
        descending, desc_rows = _sort_probe(client, descending=True)
    except MivaSyncError as exc:  # not a refusal (those are probe results)
        report.add("updated mode", FAIL, str(exc), exc.exit_code)
        return
    ascending, descending = _same_order(asc_rows, desc_rows, ascending, descending)
    field_probe = _field_probe([*first_rows, *asc_rows, *desc_rows])
    probes = {
        "dt_updated_field": field_probe,
        "dt_updated_filter": filter_probe,
        "sort_dt_updated": ascending,
        "sort_dt_updated_desc": descending,
    }
    report.dt_updated = filter_probe.value == SUPPORTED
    # under --require an unknown stays a warning: nothing was disproved
    for key, probe in probes.items():
        _add_probe(report, key, probe, required, absent=field_probe.value)


def _add_probe(
    report: Report, key: str, probe: Probe, required: bool, absent: str = SUPPORTED
) -> None:
    report.probes[key] = probe
    name = PROBE_ROWS[key]
    if probe.value == SUPPORTED:
        report.add(name, OK, f"supported: {probe.reason}")
    elif probe.value == UNKNOWN:
        report.add(name, WARN, f"unknown: {probe.reason}")
    elif required:
        report.add(name, FAIL, f"unsupported: {probe.reason}", ExitStatus.API)
    else:
        # a store without the field is simply older (info); one that has it but
        # ignores it would mislead a pull, so that is worth a warning
        status = INFO if absent == UNSUPPORTED else WARN
        report.add(name, status, f"unsupported: {probe.reason}")


def _filter_probe(client: MivaClient, total: int, clock: Callable[[], float]) -> Probe:
    """``dt_updated GE 0`` finds orders and ``dt_updated GE <far future>`` none:
    the filter is honoured, not silently dropped (a lenient store answers both
    with every order, and a pull would then page the whole store as if new)."""
    from miva_sync.store.query import Condition, ListQuery

    future = int(clock()) + FAR_FUTURE_SECONDS
    try:
        high = client.list_orders(
            ListQuery(count=1).where(Condition("dt_updated", "GE", future))
        )
        if high.total_count != 0:
            return Probe(
                UNSUPPORTED,
                f"dt_updated GE {future} (a year ahead) answered {high.total_count} "
                "orders: the store ignores the filter",
            )
        if total == 0:
            return Probe(
                UNKNOWN, "the store holds no orders: an empty answer proves nothing"
            )
        low = client.list_orders(
            ListQuery(count=1).where(Condition("dt_updated", "GE", 0))
        )
    except REFUSALS as exc:
        return Probe(UNSUPPORTED, str(exc))
    if low.total_count == 0:
        return Probe(
            UNSUPPORTED,
            f"dt_updated GE 0 answered no orders though the store holds {total}",
        )
    return Probe(
        SUPPORTED,
        f"dt_updated GE 0 answered {low.total_count} orders, a year ahead none",
    )


def _sort_probe(
    client: MivaClient, *, descending: bool
) -> tuple[Probe, list[dict[str, Any]]]:
    """A page sorted by ``dt_updated`` (or ``-dt_updated``) comes back in that order."""
    from miva_sync.store.orders import cursor_value
    from miva_sync.store.query import ListQuery

    sort = "-dt_updated" if descending else "dt_updated"
    query = ListQuery(count=SORT_PROBE_ROWS).sorted_by(
        "dt_updated", descending=descending
    )
    try:
        page = client.list_orders(query)
    except REFUSALS as exc:
        return Probe(UNSUPPORTED, f"Sort {sort}: {exc}"), []
    values = [cursor_value(row, "dt_updated") for row in page.orders]
    known = [v for v in values if v is not None]
    if not values:
        return Probe(UNKNOWN, "the store holds no orders to compare"), []
    if len(known) < len(values):
        return (
            Probe(UNKNOWN, "rows without a usable dt_updated: nothing to compare"),
            page.orders,
        )
    if len(set(known)) < 2:
        return (
            Probe(
                UNKNOWN,
                f"the {len(known)} rows read share one dt_updated: too few distinct "
                "values to tell",
            ),
            page.orders,
        )
    pairs = list(itertools.pairwise(known))
    wrong = next(
        (i for i, (a, b) in enumerate(pairs, 1) if (a < b if descending else a > b)),
        None,
    )
    if wrong is not None:
        return (
            Probe(
                UNSUPPORTED,
                f"Sort {sort} came back out of order (row {wrong + 1} of "
                f"{len(known)}): the store ignores the sort",
            ),
            page.orders,
        )
    return Probe(SUPPORTED, f"{len(known)} rows came back in order"), page.orders


def _same_order(
    asc_rows: list[dict[str, Any]],
    desc_rows: list[dict[str, Any]],
    ascending: Probe,
    descending: Probe,
) -> tuple[Probe, Probe]:
    """Both sorts returning the same rows in the same order (with distinct
    values) means the store ignored both, even where one page happened to look
    sorted: a store that ignores Sort answers in its own (id) order."""
    if (
        ascending.value == UNKNOWN
        or descending.value == UNKNOWN
        or not asc_rows
        or [r.get("id") for r in asc_rows] != [r.get("id") for r in desc_rows]
    ):
        return ascending, descending
    same = Probe(
        UNSUPPORTED,
        "Sort dt_updated and Sort -dt_updated returned the same rows in the same "
        "order: the store ignores the sort",
    )
    return same, same


def _field_probe(rows: list[dict[str, Any]]) -> Probe:
    """Every row read carries a usable ``dt_updated`` (int or JSON_DateTime)."""
    from miva_sync.store.orders import cursor_value

    # an order may be in several pages: count it once
    seen = list({str(r.get("id", i)): r for i, r in enumerate(rows)}.values())
    if not seen:
        return Probe(UNKNOWN, "the store holds no orders to look at")
    missing = sum(1 for r in seen if cursor_value(r, "dt_updated") is None)
    if missing == len(seen):
        return Probe(
            UNSUPPORTED,
            "the store's orders carry no dt_updated (a store before Miva 10.03)",
        )
    if missing:
        return Probe(
            UNSUPPORTED,
            f"{missing} of {len(seen)} orders read carry no usable dt_updated",
        )
    return Probe(SUPPORTED, f"all {len(seen)} orders read carry it")


# --- queue ------------------------------------------------------------------------------


def _queue(
    report: Report, client: MivaClient, queue: str | None, required: bool
) -> None:
    """Whether the store knows the queue, as far as the API can tell.

    The orderworkflow module offers no function that lists queues
    (docs/miva-api.md §6), and a store may answer an unknown code with an empty
    list. So: read the queue with a filter nothing matches (a no-ack queue
    moves whatever a read returns), then read a code no store has. If the
    store refuses that one, its answer on the real code proves the code.
    """
    if not queue:
        report.add("queue", SKIP, "no queue named (--queue CODE, or a profile's queue)")
        return
    try:
        _empty_queue_read(client, queue)
    except REFUSALS as exc:
        report.queue_granted = False
        probe = Probe(
            UNSUPPORTED,
            f"QueueOrderList_Load_Query on {queue!r}: {exc}: check the "
            "code under Order Workflows in the Miva admin (codes are "
            "case-sensitive) and that the token may call the orderworkflow "
            "functions QueueOrderList_Load_Query and OrderList_Acknowledge",
        )
        _add_probe(report, "queue", probe, required, absent=UNSUPPORTED)
        return
    except MivaSyncError as exc:
        report.add("queue", FAIL, str(exc), exc.exit_code)
        return
    report.queue_granted = True
    _add_probe(report, "queue", _bogus_queue_probe(client, queue), required)


def _empty_queue_read(client: MivaClient, queue: str) -> Page:
    from miva_sync.store.query import Condition, ListQuery

    query = ListQuery(count=1).where(Condition("id", "LT", 0))
    return client.queue_orders(queue, query)


def _bogus_queue_probe(client: MivaClient, queue: str) -> Probe:
    tail = "(acknowledgement is not tried: it would change the queue)"
    try:
        _empty_queue_read(client, BOGUS_QUEUE)
    except REFUSALS as exc:
        return Probe(
            SUPPORTED,
            f"the store knows {queue!r}: it answers it, and refuses an unknown "
            f"code ({exc.code}) {tail}",
        )
    except MivaSyncError as exc:
        return Probe(UNKNOWN, f"the queue answered; the cross-check failed: {exc}")
    return Probe(
        UNKNOWN,
        f"the queue answered empty, and so does a code no store has: the store "
        f"cannot tell us whether {queue!r} exists; codes are case-sensitive, "
        "check it under Order Workflows in the Miva admin",
    )


# --- the suggested pull -----------------------------------------------------------------

# how far back a first pull's suggested start reaches
FIRST_PULL_SPAN = "7d"


@dataclass(frozen=True)
class Suggestion:
    """One command line check may suggest, the flags ``pull`` would judge in
    it, and what the sentence adds after it."""

    argv: tuple[str, ...]
    given: Mapping[str, Any] = field(default_factory=dict)
    note: str = ""


def _suggest(report: Report, client: MivaClient, clock: Callable[[], float]) -> None:
    """The pull to run next: a mode name, one command line and a sentence.

    The command line is judged as ``pull`` would judge it: the flag table
    (app/flag_rules.py) in the mode it would run, with the profile's defaults,
    and the start rule in this store's saved state (docs/design.md §5.5). A
    start that a saved cursor would override is never suggested: the saved
    mode is resumed, or its cursor moved on purpose with ``state set``. A
    warning row instead of a command the pull would refuse.
    """
    settings = report.settings
    try:
        record = _saved_record(settings)
        mode, why = _best_mode(report)
        suggestion = _Suggester(report, record, client, clock).suggest(mode)
    except MivaSyncError as exc:
        report.add("suggestion", WARN, f"no pull to suggest: {exc}")
        return
    words = (*_prefix(settings), *suggestion.argv)
    command = " ".join(shlex.quote(word) for word in words)
    report.suggested_mode = mode
    report.suggested_command = command
    report.suggestion = f"{mode}{why}: {command}{suggestion.note}"


def _best_mode(report: Report) -> tuple[str, str]:
    """The mode this store proved best, and why when it is not the obvious one."""
    queue = report.probes.get("queue")
    if queue is not None and queue.value == SUPPORTED:
        return "queue", ""
    if report.updated_mode == SUPPORTED:
        return "updated", ""
    if queue is not None and report.queue_granted:
        hint = f"queue {report.queue!r} answered but is not proven (see its row)"
    else:
        hint = "a workflow queue delivers updates too: try one with check --queue"
    return "number", (
        f" (updated mode is {report.updated_mode or 'unknown'} on this store; "
        f"number mode delivers new orders only, and date mode misses updates "
        f"too; {hint})"
    )


def _saved_record(settings: Settings) -> StateRecord | None:
    """The record a pull of this store starts from (a database target's own
    cursor copy first, as ``state show`` reads it), read without the lock."""
    from miva_sync.app.state_view import load, store_ref

    ref = store_ref(settings, sandbox=False, output=settings.defaults.get("output"))
    return load(ref)[0]


def _prefix(settings: Settings) -> list[str]:
    """``miva-sync`` and the options that reach the same store and state file
    (the environment and the default profile reach them by themselves)."""
    out = ["miva-sync"]
    if settings.profile and settings.sources.get("profile") == "flag":
        out += ["--profile", settings.profile]
    if settings.state_file and settings.sources.get("state_file") == "flag":
        out += ["--state-file", str(settings.state_file)]
    return out


@dataclass
class _Suggester:
    """Finds the command line for a mode in this store's saved state."""

    report: Report
    record: StateRecord | None
    client: MivaClient
    clock: Callable[[], float]

    @property
    def active(self) -> str | None:
        return self.record.get("mode") if self.record else None

    def cursor(self, mode: str) -> Mapping[str, Any]:
        cursors: Mapping[str, Any] = self.record["cursors"] if self.record else {}
        return cursors.get(mode) or {}

    def suggest(self, mode: str) -> Suggestion:
        if mode == "queue":
            return self.judged(self.queue(str(self.report.queue)))
        if self.active == mode:
            note = f" (resumes the saved {mode} cursor)"
            return self.judged(Suggestion(("pull",), note=note))
        if mode == "updated" and self.active == "date":
            # the documented switch: from where date mode stands, or from
            # updated mode's own saved cursor
            return self.judged(Suggestion(("pull", "--updated"), {"updated": True}))
        if mode == "updated":
            since = int(self.clock()) - parse_span(FIRST_PULL_SPAN)
            return self.started(
                Suggestion(
                    ("pull", "--since", FIRST_PULL_SPAN, "--updated"),
                    {"since": since, "updated": True},
                ),
                PullOptions(since=since, updated=True),
            )
        start = self.number_start()
        return self.started(
            Suggestion(("pull", "--from-order", str(start)), {"from_order": start}),
            PullOptions(from_order=start),
        )

    def queue(self, code: str) -> Suggestion:
        saved = self.cursor("queue")
        if self.active == "queue" and saved.get("queue_code") == code:
            return Suggestion(("pull",), note=" (resumes the saved queue)")
        argv = ["pull", "--queue", code]
        given: dict[str, Any] = {"queue_code": code}
        if saved.get("queue_code") == code and saved.get("ack") is False:
            # --queue alone would turn the saved --no-ack queue to acknowledgements
            argv.append("--no-ack")
            given["ack"] = False
            if saved.get("received_queue"):
                argv += ["--received-queue", str(saved["received_queue"])]
                given["received_queue"] = saved["received_queue"]
        make_queue_plan(
            self.record,
            QueueOptions(
                queue_code=code,
                ack=given.get("ack", True),
                received_queue=given.get("received_queue"),
            ),
        )
        return Suggestion(tuple(argv), given)

    def started(self, suggestion: Suggestion, options: PullOptions) -> Suggestion:
        """A pull with a start, if the start applies (no saved cursor of its
        mode overrides it); else ``state set`` to where that cursor resumes."""
        plan = make_plan(self.record, options)
        start = options.since if options.since is not None else options.from_order
        if plan.watermark is None and plan.start == start:
            return self.judged(suggestion)
        # the mode's saved cursor wins over a start (docs/design.md §5.5):
        # restart it on purpose where a resumed pull would read from
        point = _resume_point(plan)
        if plan.mode == "number":
            argv: tuple[str, ...] = ("state", "set", "--order", str(point))
        else:
            argv = ("state", "set", "--since", str(point))
            argv += ("--updated",) if plan.mode == "updated" else ()
        return Suggestion(
            argv,
            note=(
                f", then miva-sync pull ({plan.mode} mode has a saved cursor, "
                "which a start would not move)"
            ),
        )

    def judged(self, suggestion: Suggestion) -> Suggestion:
        """``suggestion`` unless the flag table refuses it in the mode it would
        run, with the profile's output (which every pull of it writes to)."""
        given = dict(suggestion.given)
        output = self.report.settings.defaults.get("output")
        if output not in (None, "-"):
            given["output"] = output
        # a pull naming no mode is judged in the saved one (app/pull.py)
        mode = flag_rules.mode_named(given) or self.active
        refusal = flag_rules.refusal(given, mode)
        if refusal is not None:
            raise UsageError(f"the pull would be refused: {refusal}")
        defaults = self.report.settings.defaults
        # the profile's columns and page size, parsed as a pull parses them
        # (whether payment_data gets its passphrase is the pull's to ask)
        base_query(
            defaults.get("columns"),
            page_size=int(defaults.get("page_size", 100)),
            passphrase="not needed to parse",  # noqa: S106 - not a secret
        )
        return suggestion

    def number_start(self) -> int:
        """Where a number-mode suggestion starts: the first order placed in the
        last FIRST_PULL_SPAN (as ``--since`` would), else the newest order."""
        from miva_sync.store.orders import order_id
        from miva_sync.store.query import Condition, ListQuery

        since = int(self.clock()) - parse_span(FIRST_PULL_SPAN)
        first = self.client.list_orders(
            ListQuery(count=1)
            .where(Condition("orderdate", "GE", since))
            .sorted_by("id")
        )
        if first.orders:
            # an order the store holds: the pull's --from-order check (an id
            # filter's count, app/pull.py) always finds it
            return order_id(first.orders[0])
        # none placed lately: from the newest order (even a store ignoring
        # the -id sort answers one it holds)
        top = self.client.list_orders(
            ListQuery(count=1).sorted_by("id", descending=True)
        )
        return order_id(top.orders[0]) if top.orders else 1  # no orders yet


def _resume_point(plan: Plan) -> int:
    """Where a pull resuming ``plan``'s saved cursor reads from."""
    if plan.watermark is None:
        return plan.start
    if plan.mode != "number":
        return max(plan.start, plan.watermark - plan.lookback)
    back = int(plan.overlap) if plan.overlap.isdigit() else 0
    return max(plan.start, plan.watermark - back)

"""``miva-sync check``: a doctor for one store's settings, in rows a person can act on.

Fatal rows (the run cannot work): settings (exit 3), reachability and TLS (6),
authentication (4), listing orders (5), clock skew (4). Informational rows
(whether ``dt_updated`` is searchable, whether the queue functions are granted)
only fail the check when ``require`` names them (exit 5). Every request is a
``Count: 1`` read; nothing is acknowledged and no queue loses an order.
"""

from __future__ import annotations

import email.utils
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass, field
from typing import Any

from miva_sync.config import Settings
from miva_sync.errors import (
    ApiError,
    AuthError,
    ConfigError,
    MivaSyncError,
    TransientError,
    UsageError,
)
from miva_sync.urls import redact_url

# A store with timestamp validation refuses a request whose Miva_Request_Timestamp
# is outside its window (the sandbox's default is 120 s; Miva does not document
# its own). Fail well inside that, warn early enough for NTP to be fixed calmly.
SKEW_FAIL = 60.0
SKEW_WARN = 10.0
REQUIRABLE = ("updated", "queue")

OK, WARN, FAIL, INFO, SKIP = "ok", "warn", "fail", "info", "skip"

_ERRORS: dict[int, type[MivaSyncError]] = {
    2: UsageError,
    3: ConfigError,
    4: AuthError,
    5: ApiError,
    6: TransientError,
}


@dataclass
class Row:
    """One line of the doctor's table."""

    name: str
    status: str
    detail: str
    exit_code: int = 0


@dataclass
class Report:
    """What ``check`` found; ``exit_code`` is the first failing row's."""

    settings: Settings
    rows: list[Row] = field(default_factory=list)
    total_count: int | None = None
    skew_seconds: float | None = None
    dt_updated: bool | None = None
    queue: str | None = None
    queue_granted: bool | None = None
    suggested_mode: str | None = None

    def add(self, name: str, status: str, detail: str, exit_code: int = 0) -> None:
        self.rows.append(Row(name, status, detail, exit_code))

    @property
    def failure(self) -> Row | None:
        return next((r for r in self.rows if r.status == FAIL), None)

    @property
    def exit_code(self) -> int:
        row = self.failure
        return row.exit_code if row else 0

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
            "total_count": self.total_count,
            "clock_skew_seconds": self.skew_seconds,
            "dt_updated_searchable": self.dt_updated,
            "queue": self.queue,
            "queue_granted": self.queue_granted,
            "suggested_mode": self.suggested_mode,
        }


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
    from miva_sync.client import MivaClient

    with MivaClient.from_settings(settings, clock=clock) as client:
        if _connect(report, client):
            _skew(report, client, clock)
            if report.failure is None:
                _dt_updated(report, client, "updated" in require)
                _queue(report, client, queue, "queue" in require)
                report.suggested_mode = _suggest(report)
        else:
            _skew(report, client, clock)  # a refused timestamp is often the cause
    return report


def _connect(report: Report, client: Any) -> bool:
    """Reachability, TLS, authentication and one list query; True when all passed."""
    from miva_sync.query import ListQuery

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
        return False
    except ConfigError as exc:
        report.add("reachable", FAIL, str(exc), exc.exit_code)
        return False
    except AuthError as exc:
        report.add("reachable", OK, f"HTTP {exc.http_status} from {url}")
        _tls(report, https)
        report.add(
            "authentication",
            FAIL,
            f"{exc} ('miva-sync config show' shows where each setting comes from)",
            exc.exit_code,
        )
        return False
    except ApiError as exc:
        report.add("reachable", OK, url)
        _tls(report, https)
        report.add("authentication", OK, "the store accepted the credentials")
        report.add(
            "list orders",
            FAIL,
            f"{exc}: grant the token OrderList_Load_Query in the Miva admin "
            "(User Management > API Tokens)",
            exc.exit_code,
        )
        return False
    report.add("reachable", OK, url)
    _tls(report, https)
    report.add("authentication", OK, "the store accepted the credentials")
    report.total_count = page.total_count
    report.add("list orders", OK, f"the store holds {page.total_count} orders")
    return True


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


def _skew(report: Report, client: Any, clock: Callable[[], float]) -> None:
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
    side = "ahead of" if skew > 0 else "behind"
    text = f"the store's clock is {abs(skew):.0f}s {side} this machine's"
    if abs(skew) > SKEW_FAIL:
        report.add(
            "clock",
            FAIL,
            f"{text}: requests carry this machine's time and stores with timestamp "
            f"validation refuse them; sync this machine's clock (NTP: timedatectl "
            f"set-ntp true)",
            4,
        )
    elif abs(skew) > SKEW_WARN:
        report.add(
            "clock", WARN, f"{text}; keep NTP running (fails over {SKEW_FAIL:.0f}s)"
        )
    else:
        report.add(
            "clock", OK, f"within {max(abs(skew), 1):.0f}s of the store's Date header"
        )


def _dt_updated(report: Report, client: Any, required: bool) -> None:
    from miva_sync.query import Condition, ListQuery

    query = ListQuery(count=1).where(Condition("dt_updated", "GE", 0))
    try:
        client.list_orders(query)
    except ApiError as exc:
        report.dt_updated = False
        detail = (
            f"not searchable ({exc.code or exc}): a store before Miva 10.03; "
            "updated mode is unavailable, use a workflow queue, or date mode "
            "(which misses updates)"
        )
        report.add(
            "dt_updated", FAIL if required else INFO, detail, 5 if required else 0
        )
    except MivaSyncError as exc:
        report.add("dt_updated", FAIL, str(exc), exc.exit_code)
    else:
        report.dt_updated = True
        report.add("dt_updated", OK, "searchable: updated mode (--updated) works")


def _queue(report: Report, client: Any, queue: str | None, required: bool) -> None:
    from miva_sync.query import Condition, ListQuery

    if not queue:
        report.add("queue", SKIP, "no queue named (--queue CODE, or a profile's queue)")
        return
    # A filter nothing matches: proves the function and the queue without
    # downloading an order, since a no-ack queue moves whatever it returns.
    query = ListQuery(count=1).where(Condition("id", "LT", 0))
    try:
        client.queue_orders(queue, query)
    except ApiError as exc:
        report.queue_granted = False
        if exc.code == "invalid_queue":
            detail = (
                f"the store has no queue {queue!r}: check its code under "
                "Order Workflows in the Miva admin"
            )
        else:
            detail = (
                f"{exc.code or exc}: grant the token the orderworkflow functions "
                "QueueOrderList_Load_Query and OrderList_Acknowledge"
            )
        report.add("queue", FAIL if required else INFO, detail, 5 if required else 0)
    except MivaSyncError as exc:
        report.add("queue", FAIL, str(exc), exc.exit_code)
    else:
        report.queue_granted = True
        report.add(
            "queue",
            OK,
            f"QueueOrderList_Load_Query on {queue!r} works "
            "(acknowledgement is not tried: it would change the queue)",
        )


def _suggest(report: Report) -> str:
    if report.queue_granted:
        return f"queue: miva-sync pull --queue {report.queue}"
    if report.dt_updated:
        return "updated: miva-sync pull --since 7d --updated"
    return "date (misses updates) or number: miva-sync pull --since 7d"

"""Typed errors, each carrying the exit status cron sees (docs/design.md §7).

The library only raises these; :mod:`miva_sync.cli.main` turns them into one
line on stderr and the exit status. Messages never contain a token, signing key
or passphrase.
"""

from __future__ import annotations

from enum import IntEnum


class ExitStatus(IntEnum):
    """Every status miva-sync exits with, and its meaning in a few words.

    Defined here once: the root ``--help``, the ``--all-profiles`` summary and
    every error class read it. The human table in docs/design.md §7 and the
    README is checked against it (tests/unit/test_exit_status.py).
    """

    meaning: str

    # builds the members below; ``ExitStatus(4)`` looks one up by value (the
    # default only lets type checkers accept that call)
    def __new__(cls, value: int, meaning: str = "") -> ExitStatus:
        member = int.__new__(cls, value)
        member._value_ = value
        member.meaning = meaning
        return member

    OK = 0, "ok"
    INTERNAL = 1, "internal error"
    USAGE = 2, "usage error"
    CONFIG = 3, "configuration error"
    AUTH = 4, "authentication refused"
    API = 5, "API refused the request"
    UNREACHABLE = 6, "store unreachable"
    LOCKED = 7, "locked by another run"
    OUTPUT = 8, "output failed"
    INCOMPLETE = 9, "incomplete or stale"
    INTERRUPTED = 130, "interrupted"


class MivaSyncError(Exception):
    """Base of every error miva-sync raises on purpose."""

    exit_code: ExitStatus = ExitStatus.INTERNAL


class UsageError(MivaSyncError):
    """Bad flags or values, or nothing saved to resume from."""

    exit_code = ExitStatus.USAGE


class ConfigError(MivaSyncError):
    """Missing or invalid settings, unreadable config, corrupt state."""

    exit_code = ExitStatus.CONFIG


class StoreError(MivaSyncError):
    """An error from talking to the store, and where it came from.

    ``request`` is the Miva function that failed (``OrderList_Load_Query``,
    ``QueueOrderList_Load_Query``, ``OrderList_Acknowledge``): only the name,
    never the body, URL, token or signature, so the error can be logged or
    shown whole. ``http_status`` is the answer's status when there was one (not
    on a timeout or a refused connection); ``code`` is the store's
    ``error_code`` when its answer carried one. None of them is added to the
    message: the message already says what the user needs.
    """

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        request: str | None = None,
        code: str | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.request = request
        self.code = code


class AuthError(StoreError):
    """The store refused our credentials (HTTP 401/403, or ``success: 0`` with
    an error code known to mean authentication: see ``client.AUTH_ERROR_CODES``)."""

    exit_code = ExitStatus.AUTH


class ApiError(StoreError):
    """The store answered but refused the request (``success: 0`` or another 4xx)."""

    exit_code = ExitStatus.API

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        request: str | None = None,
        field_errors: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status, request=request, code=code)
        self.field_errors = field_errors or []


class UntrustedAnswerError(ApiError):
    """The store answered, but in a way the mode cannot trust (docs/design.md §5.2):
    a page out of the requested order, rows without the cursor field, a
    ``total_count`` showing rows were skipped. Nothing of that page is used."""


class AckError(ApiError):
    """``OrderList_Acknowledge`` answered ``processed: 0`` for some orders."""

    def __init__(
        self,
        message: str,
        *,
        order_ids: list[int],
        http_status: int | None = None,
        request: str | None = None,
    ) -> None:
        super().__init__(
            message, code="not_processed", http_status=http_status, request=request
        )
        self.order_ids = order_ids


class TransientError(StoreError):
    """The store is unreachable or failing; retrying later may succeed."""

    exit_code = ExitStatus.UNREACHABLE

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        request: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, http_status=http_status, request=request)
        self.retry_after = retry_after


class LockedError(MivaSyncError):
    """Another run for this store holds the lock."""

    exit_code = ExitStatus.LOCKED


class OutputError(MivaSyncError):
    """The output target failed: disk full, closed pipe, database down."""

    exit_code = ExitStatus.OUTPUT


class BrokenPipeOutputError(OutputError):
    """The reader of stdout went away (``| head``)."""


class IncompleteError(MivaSyncError):
    """``verify`` found missing or stale orders in the target."""

    exit_code = ExitStatus.INCOMPLETE


class InterruptedRunError(MivaSyncError):
    """Ctrl-C or SIGTERM; state was left consistent.

    ``committed``: the orders the run wrote and made durable (with the state
    file moved past them) before it stopped, when the run knows it.
    """

    exit_code = ExitStatus.INTERRUPTED

    def __init__(self, message: str = "interrupted", *, committed: int | None = None):
        super().__init__(message)
        self.committed = committed

    @classmethod
    def after(cls, committed: int, *, resumable: bool = True) -> InterruptedRunError:
        """``interrupted: N orders written and committed; run again to resume``

        ``resumable`` False: a run that saves no cursor (a bounded re-pull),
        which delivers its whole window again when run again."""
        orders = "order" if committed == 1 else "orders"
        then = (
            "run again to resume"
            if resumable
            else "nothing saves where it stopped: run it again for the whole window"
        )
        return cls(
            f"interrupted: {committed} {orders} written and committed; {then}",
            committed=committed,
        )

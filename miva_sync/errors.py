"""Typed errors, each carrying the exit code cron sees (design.md §4.3).

The library only raises these; ``cli.py`` turns them into one line on stderr and
the exit code. Messages never contain a token, signing key or passphrase.
"""

from __future__ import annotations


class MivaSyncError(Exception):
    """Base of every error miva-sync raises on purpose."""

    exit_code = 1


class UsageError(MivaSyncError):
    """Bad flags or values, or nothing saved to resume from."""

    exit_code = 2


class ConfigError(MivaSyncError):
    """Missing or invalid settings, unreadable config, corrupt state."""

    exit_code = 3


class AuthError(MivaSyncError):
    """The store refused our credentials (HTTP 401/403, or ``success: 0`` with
    an error code known to mean authentication: see ``client.AUTH_ERROR_CODES``)."""

    exit_code = 4

    def __init__(
        self, message: str, *, http_status: int | None = None, code: str | None = None
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.code = code


class ApiError(MivaSyncError):
    """The store answered but refused the request (``success: 0`` or another 4xx)."""

    exit_code = 5

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        http_status: int | None = None,
        field_errors: list[tuple[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.http_status = http_status
        self.field_errors = field_errors or []


class UntrustedAnswerError(ApiError):
    """The store answered, but in a way the mode cannot trust (design.md §5):
    a page out of the requested order, rows without the cursor field, a
    ``total_count`` showing rows were skipped. Nothing of that page is used."""


class AckError(ApiError):
    """``OrderList_Acknowledge`` answered ``processed: 0`` for some orders."""

    def __init__(self, message: str, *, order_ids: list[int]) -> None:
        super().__init__(message, code="not_processed")
        self.order_ids = order_ids


class TransientError(MivaSyncError):
    """The store is unreachable or failing; retrying later may succeed."""

    exit_code = 6

    def __init__(
        self,
        message: str,
        *,
        http_status: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.retry_after = retry_after


class LockedError(MivaSyncError):
    """Another run for this store holds the lock."""

    exit_code = 7


class OutputError(MivaSyncError):
    """The output target failed: disk full, closed pipe, database down."""

    exit_code = 8


class BrokenPipeOutputError(OutputError):
    """The reader of stdout went away (``| head``)."""


class IncompleteError(MivaSyncError):
    """``verify`` found missing or stale orders in the target."""

    exit_code = 9


class InterruptedRunError(MivaSyncError):
    """Ctrl-C or SIGTERM; state was left consistent."""

    exit_code = 130

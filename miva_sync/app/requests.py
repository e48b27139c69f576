"""What a command asks of the app, typed once by the command line.

The CLI parses its flags into one of these (a profile's defaults applied,
times resolved in the store's zone, ``--ids`` read and parsed, the flag
table checked) and hands it to the app once. A library caller builds one
directly. Field names are the command line's option names, so the flag
table (:mod:`miva_sync.app.flag_rules`) reads both alike.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, TypeVar

from miva_sync.config import ENV_VARS
from miva_sync.errors import UsageError
from miva_sync.sync.held import DEFAULT_HOLD_FOR
from miva_sync.sync.plan import PullOptions

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

    from miva_sync.sync.queue_state import QueueOptions

# flags that name a mode or bound a window: a pull with none of them is bare
# and resumes the store's active mode
_MODE_FLAGS = ("queue_code", "since", "from_order", "until", "to_order", "updated")
_SEPARATORS = re.compile(r"[\s,]+")

R = TypeVar("R", bound="DataclassInstance")


def _known(cls: type[R], values: Mapping[str, Any], **more: Any) -> R:
    """``cls`` from the values whose names are its fields (a command's parsed
    flags hold more: --all-profiles, --ids-from, …); ``more`` wins."""
    names = {f.name for f in fields(cls)}
    return cls(**({k: v for k, v in values.items() if k in names} | more))


@dataclass(frozen=True)
class GlobalOptions:
    """The flags every command shares (accepted before or after the command);
    None: not given, so the environment or the profile decides."""

    url: str | None = None
    store_code: str | None = None
    api_token: str | None = None
    signing_key: str | None = None
    digest: str | None = None
    profile: str | None = None
    state_file: str | None = None
    timeout: float | None = None
    retry_budget: float | None = None
    max_rps: float | None = None
    insecure: bool | None = None
    timezone: str | None = None
    verbose: int = 0
    quiet: bool = False
    log_format: str | None = None
    debug: bool = False

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> GlobalOptions:
        """From the flags collected by name; absent or None ones keep the default."""
        return _known(cls, {k: v for k, v in values.items() if v is not None})

    def settings_flags(self, **extra: Any) -> dict[str, Any]:
        """What :func:`miva_sync.config.load_settings` takes from the command
        line: the settings flags given, and ``extra`` ones (None: not given)."""
        # the settings among them: those with an environment variable too
        flags = {f.name: getattr(self, f.name) for f in fields(self)} | extra
        return {
            name: value
            for name, value in flags.items()
            if value is not None and name in ENV_VARS
        }


@dataclass(frozen=True)
class PullRequest(PullOptions):
    """``miva-sync pull``: one mode (a window from a cursor, a queue, or a
    re-send of ``ids``), where to write, and how.

    The window's fields (a mode's start, its bounds, how far to re-query,
    --full-refresh, --emit-unchanged) are :class:`PullOptions`', which the
    planner of date, updated and number modes reads from the request itself.
    """

    # queue mode
    queue_code: str | None = None
    ack: bool = True
    received_queue: str | None = None
    # re-send exactly these orders (parsed: see parse_ids)
    ids: tuple[int, ...] | None = None
    dry_run: bool = False
    # --json: the run summary as one JSON object (on stdout, or as the last
    # stderr line when stdout carries the orders)
    as_json: bool = False
    # where and how
    output: str = "-"
    fmt: str = "jsonl"
    page_size: int = 100
    columns: str | None = None
    passphrase: str | None = None  # for payment_data: never a flag (ps shows flags)
    workers: int = 1
    progress: bool | None = None  # None: when stderr is a terminal
    # for another run's lock: True without limit, a number at most that many
    # seconds, False not at all (exit 7)
    wait: bool | float = False
    require_payment: bool = False
    hold_for: int = DEFAULT_HOLD_FOR  # seconds
    use_sandbox: bool = False
    # the flags typed on the command line (option name -> value) for the flag
    # table: a profile's defaults are never refused. None: a library caller,
    # whose every field set counts as given.
    given: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, values: Mapping[str, Any], **more: Any) -> PullRequest:
        """From the pull command's parsed flags (and ``more`` fields)."""
        return _known(cls, values, **more)

    def flags(self) -> Mapping[str, Any]:
        """The flags the flag table judges: those typed on the command line,
        or, for a library caller, every field that differs from its default."""
        if self.given is not None:
            return self.given
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "given" and getattr(self, f.name) != f.default
        }

    @property
    def bare(self) -> bool:
        """Names no mode and no window: resumes whatever mode is active."""
        return not any(getattr(self, name) for name in _MODE_FLAGS)

    @property
    def names_start(self) -> bool:
        return self.since is not None or self.from_order is not None

    def queue_options(self) -> QueueOptions:
        """What the planner of queue mode reads (no code: resume the saved queue)."""
        from miva_sync.sync.queue_state import QueueOptions  # queue mode's alone

        return QueueOptions(
            queue_code=self.queue_code or None,
            ack=self.ack,
            received_queue=self.received_queue or None,
            emit_unchanged=self.emit_unchanged,
        )


@dataclass(frozen=True)
class ListenRequest:
    """``miva-sync listen``: where to receive webhooks and where to write them."""

    output: str
    host: str = "127.0.0.1"
    port: int = 8080
    secret: str | None = None  # over MIVA_SYNC_WEBHOOK_SECRET and the profile's
    verify_with_api: bool = False
    max_body: int = 1_000_000  # bytes
    require_payment: bool = False
    hold_for: int = DEFAULT_HOLD_FOR  # seconds

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> ListenRequest:
        return _known(cls, values)


@dataclass(frozen=True)
class VerifyRequest:
    """``miva-sync verify``: the range that must be in ``output``, and whether
    to repair it."""

    output: str
    since: int | None = None  # unix seconds
    until: int | None = None
    updated: bool = False
    from_order: int | None = None
    to_order: int | None = None
    as_json: bool = False
    repair: bool = False
    columns: str | None = None  # with repair: the columns to re-pull
    wait: bool | float = False  # as PullRequest's
    use_sandbox: bool = False

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> VerifyRequest:
        return _known(cls, values)


def parse_ids(text: str) -> tuple[int, ...]:
    """``1020,1021 1022`` -> (1020, 1021, 1022) (order kept, repeats dropped)."""
    ids: list[int] = []
    for part in _SEPARATORS.split(text.strip()):
        if not part:
            continue
        if not part.isdigit():
            raise UsageError(f"--ids: {part[:20]!r} is not an order number")
        ids.append(int(part))
    if not ids:
        raise UsageError("--ids: no order numbers given")
    return tuple(dict.fromkeys(ids))

"""The one result every pull mode produces, and what its runs count on the way.

A run counts into a mutable :class:`Tally` as it goes (one increment per order
or page, in the hot loop) and hands back a frozen :class:`RunSummary` at its
end: the same object for a window pull (date, updated, number), a queue pull
and a re-send by id. The console renders it as today's closing line
(:meth:`RunSummary.describe`) or, with ``--log-format json``, as one JSON line
(:meth:`RunSummary.to_json`), which is also the object ``pull --json`` prints
(its JSON Schema: docs/schemas/run-summary.schema.json).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from typing import Any

from miva_sync.base.timespec import iso, iso_in
from miva_sync.store.orders import order_id


def describe_cursor(mode: str, value: int | None, zone: tzinfo = UTC) -> str:
    """A cursor value as people read it: ``#1042`` for an order number, else the
    time in UTC (and in the store's zone); ``-`` for none."""
    if value is None:
        return "-"
    return f"#{value}" if mode == "number" else iso_in(value, zone)


def iso_local(seconds: int | None, zone: tzinfo) -> str | None:
    """Unix seconds as ISO-8601 in ``zone`` with its offset
    (``2026-12-01T01:00:00-08:00``); None for none or a time out of range."""
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, zone).isoformat(timespec="seconds")
    except (OverflowError, ValueError, OSError):
        return None


@dataclass
class Tally:
    """What a run has counted so far; :meth:`freeze` turns it into the summary."""

    emitted: int = 0
    new: int = 0
    updated: int = 0
    unchanged: int = 0
    held: int = 0
    released: int = 0
    pages: int = 0
    requests: int = 0
    retries: int = 0
    acknowledged: int = 0
    newer: int = 0
    recovered: int = 0
    drained: bool = False
    seconds: float = 0.0
    warnings: list[str] = dataclasses.field(default_factory=list)

    def wrote(
        self, orders: Iterable[dict[str, Any]], known: Callable[[int], bool]
    ) -> None:
        """Count orders written: ``known(id)`` tells an update from a new order
        (asked before the dedupe window learns the order)."""
        for order in orders:
            self.emitted += 1
            if known(order_id(order)):
                self.updated += 1
            else:
                self.new += 1

    def freeze(
        self,
        mode: str,
        *,
        cursor_field: str | None = None,
        watermark_before: int | None = None,
        watermark: int | None = None,
        lo: int | None = None,
        hi: int | None = None,
        zone: tzinfo = UTC,
        saves_state: bool = True,
        queue_code: str | None = None,
        ack: bool | None = None,
        requested: int | None = None,
        store: str | None = None,
    ) -> RunSummary:
        counts = {**dataclasses.asdict(self), "warnings": tuple(self.warnings)}
        return RunSummary(
            mode=mode,
            store=store,
            cursor_field=cursor_field,
            watermark_before=watermark_before,
            watermark=watermark,
            lo=lo,
            hi=hi,
            zone=zone,
            saves_state=saves_state,
            queue_code=queue_code,
            ack=ack,
            requested=requested,
            **counts,
        )


@dataclass(frozen=True, kw_only=True)
class RunSummary:
    """How a run went, the same fields for every mode (unused ones stay empty).

    Orders: ``emitted`` were written (``new`` ones the dedupe window did not
    know, ``updated`` ones it did: a newer version, or under --emit-unchanged
    the same one again), ``unchanged`` were read again and skipped, ``held`` are held unpaid at the end (--require-payment),
    ``released`` held orders were written by this run.
    Traffic: ``pages`` of orders taken in (a page of one tied cursor value
    is read again by id, in pages of its own), ``requests`` sent (``retries`` of them
    repeats after a transient failure), in ``seconds``.
    The cursor of a window mode: ``cursor_field`` (orderdate, dt_updated or
    id), the saved ``watermark_before`` and ``watermark`` after the run (unix
    seconds, or an order number in number mode), the window queried
    ``lo``..``hi`` (no ``hi``: up to now), shown in the store's ``zone``;
    ``saves_state`` is False for a bounded re-pull or a re-send.
    A queue: ``queue_code``, ``ack`` (acknowledged mode), ``acknowledged``
    orders, ``newer`` versions found by the re-read after acknowledging,
    ``recovered`` orders of a lost no-ack download, ``drained``.
    A re-send by id: ``requested`` ids. ``store`` is the store's key in the
    state file (``profile:NAME``, ``sandbox``, or URL#code). ``exit_status`` is
    the caller's to fill (:meth:`finished`): 0, or the status a run that
    failed part-way ends with, its counts and cursor as far as it got.
    """

    mode: str  # date, updated, number, queue or ids
    store: str | None = None
    emitted: int
    new: int
    updated: int
    unchanged: int
    held: int
    released: int
    pages: int
    requests: int
    retries: int
    seconds: float
    cursor_field: str | None = None
    watermark_before: int | None = None
    watermark: int | None = None
    lo: int | None = None
    hi: int | None = None
    zone: tzinfo = UTC
    saves_state: bool = True
    queue_code: str | None = None
    ack: bool | None = None
    acknowledged: int
    newer: int
    recovered: int
    drained: bool
    requested: int | None = None
    warnings: tuple[str, ...] = ()
    exit_status: int | None = None

    def finished(self, exit_status: int) -> RunSummary:
        """The same summary with the exit status the command ends with."""
        return dataclasses.replace(self, exit_status=int(exit_status))

    def shown(self, value: int | None) -> str:
        """A cursor value of this run as its mode shows it."""
        return describe_cursor(self.mode, value, self.zone)

    def describe(self) -> str:
        """The run's closing line (after ``miva-sync: ``)."""
        if self.mode == "ids":
            return (
                f"re-sent {self.emitted} of {self.requested or 0} orders; "
                "saved state untouched"
            )
        orders = f"{self.emitted} orders emitted, {self.unchanged} unchanged skipped"
        if self.held or self.released:
            orders += f", {self.held} held unpaid, {self.released} released"
        traffic = f"{self.requests} requests in {self.seconds:.1f}s"
        if self.mode == "queue":
            extra = (
                f"{self.acknowledged} acknowledged, {self.newer} newer after "
                "acknowledgement"
                if self.ack
                else f"not acknowledged, {self.recovered} recovered"
            )
            drained = "drained" if self.drained else "not drained"
            return f"{orders}; queue {self.queue_code}: {extra}; {drained}; {traffic}"
        return (
            f"{orders}; {self.mode} watermark {self.shown(self.watermark)}, "
            f"queried from {self.shown(self.lo)}; {traffic}"
            + ("" if self.saves_state else "; saved state untouched")
        )

    def to_json(self) -> dict[str, Any]:
        """Every field, JSON-ready: the zone by name, the warnings as a list,
        the seconds to the millisecond; and each time of the window and the
        cursor (``lo``, ``hi``, ``watermark_before``, ``watermark``) also as
        ISO-8601 in UTC (``…_iso``) and in the store's zone (``…_local``),
        null in number mode, whose cursor is an order number.

        The object ``pull --json`` prints; docs/schemas/run-summary.schema.json
        describes every key.
        """
        data = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        data["seconds"] = round(self.seconds, 3)
        data["zone"] = str(self.zone)
        data["warnings"] = list(self.warnings)
        timed = self.mode in ("date", "updated")
        for point in ("lo", "hi", "watermark_before", "watermark"):
            value = getattr(self, point)
            shown = timed and value is not None
            data[f"{point}_iso"] = iso(value) if shown else None
            data[f"{point}_local"] = iso_local(value, self.zone) if shown else None
        return data

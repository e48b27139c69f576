"""A dry run's plan (``pull --dry-run``), for people and for log shippers.

The engines in sync/ return the plan as machine values (``PullRun.preview``,
``QueueRun.preview``). Here they become the table a person reads on stderr:
the filter as ``orderdate >= 2026-12-04T03:29:39Z (1796354979)``, the columns
as a comma list, never a Python repr; and, for ``--log-format json``, the
same plan with its machine values kept (numbers as numbers, the filter as the
structure sent to the store).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, tzinfo
from typing import Any

from miva_sync.base.timespec import iso
from miva_sync.store.orders import CURSOR_FIELDS
from miva_sync.sync.summary import describe_cursor

# Miva's search operators as people write them (others are shown as named)
OPERATORS = {"EQ": "=", "NE": "!=", "GT": ">", "GE": ">=", "LT": "<", "LE": "<="}
TIME_FIELDS = frozenset(
    field for mode, field in CURSOR_FIELDS.items() if mode in ("date", "updated")
)


def window_plan(
    preview: Mapping[str, Any], zone: tzinfo = UTC
) -> tuple[dict[str, str], dict[str, Any]]:
    """A date, updated or number dry run: (the rows for people, the JSON fields)."""
    mode = str(preview["mode"])
    rows = {
        "dry run": "nothing is written",
        "mode": mode,
        "field": str(preview["field"]),
        "from": describe_cursor(mode, preview["from"], zone),
        "until": describe_cursor(mode, preview["until"], zone),
        "watermark": describe_cursor(mode, preview["watermark"], zone),
        "filter": describe_conditions(preview["conditions"]),
        **_query_rows(preview),
    }
    times = mode != "number"
    fields: dict[str, Any] = {"event": "dry_run", "writes": False}
    for key, value in preview.items():
        if key == "conditions":
            continue
        fields[key] = value
        if key in ("from", "until", "watermark"):
            fields[f"{key}_iso"] = iso(value) if times and value is not None else None
    return rows, fields


def queue_plan(preview: Mapping[str, Any]) -> tuple[dict[str, str], dict[str, Any]]:
    """A queue dry run: (the rows for people, the JSON fields)."""
    ack = bool(preview["ack"])
    rows = {
        "dry run": "nothing is written or acknowledged",
        "mode": "queue",
        "queue": str(preview["queue"]),
        "acknowledge": "yes, after a durable write" if ack else "no (--no-ack)",
        **_query_rows(preview),
        "pending acknowledgements": str(preview["pending_ack"]),
    }
    fields = {"event": "dry_run", "writes": False, **preview}
    return rows, fields


def describe_conditions(conditions: list[Mapping[str, Any]]) -> str:
    """``orderdate >= 2026-12-04T03:29:39Z (1796354979) and orderdate <= …``:
    a time as ISO UTC with the raw value the store is sent, an id as is."""
    if not conditions:
        return "none (every order)"
    return " and ".join(_condition(c) for c in conditions)


def _condition(condition: Mapping[str, Any]) -> str:
    field, operator = str(condition["field"]), str(condition["operator"])
    value = condition.get("value")
    shown = OPERATORS.get(operator, operator)
    if field in TIME_FIELDS and isinstance(value, int):
        return f"{field} {shown} {iso(value)} ({value})"
    return f"{field} {shown} {value}"


def _query_rows(preview: Mapping[str, Any]) -> dict[str, str]:
    columns = preview.get("columns") or []
    return {
        "columns": ", ".join(str(c) for c in columns) if columns else "none",
        "page size": str(preview["page_size"]),
        "total_count": str(preview["total_count"]),
    }

"""Singer messages on stdout or in a file, for Meltano and any Singer target.

``miva-sync pull --format singer | target-…``: a ``SCHEMA`` message for the
``orders`` stream (key property ``id``), one ``RECORD`` per order carrying the
order exactly as the store returned it, and a ``STATE`` message with the
cursor after each committed page, so a target that persists state does so
only after the records that state covers.

The bytes go through the JSON Lines sinks unchanged (each message is one
line), so the same durability rules hold: a page counts as written only once
a pipe's reader has taken it, or once a file is fsynced.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Mapping
from typing import Any

from miva_sync.base.timespec import iso
from miva_sync.sinks.base import Sink, WithoutCursor
from miva_sync.state.record import StateRecord
from miva_sync.store.orders import CURSOR_FIELDS

STREAM = "orders"
# Only these parts of the checkpoint reach STATE: the dedupe window and held
# orders are internal (and can be large), and a whitelist keeps anything added
# to the record later out of a stream that other programs store.
STATE_FIELDS = ("mode", "cursors", "updated_at")


# Top-level order fields by type (docs/miva-api.md §5).
_INTEGERS = (
    "pay_id", "batch_id", "status", "pay_status", "stk_status", "cust_id", "ship_id",
    "source_id", "pend_count", "bord_count", "note_count", "orderdate",
)  # fmt: skip
_TIMESTAMPS = ("dt_instock", "dt_updated")  # unix seconds, or a JSON_DateTime object
_AMOUNTS = (
    "total", "total_ship", "total_tax", "total_auth", "total_capt", "total_rfnd",
    "net_capt",
)  # fmt: skip
_ADDRESS = (
    "fname", "lname", "email", "comp", "phone", "fax", "addr1", "addr2", "city",
    "state", "zip", "cntry",
)  # fmt: skip
_TEXTS = (
    *(f"{side}_{part}" for side in ("ship", "bill") for part in _ADDRESS),
    *(f"formatted_{name}" for name in _AMOUNTS),
    "ship_data", "ship_method", "cust_login", "cust_pw_email", "business_title",
    "payment_module", "source",
)  # fmt: skip
_ARRAYS = (
    "items", "charges", "coupons", "discounts", "payments", "notes", "parts",
    "shipments", "returns",
)  # fmt: skip
_OBJECTS = ("customer", "CustomField_Values")


def _nullable(*types: str) -> dict[str, Any]:
    return {"type": [*types, "null"]}


def order_schema() -> dict[str, Any]:
    """A JSON schema that every order object a Miva store returns satisfies.

    Each known field has its documented type and may also be null (a column
    that was not requested, an older store). Timestamps other than
    ``orderdate`` may be JSON_DateTime objects. Unknown fields (custom fields,
    new on-demand columns) are allowed, so no order is ever refused.
    """
    properties: dict[str, Any] = {"id": {"type": ["integer"]}}
    properties.update({name: _nullable("integer") for name in _INTEGERS})
    properties.update({name: _nullable("integer", "object") for name in _TIMESTAMPS})
    properties.update({name: _nullable("number") for name in _AMOUNTS})
    properties.update({name: _nullable("string") for name in _TEXTS})
    properties.update({name: _nullable("array") for name in _ARRAYS})
    properties.update({name: _nullable("object") for name in _OBJECTS})
    properties["ship_res"] = _nullable("boolean")
    return {
        "type": "object",
        "properties": properties,
        "required": ["id"],
        "additionalProperties": True,
    }


def state_value(store_key: str, checkpoint: StateRecord) -> dict[str, Any]:
    """The STATE message's value: Singer's ``bookmarks`` shape, keyed by stream."""
    # read as the JSON it is written as: a whitelist of its keys, and the
    # active mode's cursor whatever its kind
    saved: Mapping[str, Any] = checkpoint
    bookmark: dict[str, Any] = {"store": store_key}
    bookmark.update({k: saved[k] for k in STATE_FIELDS if k in saved})
    # date/updated/number modes page by one field: Singer's "replication key"
    field = CURSOR_FIELDS.get(str(saved.get("mode")))
    cursor = saved.get("cursors", {}).get(saved.get("mode"), {})
    if field is not None and isinstance(cursor, dict):
        bookmark["replication_key"] = field
        bookmark["replication_key_value"] = cursor.get("watermark")
    return {"bookmarks": {STREAM: bookmark}}


class SingerSink(WithoutCursor):
    """Wrap a JSON Lines sink (stdout or a file): messages are lines, so its
    durability rules apply."""

    def __init__(self, lines: Sink) -> None:
        self._lines = lines
        self.description = f"{lines.description} (Singer)"
        self._schema_sent = False

    def write(self, orders: list[dict[str, Any]]) -> None:
        records = [{"type": "RECORD", "stream": STREAM, "record": o} for o in orders]
        self._lines.write(self._preamble() + records)

    def commit(self, store_key: str, checkpoint: StateRecord | None) -> None:
        # STATE after the page's records and before the flush that makes both
        # durable: a target never stores state ahead of the records it covers
        messages = self._preamble()
        if checkpoint is not None:
            value = self._state_value(store_key, checkpoint)
            messages.append({"type": "STATE", "value": value})
        if messages:
            self._lines.write(messages)
        self._lines.commit(store_key, checkpoint)

    def _state_value(self, store_key: str, checkpoint: StateRecord) -> dict[str, Any]:
        return state_value(store_key, checkpoint)

    def _schema(self) -> dict[str, Any]:
        return order_schema()

    def load_checkpoint(self, store_key: str) -> StateRecord | None:
        return None

    def close(self) -> None:
        self._lines.close()

    def _preamble(self) -> list[dict[str, Any]]:
        """The SCHEMA message, once, before anything else in the stream."""
        if self._schema_sent:
            return []
        self._schema_sent = True
        return [
            {
                "type": "SCHEMA",
                "stream": STREAM,
                "schema": self._schema(),
                "key_properties": ["id"],
            }
        ]


# -- the tap (tap-miva): the same stream, with selection and a resumable bookmark --

# record keys that describe this machine's output, not where the stream stands:
# a tap's bookmark travels to another machine (Meltano's state backend)
_LOCAL_KEYS = ("output", "target")


def narrowed_schema(fields: frozenset[str] | None) -> dict[str, Any]:
    """:func:`order_schema` with only ``fields`` (None: all of them)."""
    schema = order_schema()
    if fields is None:
        return schema
    schema["properties"] = {
        k: v for k, v in schema["properties"].items() if k in fields
    }
    # a selection names the fields emitted: nothing else may appear
    schema["additionalProperties"] = False
    return schema


def tap_bookmark(store_key: str, checkpoint: StateRecord) -> dict[str, Any]:
    """A tap's STATE value: :func:`state_value`'s bookmark plus the record a
    run resumes from (cursor, dedupe window, held orders), bounded by the
    engine (the dedupe window keeps only what the next run can read again)."""
    value = state_value(store_key, checkpoint)
    saved: Mapping[str, Any] = checkpoint
    record = {k: v for k, v in saved.items() if k not in _LOCAL_KEYS}
    value["bookmarks"][STREAM]["record"] = record
    return value


class TapSink(SingerSink):
    """The Singer stream of ``tap-miva``: every RECORD with ``time_extracted``,
    only the selected fields (None: all), and STATE carrying the whole
    bookmark (:func:`tap_bookmark`)."""

    def __init__(
        self,
        lines: Sink,
        fields: frozenset[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(lines)
        self.fields = fields
        self._clock = clock
        self.last_state: dict[str, Any] | None = None

    def write(self, orders: list[dict[str, Any]]) -> None:
        now = iso(self._clock())
        fields = self.fields
        records = [
            {
                "type": "RECORD",
                "stream": STREAM,
                "record": o
                if fields is None
                else {k: v for k, v in o.items() if k in fields},
                "time_extracted": now,
            }
            for o in orders
        ]
        self._lines.write(self._preamble() + records)

    def _state_value(self, store_key: str, checkpoint: StateRecord) -> dict[str, Any]:
        value = tap_bookmark(store_key, checkpoint)
        self.last_state = copy.deepcopy(value)  # the engine goes on changing it
        return value

    def _schema(self) -> dict[str, Any]:
        return narrowed_schema(self.fields)

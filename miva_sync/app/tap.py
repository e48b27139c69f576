"""``tap-miva``: miva-sync as a Singer tap, for Meltano and any Singer runner.

The same pull engine as ``miva-sync pull --format singer`` (sync/pull.py),
driven the way a Singer runner drives an extractor: settings from
``--config`` files (or ``TAP_MIVA_*`` variables), the stream and fields to
emit from ``--catalog``, and where to resume from ``--state``.

The tap keeps no state of its own. Its STATE bookmark carries the record a
run resumes from (the mode's cursor, the dedupe window and held orders, both
bounded by the engine), and each run starts from the bookmark it is handed:
the record is put into a state file in a throwaway folder for the engine,
which moves it only after the records it covers are on stdout and flushed
(each commit writes one STATE message).

Queue mode acknowledges on the next run: a tap cannot know when its target
has stored the records, only that the runner hands back the STATE covering
them. So the bookmark carries the ack journal (ids written, not yet
acknowledged); a run given it acknowledges those first (re-reading them after
the acknowledgement, as ``pull --queue`` does), then reads the queue. Without
acknowledgement (``--no-ack``) is not offered: a download that moves orders
out of the queue could be lost with the pipe.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import tzinfo
from pathlib import Path
from typing import Any

from miva_sync import __version__, console
from miva_sync.app.requests import GlobalOptions
from miva_sync.app.session import base_query, reporter, sigterm_as_interrupt
from miva_sync.base.timespec import parse_span, parse_when, zone_named
from miva_sync.config import DIGESTS, MAX_PAGE_SIZE, load_settings, resolve_ref
from miva_sync.errors import ConfigError, ExitStatus, MivaSyncError
from miva_sync.sinks.singer import STREAM, order_schema, tap_bookmark
from miva_sync.state.file import validate_record
from miva_sync.state.record import StateRecord
from miva_sync.store.orders import CURSOR_FIELDS
from miva_sync.sync.held import DEFAULT_HOLD_FOR
from miva_sync.sync.plan import (
    FUTURE_TOLERANCE,
    Plan,
    PullOptions,
    make_plan,
    refuse_future_since,
    validate_overlap,
)
from miva_sync.sync.queue_state import QueueOptions, QueuePlan, make_queue_plan

NAME = "tap-miva"
DESCRIPTION = (
    "Orders from a Miva Merchant store (miva-sync's pull engine: no order lost, "
    "no silent duplicates, state never ahead of the data)"
)
CAPABILITIES = ("catalog", "discover", "state", "about")
ENV_PREFIX = "TAP_MIVA_"
MODES = ("date", "updated", "number", "queue")


@dataclass(frozen=True)
class Setting:
    name: str
    kind: str  # Meltano's kind: string, password, integer, boolean, options, ...
    description: str
    sensitive: bool = False
    options: tuple[str, ...] = ()

    @property
    def json_type(self) -> str:
        return {"integer": "integer", "boolean": "boolean", "number": "number"}.get(
            self.kind, "string"
        )


SETTINGS = (
    Setting("url", "string", "the store's JSON API URL (…/mm5/json.mvc)"),
    Setting("store_code", "string", "the store code"),
    Setting("api_token", "password", "API access token (or env:NAME)", True),
    Setting(
        "signing_key", "password", "the token's signing key, base64 (or env:NAME)", True
    ),
    Setting("digest", "options", "signature digest", options=DIGESTS),
    Setting(
        "mode",
        "options",
        "date (orderdate), updated (dt_updated), number (order id) or queue; default date",
        options=MODES,
    ),
    Setting(
        "start_date",
        "date_iso8601",
        "where date and updated modes begin without a bookmark: ISO date or "
        "datetime, or unix seconds",
    ),
    Setting("start_order", "integer", "where number mode begins without a bookmark"),
    Setting(
        "queue_code", "string", "queue mode: the queue (acknowledged on the next run)"
    ),
    Setting("lookback", "string", "seconds (or a span, 15m) each run re-reads"),
    Setting("overlap", "string", "number mode: ids (30) or a span (45m) re-read"),
    Setting("page_size", "integer", f"orders per request (1..{MAX_PAGE_SIZE})"),
    Setting("columns", "string", "on-demand columns, comma-separated"),
    Setting("require_payment", "boolean", "hold unpaid orders back until paid"),
    Setting("hold_for", "string", "how long an unpaid order is held (seconds, 7d)"),
    Setting("timezone", "string", "the store's IANA time zone (for bare dates)"),
    Setting("timeout", "number", "seconds a request may take"),
    Setting("retry_budget", "number", "seconds of retries a run may spend"),
)
BY_NAME = {s.name: s for s in SETTINGS}


# -- --about --------------------------------------------------------------------------


def about() -> dict[str, Any]:
    """``--about``: name, version, capabilities and the settings (secrets marked)."""
    settings = []
    for s in SETTINGS:
        entry: dict[str, Any] = {
            "name": s.name,
            "kind": s.kind,
            "type": s.json_type,
            "description": s.description,
            "sensitive": s.sensitive,
        }
        if s.options:
            entry["options"] = list(s.options)
        settings.append(entry)
    return {
        "name": NAME,
        "description": DESCRIPTION,
        "version": __version__,
        "capabilities": list(CAPABILITIES),
        "settings": settings,
        "settings_schema": settings_schema(),
    }


def settings_schema() -> dict[str, Any]:
    """The settings as a JSON Schema (singer-sdk's ``--about`` shape)."""
    properties: dict[str, Any] = {}
    for s in SETTINGS:
        prop: dict[str, Any] = {"type": [s.json_type], "description": s.description}
        if s.options:
            prop["enum"] = list(s.options)
        if s.sensitive:
            prop.update(secret=True, writeOnly=True)
        properties[s.name] = prop
    return {
        "type": "object",
        "properties": properties,
        "required": ["url", "store_code", "api_token"],
    }


def about_markdown() -> str:
    info = about()
    lines = [
        f"# {NAME}",
        "",
        DESCRIPTION,
        "",
        f"Version: {__version__}",
        "",
        "## Capabilities",
        "",
        *(f"* `{c}`" for c in CAPABILITIES),
        "",
        "## Settings",
        "",
        "| Setting | Kind | Sensitive | Description |",
        "|:--|:--|:--|:--|",
    ]
    for s in info["settings"]:
        lines.append(
            f"| {s['name']} | {s['kind']} | {str(s['sensitive']).lower()} | "
            f"{s['description']} |"
        )
    lines += [
        "",
        f"Every setting may also come from the environment as {ENV_PREFIX}<NAME> "
        "(`--config ENV`).",
    ]
    return "\n".join(lines) + "\n"


# -- configuration ----------------------------------------------------------------------


@dataclass(frozen=True)
class TapConfig:
    values: Mapping[str, Any]

    @property
    def mode(self) -> str:
        return str(self.values.get("mode", "date"))

    def get(self, name: str) -> Any:
        return self.values.get(name)


def load_config(
    sources: Iterable[str], env: Mapping[str, str] | None = None
) -> TapConfig:
    """The settings of ``--config`` files (``ENV``: the TAP_MIVA_* variables),
    later ones winning; a bad one is a ConfigError (exit 3)."""
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    for source in sources:
        if source == "ENV":
            for s in SETTINGS:
                text = env.get(ENV_PREFIX + s.name.upper())
                if text not in (None, ""):
                    values[s.name] = text
            continue
        document = read_json(source, "--config")
        if not isinstance(document, dict):
            raise ConfigError(f"--config {source}: not a JSON object")
        values.update({k: v for k, v in document.items() if v is not None})
    return TapConfig(check_values(values, env))


def check_values(values: Mapping[str, Any], env: Mapping[str, str]) -> dict[str, Any]:
    """Each setting typed and checked, secrets' ``env:NAME`` references
    resolved. An unknown key is named in one warning, not refused (a runner
    may pass settings of its own), so a misspelt one is never silent; an
    ``ack`` that turns acknowledgement off is refused."""
    if "ack" in values and values["ack"] in (False, "false", "False", 0, "0"):
        raise ConfigError(
            "ack: the tap always acknowledges, on the run after the one that "
            "delivered (a --no-ack queue moves orders out on download, and the pipe "
            "could lose them); for such a queue use miva-sync pull --queue CODE --no-ack"
        )
    unknown = sorted(name for name in values if name not in BY_NAME and name != "ack")
    if unknown:
        console.warning(
            f"--config: unknown setting(s) {', '.join(unknown)} ignored; "
            f"known: {', '.join(BY_NAME)}"
        )
    checked: dict[str, Any] = {}
    for name, value in values.items():
        setting = BY_NAME.get(name)
        if setting is None:
            continue
        checked[name] = _typed(setting, value)
        if setting.sensitive and str(value).startswith("env:"):
            checked[name] = resolve_ref(str(value), env, key=name, profile=None)
    if checked.get("mode") == "queue" and not checked.get("queue_code"):
        raise ConfigError("queue_code: required in queue mode (the queue to read)")
    if "page_size" in checked and not 1 <= checked["page_size"] <= MAX_PAGE_SIZE:
        raise ConfigError(f"page_size: must be 1..{MAX_PAGE_SIZE}")
    for name in ("lookback", "hold_for"):
        if name in checked:
            checked[name] = _span(name, checked[name])
    if "overlap" in checked:  # checked here, not as a crash deep in the run
        try:
            checked["overlap"] = validate_overlap(checked["overlap"])
        except ValueError as exc:
            raise ConfigError(f"overlap: {exc}") from None
    if "timezone" in checked:
        try:
            zone_named(checked["timezone"])
        except (ValueError, MivaSyncError) as exc:
            raise ConfigError(f"timezone: {exc}") from None
    return checked


def _typed(setting: Setting, value: Any) -> Any:
    name, kind = setting.name, setting.kind
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes"):
            return True
        if text in ("false", "0", "no", ""):
            return False
        raise ConfigError(f"{name}: {value!r} is not true or false")
    if kind == "integer":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        raise ConfigError(f"{name}: {value!r} is not a whole number")
    if kind == "number":
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{name}: {value!r} is not a number") from None
        if isinstance(value, bool) or number <= 0:
            raise ConfigError(f"{name}: must be a positive number")
        return number
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise ConfigError(f"{name}: must be a string")
    text = str(value)
    if setting.options and text not in setting.options:
        raise ConfigError(
            f"{name}: {text!r} is not one of {', '.join(setting.options)}"
        )
    return text


def _span(name: str, text: str) -> int:
    try:
        return int(text) if text.isdigit() else parse_span(text)
    except (ValueError, MivaSyncError):
        raise ConfigError(f"{name}: {text!r} is not seconds or a span (15m)") from None


# -- --discover and --catalog -----------------------------------------------------------


def replication_key(mode: str) -> str | None:
    return CURSOR_FIELDS.get(mode)


def discover(config: TapConfig) -> dict[str, Any]:
    """The catalog: the ``orders`` stream, selected, every field available."""
    schema = order_schema()
    key = replication_key(config.mode)
    top: dict[str, Any] = {
        "inclusion": "available",
        "selected": True,
        "selected-by-default": True,
        "table-key-properties": ["id"],
        "forced-replication-method": "INCREMENTAL",
    }
    if key is not None:
        top["valid-replication-keys"] = [key]
        top["replication-key"] = key
    metadata: list[dict[str, Any]] = [{"breadcrumb": [], "metadata": top}]
    for name in schema["properties"]:
        automatic = name in ("id", key)
        metadata.append(
            {
                "breadcrumb": ["properties", name],
                "metadata": {
                    "inclusion": "automatic" if automatic else "available",
                    "selected-by-default": True,
                },
            }
        )
    entry: dict[str, Any] = {
        "tap_stream_id": STREAM,
        "stream": STREAM,
        "schema": schema,
        "key_properties": ["id"],
        "metadata": metadata,
    }
    if key is not None:
        entry["replication_key"] = key
    entry["replication_method"] = "INCREMENTAL"
    return {"streams": [entry]}


def selection(
    catalog: Mapping[str, Any] | None, mode: str
) -> tuple[bool, frozenset[str] | None]:
    """Whether ``orders`` is selected, and its selected fields (None: all)."""
    if catalog is None:
        return True, None
    streams = catalog.get("streams")
    if not isinstance(streams, list):
        raise ConfigError("--catalog: no 'streams' list")
    entry = next(
        (
            s
            for s in streams
            if isinstance(s, dict)
            and (s.get("tap_stream_id") or s.get("stream")) == STREAM
        ),
        None,
    )
    if entry is None:
        return False, None
    crumbs: dict[tuple[str, ...], Mapping[str, Any]] = {}
    for item in entry.get("metadata") or []:
        if isinstance(item, dict) and isinstance(item.get("metadata"), dict):
            crumbs[tuple(item.get("breadcrumb") or ())] = item["metadata"]
    top = crumbs.get((), {})
    if "selected" in top:
        selected = top["selected"] is True
    elif "selected" in entry:  # the older top-level key
        selected = entry["selected"] is True
    else:
        selected = top.get("selected-by-default") is True
    if not selected:
        return False, None
    names = list(order_schema()["properties"])
    schema = entry.get("schema")
    if isinstance(schema, dict) and isinstance(schema.get("properties"), dict):
        names += [n for n in schema["properties"] if n not in names]
    always = {"id", replication_key(mode)}
    chosen: set[str] = set()
    for name in names:
        meta = crumbs.get(("properties", name), {})
        if name in always or meta.get("inclusion") == "automatic":
            chosen.add(name)
        elif meta.get("inclusion") == "unsupported":
            continue
        elif meta.get("selected", meta.get("selected-by-default", True)) is True:
            chosen.add(name)
    if chosen >= set(names):
        return True, None
    return True, frozenset(chosen)


# -- --state ----------------------------------------------------------------------------


def bookmark_record(
    state: Mapping[str, Any] | None, store_key: str
) -> StateRecord | None:
    """The record a run resumes from, out of Meltano's STATE (None: none yet)."""
    if not state:
        return None
    bookmarks = state.get("bookmarks")
    if bookmarks is None:
        return None
    bookmark = bookmarks.get(STREAM) if isinstance(bookmarks, dict) else None
    if bookmark is None:
        return None
    if not isinstance(bookmark, dict) or "record" not in bookmark:
        raise ConfigError("--state: the orders bookmark is not one tap-miva wrote")
    if bookmark.get("store") not in (None, store_key):
        raise ConfigError(
            f"--state: the bookmark is for store {bookmark.get('store')!r}, the "
            f"config names {store_key!r}; reset the state (meltano state clear) "
            "to start this store from its start"
        )
    try:
        return validate_record(bookmark["record"], where="--state bookmark")
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def read_json(path: str, what: str) -> Any:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8") or "null")
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise ConfigError(f"{what} {path}: not JSON ({exc})") from None


# -- a sync run -------------------------------------------------------------------------


def run_tap(
    config: TapConfig,
    state: Mapping[str, Any] | None,
    catalog: Mapping[str, Any] | None,
    *,
    quiet: bool = False,
) -> None:
    """Emit the selected orders since the bookmark (or the configured start)."""
    from miva_sync.sinks.jsonl import StdoutSink
    from miva_sync.sinks.singer import TapSink
    from miva_sync.state.file import StateStore
    from miva_sync.store.client import MivaClient
    from miva_sync.store.query import DEFAULT_PAGE_SIZE
    from miva_sync.sync.pull import PullRun
    from miva_sync.sync.queue import QueueRun

    mode = config.mode
    selected, fields = selection(catalog, mode)
    console = reporter(GlobalOptions(quiet=quiet), progress=False)
    if not selected:
        console.info("the orders stream is not selected: nothing to emit")
        return
    with tempfile.TemporaryDirectory(prefix="tap-miva-") as home:
        state_path = Path(home) / "state.json"
        flags = {
            name: config.get(name)
            for name in (
                "url", "store_code", "api_token", "signing_key", "digest",
                "timezone", "timeout", "retry_budget",
            )
        }  # fmt: skip
        settings = load_settings(
            flags | {"state_file": str(state_path)}, env={"MIVA_SYNC_HOME": home}
        )
        settings.require_connection()
        key = settings.store_key
        store = StateStore(state_path)
        record = bookmark_record(state, key)
        if record is not None:
            store.put(key, record)
        # the plans copy the record they are given: no need to read it back
        plan: Plan | QueuePlan
        if mode == "queue":
            options = QueueOptions(queue_code=config.get("queue_code"), ack=True)
            plan = make_queue_plan(record, options)
        else:
            window = _pull_options(config, settings.zone)
            refuse_future_since(window.since, time.time(), FUTURE_TOLERANCE)
            plan = make_plan(record, window)
            plan.zone = settings.zone
        if record is None:  # resuming: the notices speak of pull's flags
            for notice in plan.notices:
                console.info(notice)
        require_payment = bool(config.get("require_payment"))
        query = base_query(
            config.get("columns"),
            page_size=config.get("page_size") or DEFAULT_PAGE_SIZE,
            require_payment=require_payment,
        )
        hold_for = config.get("hold_for") or DEFAULT_HOLD_FOR
        sink = TapSink(StdoutSink(), fields)
        try:
            with (
                sigterm_as_interrupt(),
                MivaClient.from_settings(settings) as client,
                console,
            ):
                run: PullRun | QueueRun
                if isinstance(plan, QueuePlan):
                    # acknowledged by the next run, handed this run's STATE
                    run = QueueRun(
                        client, sink, plan, key, store, console, query,
                        require_payment=require_payment, hold_for=hold_for,
                        defer_ack=True,
                    )  # fmt: skip
                else:
                    run = PullRun(
                        client, sink, plan, key, store, console, query,
                        require_payment=require_payment, hold_for=hold_for,
                    )  # fmt: skip
                summary = run.run()
            # the record as the run left it (last_run too): every record it
            # covers is already on stdout
            final = store.get(key)
            if final is not None and tap_bookmark(key, final) != sink.last_state:
                sink.commit(key, final)
        finally:
            sink.close()
    console.summary(summary.finished(ExitStatus.OK))


def _pull_options(config: TapConfig, zone: tzinfo) -> PullOptions:
    mode = config.mode
    lookback = config.get("lookback")
    overlap = config.get("overlap")
    if mode == "number":
        start = config.get("start_order")
        return PullOptions(
            from_order=1 if start is None else start, lookback=lookback, overlap=overlap
        )
    text = config.get("start_date")
    if text is None:
        raise ConfigError(f"start_date: required in {mode} mode (an ISO date)")
    try:
        since = parse_when(str(text), time.time(), zone)
    except (ValueError, MivaSyncError) as exc:
        raise ConfigError(f"start_date: {exc}") from None
    return PullOptions(
        since=since, updated=mode == "updated", lookback=lookback, overlap=overlap
    )

"""tap-miva without a store: --about, --discover's catalog, catalog selection,
the settings it reads (files, ENV) and the bookmark it resumes from."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from miva_sync.app import tap
from miva_sync.errors import ConfigError
from miva_sync.sinks.singer import narrowed_schema, tap_bookmark

RECORD: dict[str, Any] = {
    "mode": "date",
    "cursors": {"date": {"start": 100, "watermark": 200, "lookback": 900}},
    "dedupe": {"1": [150, 150, 150]},
    "held": {},
    "output": {"target": "x.jsonl", "inode": 1, "offset": 2},
    "target": "x.jsonl",
}


def config(**values: Any) -> tap.TapConfig:
    return tap.TapConfig(tap.check_values(values, {}))


def test_about_names_capabilities_and_secret_settings() -> None:
    about = json.loads(json.dumps(tap.about()))
    assert about["name"] == "tap-miva"
    assert set(about["capabilities"]) == {"catalog", "discover", "state", "about"}
    sensitive = {s["name"] for s in about["settings"] if s["sensitive"] is True}
    assert sensitive == {"api_token", "signing_key"}
    names = {s["name"] for s in about["settings"]}
    assert {"url", "store_code", "mode", "start_date", "start_order"} <= names
    # the settings schema is a valid JSON Schema, and a config satisfies it
    schema = about["settings_schema"]
    Draft202012Validator.check_schema(schema)
    Draft202012Validator(schema).validate(
        {"url": "https://x/mm5/json.mvc", "store_code": "S", "api_token": "t"}
    )
    assert schema["properties"]["api_token"]["secret"] is True
    assert "| api_token | password | true |" in tap.about_markdown()


@pytest.mark.parametrize(
    ("mode", "key"),
    [("date", "orderdate"), ("updated", "dt_updated"), ("number", "id")],
)
def test_discover_catalog_shape(mode: str, key: str) -> None:
    catalog = tap.discover(config(mode=mode))
    [stream] = catalog["streams"]
    assert stream["tap_stream_id"] == stream["stream"] == "orders"
    assert stream["key_properties"] == ["id"]
    Draft202012Validator.check_schema(stream["schema"])
    assert "items" in stream["schema"]["properties"]
    crumbs = {tuple(m["breadcrumb"]): m["metadata"] for m in stream["metadata"]}
    top = crumbs[()]
    assert top["selected"] is True
    assert top["table-key-properties"] == ["id"]
    assert top["replication-key"] == key
    assert top["forced-replication-method"] == "INCREMENTAL"
    assert crumbs[("properties", "id")]["inclusion"] == "automatic"
    assert crumbs[("properties", key)]["inclusion"] == "automatic"
    assert crumbs[("properties", "bill_email")]["inclusion"] == "available"
    assert set(stream["schema"]["properties"]) == {c[1] for c in crumbs if len(c) == 2}


def deselect(catalog: dict[str, Any], *breadcrumb: str) -> dict[str, Any]:
    catalog = copy.deepcopy(catalog)
    for item in catalog["streams"][0]["metadata"]:
        if tuple(item["breadcrumb"]) == breadcrumb:
            item["metadata"]["selected"] = False
    return catalog


def test_selection() -> None:
    catalog = tap.discover(config())
    assert tap.selection(None, "date") == (True, None)
    assert tap.selection(catalog, "date") == (True, None)
    assert tap.selection(deselect(catalog), "date") == (False, None)
    assert tap.selection({"streams": []}, "date") == (False, None)
    # the older top-level key
    old = copy.deepcopy(catalog)
    del old["streams"][0]["metadata"][0]["metadata"]["selected"]
    del old["streams"][0]["metadata"][0]["metadata"]["selected-by-default"]
    old["streams"][0]["selected"] = False
    assert tap.selection(old, "date") == (False, None)
    old["streams"][0]["selected"] = True
    assert tap.selection(old, "date") == (True, None)
    # a field deselected: gone; the key and the replication key stay
    narrowed = deselect(catalog, "properties", "bill_email")
    narrowed = deselect(narrowed, "properties", "id")
    narrowed = deselect(narrowed, "properties", "orderdate")
    selected, fields = tap.selection(narrowed, "date")
    assert selected and fields is not None
    assert "bill_email" not in fields and {"id", "orderdate", "items"} <= fields
    schema = narrowed_schema(fields)
    assert "bill_email" not in schema["properties"] and "id" in schema["properties"]


def test_config_files_later_wins_and_env(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    first.write_text(json.dumps({"url": "u1", "store_code": "S", "page_size": 50}))
    second.write_text(json.dumps({"url": "u2", "meltano_extra": 1}))
    loaded = tap.load_config([str(first), str(second)], env={})
    assert loaded.get("url") == "u2" and loaded.get("page_size") == 50
    env = {
        "TAP_MIVA_URL": "u3",
        "TAP_MIVA_MODE": "number",
        "TAP_MIVA_PAGE_SIZE": "20",
        "TAP_MIVA_REQUIRE_PAYMENT": "true",
        "TAP_MIVA_API_TOKEN": "env:SHOP_TOKEN",
        "SHOP_TOKEN": "secret",
    }
    loaded = tap.load_config([str(first), "ENV"], env=env)
    assert loaded.get("url") == "u3" and loaded.mode == "number"
    assert loaded.get("page_size") == 20 and loaded.get("require_payment") is True
    assert loaded.get("api_token") == "secret"


@pytest.mark.parametrize(
    "values",
    [
        {"mode": "weekly"},
        {"mode": "queue"},  # without its queue_code
        {"page_size": 0},
        {"page_size": "many"},
        {"require_payment": "perhaps"},
        {"lookback": "soon"},
        {"overlap": "soon"},  # neither ids nor a span
        {"timezone": "Mars/Base"},
        {"api_token": "env:TAP_MIVA_TEST_UNSET_VARIABLE"},
    ],
)
def test_bad_config_is_a_config_error(values: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        tap.check_values(values, {})


def test_bookmark_round_trip() -> None:
    value = tap_bookmark("shop", RECORD)  # type: ignore[arg-type]
    bookmark = value["bookmarks"]["orders"]
    assert bookmark["replication_key"] == "orderdate"
    assert bookmark["replication_key_value"] == 200
    # what resumes a run travels in it, nothing of this machine's files
    assert "output" not in bookmark["record"] and "target" not in bookmark["record"]
    record = tap.bookmark_record(json.loads(json.dumps(value)), "shop")
    assert record is not None
    assert record["cursors"]["date"]["watermark"] == 200
    assert record["dedupe"] == {"1": [150, 150, 150]}
    assert tap.bookmark_record(None, "shop") is None
    assert tap.bookmark_record({}, "shop") is None
    with pytest.raises(ConfigError, match="store"):
        tap.bookmark_record(value, "another")
    with pytest.raises(ConfigError):
        tap.bookmark_record(
            {"bookmarks": {"orders": {"record": {"mode": "x"}}}}, "shop"
        )

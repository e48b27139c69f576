"""Hostile input (issue 11): unit-level regressions of what the fuzzers found.

The fuzzers live in ``tests/fuzz/`` (``test_hostile_config.py``,
``test_hostile_state.py``, ``test_hostile_server.py``, ``test_hostile_webhook.py``).
Every one of them is deterministic (a fixed seed, printed in each failure
message) and asserts the contract of docs/design.md §7 (checked by
``tests/support/hostile.py``): one clear ``miva-sync: error:`` line on stderr, the
documented exit code, no traceback, no secret, nothing lost.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest

from miva_sync.base import jsonio
from miva_sync.base.timespec import iso
from miva_sync.errors import ApiError, ConfigError
from miva_sync.store.client import LIST_ORDERS, MivaClient, _Answer, _page
from miva_sync.store.orders import cursor_value, order_id, timestamp, version_key
from miva_sync.sync.dedupe import keep_from
from tests.support.fakes import STORE_URL

DEEP = b"[" * 100_000 + b"]" * 100_000


# -- regressions found by the fuzzers (unit level; the CLI-level ones are in the fuzz files)


def test_regression_deeply_nested_json_is_a_parse_error_not_a_recursion_error() -> None:
    # orjson refuses > 1024 levels, the standard-library fallback then hit RecursionError,
    # which escaped every "except ValueError" (exit 1 "internal error")
    for body in (DEEP, b'{"a":' * 50_000 + b"1" + b"}" * 50_000):
        with pytest.raises(ValueError, match="nested too deeply"):
            jsonio.loads(body)


def test_regression_deeply_nested_store_answer_is_transient_not_internal_error(
    make_client: Any,
) -> None:
    from miva_sync.errors import TransientError

    client: MivaClient = make_client(max_attempts=1)
    with pytest.raises(TransientError, match="not a complete JSON object"):
        client._classify(200, {}, b'{"success":1,"data":' + DEEP + b"}", LIST_ORDERS)


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "1e400"])
def test_regression_infinite_total_count_is_api_error_not_overflow(value: str) -> None:
    # int(float("inf")) raises OverflowError, which _page did not catch (exit 1)
    for name in ("total_count", "start_offset"):
        answer = jsonio.loads(
            f'{{"success":1,"data":{{"{name}":{value},"data":[]}}}}'.encode()
        )
        with pytest.raises(ApiError, match="malformed total_count"):
            _page(_Answer(200, answer), LIST_ORDERS)


@pytest.mark.parametrize("fields", [5, 1.5, True, "abc", {"a": 1}, [None, 3, "x"]])
def test_regression_malformed_error_fields_are_still_an_api_error(
    make_client: Any, fields: Any
) -> None:
    # "error_fields": 5 made _api_error iterate an int: TypeError, exit 1
    client: MivaClient = make_client(max_attempts=1)
    body = json.dumps(
        {"success": 0, "error_code": "bad", "error_fields": fields}
    ).encode()
    with pytest.raises(ApiError, match="the store refused the request: bad"):
        client._classify(200, {}, body, LIST_ORDERS)


def test_regression_store_error_text_stays_on_one_short_line(make_client: Any) -> None:
    # the store's error_message went to stderr as is: newlines made several lines
    client: MivaClient = make_client(max_attempts=1)
    body = json.dumps(
        {
            "success": 0,
            "error_code": "x\ny",
            "error_message": "first\nsecond\r\n" + "z" * 100_000,
            "error_fields": [{"error_field": "a\nb", "error_message": "c\nd"}],
        }
    ).encode()
    with pytest.raises(ApiError) as caught:
        client._classify(200, {}, body, LIST_ORDERS)
    text = str(caught.value)
    assert "\n" not in text and "\r" not in text
    assert len(text) < 1000


@pytest.mark.parametrize(
    "value",
    [math.nan, math.inf, -math.inf, 1e300, 2**70, -(2**70), "1" * 30, "1" * 5000,
     "²", {"time_t": math.nan}, {"time_t": 2**64}],
)  # fmt: skip
def test_regression_unusable_order_times_are_none_not_a_crash(value: Any) -> None:
    # NaN -> ValueError, Infinity -> OverflowError, 2**70 -> OverflowError in iso()
    # and in SQLite, "²".isdigit() -> int() ValueError, 5000 digits -> int() ValueError
    assert timestamp(value) is None
    order = {"id": 7, "orderdate": value, "dt_updated": value}
    assert cursor_value(order, "orderdate") is None
    assert isinstance(version_key(order), str)  # falls back to the content hash


def test_order_times_that_are_fine_still_read() -> None:
    assert timestamp(1_700_000_000) == 1_700_000_000
    assert timestamp(1_700_000_000.7) == 1_700_000_000
    assert timestamp("1700000000") == 1_700_000_000
    assert timestamp({"time_t": 1_700_000_000}) == 1_700_000_000
    assert timestamp(-5) == -5


@pytest.mark.parametrize("value", [2**63, 2**70, -1, True, 1.0, "5", None])
def test_regression_order_ids_beyond_64_bits_are_refused(value: Any) -> None:
    # an id of 2**70 passed the check and crashed the SQLite sink with OverflowError
    with pytest.raises(ApiError, match="id is not a number"):
        order_id({"id": value})
    assert cursor_value({"id": value}, "id") is None


def test_order_ids_up_to_64_bits_are_fine() -> None:
    assert order_id({"id": 2**63 - 1}) == 2**63 - 1
    assert cursor_value({"id": 1042}, "id") == 1042


@pytest.mark.parametrize("value", [2**70, -(2**70), 10**17, math.nan, math.inf])
def test_regression_iso_of_an_impossible_time_does_not_raise(value: float) -> None:
    # state show and the pull's summary crashed (OverflowError/ValueError) on such cursors
    assert "not a valid time" in iso(value)


def test_regression_dedupe_prune_tolerates_non_integer_times() -> None:
    # a hand-edited entry ["x" as orderdate] made every pull's prune raise TypeError
    keep = keep_from("orderdate", 100)
    assert keep(1, [1, "x", None]) and keep(1, [1, None, None])
    assert keep(1, [1, 100, 5]) and not keep(1, [1, 99, 5])


def test_regression_nul_in_a_profile_path_is_a_config_error(tmp_path: Any) -> None:
    # state_file = "a\u0000" reached os.open: ValueError "embedded null byte", exit 1
    from miva_sync.config import load_settings

    (tmp_path / "config.toml").write_text(
        f'default_profile = "s"\n[profiles.s]\nurl = "{STORE_URL}"\n'
        'store_code = "PS"\nstate_file = "a\\u0000"\n'
    )
    with pytest.raises(ConfigError, match="NUL"):
        load_settings({}, env={"MIVA_SYNC_HOME": str(tmp_path)})


@pytest.mark.parametrize("target", ["jsonl", "sqlite"])
def test_regression_lone_surrogate_in_an_order_is_written_not_a_crash(
    run: Any, api: Any, store_env: dict[str, str], tmp_path: Any, target: str
) -> None:
    """Found in review: a store sending "\\ud800" (valid JSON, no character)
    ended the pull with exit 1 (internal error): UTF-8 cannot hold it. The line
    keeps it as the escape it came as; a database column gets U+FFFD."""
    import sqlite3

    order = {"id": 5, "orderdate": 1_700_000_000, "dt_updated": 1_700_000_000,
             "bill_fname": "A\ud800B", "ship_city": "Köln 😀"}  # fmt: skip
    body = json.dumps({"success": 1, "data": {"total_count": 1, "start_offset": 0,
                                              "data": [order]}})  # fmt: skip
    api.post(STORE_URL, body=body, content_type="application/json")
    out = tmp_path / "o.jsonl" if target == "jsonl" else tmp_path / "o.db"
    where = str(out) if target == "jsonl" else f"sqlite:///{out}"
    result = run(["pull", "--since", "1700000000", "-o", where])
    assert result.exit_code == 0, result.stderr
    if target == "jsonl":
        line = out.read_bytes()
        assert b'"bill_fname":"A\\ud800B"' in line
        assert json.loads(line) == order  # the same value as the store sent
    else:
        with sqlite3.connect(out) as conn:
            name, city, text = conn.execute(
                "SELECT bill_fname, ship_city, order_json FROM orders"
            ).fetchone()
        assert (name, city) == ("A\ufffdB", "Köln 😀")
        assert json.loads(text) == order


def test_jsonio_writes_lone_surrogates_back_as_escapes() -> None:
    value = {"a": "x\udc00", "b": "é😀"}
    for dumps in (jsonio.dumps, jsonio.dumps_document):
        data = dumps(value)
        assert data.isascii() and b"\\udc00" in data
        assert json.loads(data) == value
    assert jsonio.dumps({"b": "é😀"}) == '{"b":"é😀"}'.encode()  # UTF-8 otherwise

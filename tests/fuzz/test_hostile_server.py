"""Fuzz the store's answers: every field of OrderList/QueueOrderList/Acknowledge, mutated.

Two layers:

* in-process (``responses``): one page whose fields are replaced by every
  hostile type; ``pull --since 1d -o FILE`` ends 0/5/6 with one clean line,
  and a failed page writes nothing and moves no watermark;
* end to end (a tiny mutating proxy on 127.0.0.1 in front of the sandbox):
  one page of a multi-page pull (or of a queue run, or an acknowledgement) is
  mutated; a bare resume through the healed proxy then holds every order of
  the window: nothing lost.
"""

from __future__ import annotations

import http.server
import json
import os
import random
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import responses

from miva_sync.sandbox import Sandbox
from tests.support.fakes import KEY, STORE_URL, TOKEN
from tests.support.helpers import read_jsonl, saved_record, send_json, set_at
from tests.support.hostile import assert_clean_failure, assert_clean_success

SEED = 3333
NOW = int(time.time())
HOSTILE: list[Any] = [None, "x", "", -1, 2**70, -(2**70), 1.5, "NaN", "Infinity", [], {},
                      True, False, [1], {"a": 1}, "1" * 30, {"time_t": "x"},
                      {"time_t": 2**70}, {"time_t": None}, "DELETE"]  # fmt: skip
FIELDS: list[tuple[Any, ...]] = [
    ("success",), ("data",), ("data", "data"), ("data", "total_count"),
    ("data", "start_offset"), ("data", "data", 0), ("data", "data", 0, "id"),
    ("data", "data", 0, "orderdate"), ("data", "data", 0, "dt_updated"),
    ("data", "data", 0, "items"), ("data", "data", 0, "payments"),
    ("data", "data", 0, "customer"), ("data", "data", 0, "pay_status"),
]  # fmt: skip


def order(i: int) -> dict[str, Any]:
    return {"id": 1000 + i, "orderdate": NOW - 3600 + i, "dt_updated": NOW - 3000 + i,
            "pay_status": 1, "items": [{"code": "A", "price": 1.5}],
            "payments": [{"id": 1}], "customer": {"login": "x"}, "total": 3.0}  # fmt: skip


def good_answer() -> dict[str, Any]:
    orders = [order(i) for i in range(3)]
    return {"success": 1, "data": {"total_count": 3, "start_offset": 0, "data": orders}}


def mutated(answer: Any, path: tuple[Any, ...], value: Any) -> bytes:
    set_at(answer, path, value)
    text = json.dumps(answer)
    # NaN/Infinity as JSON tokens, as a broken store would send them
    return text.replace('"NaN"', "NaN").replace('"Infinity"', "Infinity").encode()


RAW_BODIES: list[tuple[str, bytes, int, str]] = [
    ("non-UTF-8", b'{"success":1,"data":{"total_count":1,"data":[{"id":1,"x":"\xff\xfe"}]}}',
     200, "application/json"),
    ("array", b"[1,2]", 200, "application/json"),
    ("null", b"null", 200, "application/json"),
    ("empty", b"", 200, "application/json"),
    ("10 MB of spaces", b" " * (10 * 1024 * 1024), 200, "application/json"),
    ("html on 200", b"<html><body>maintenance</body></html>", 200, "text/html"),
    ("deep", b'{"success":1,"data":' + b"[" * 100_000 + b"]" * 100_000 + b"}", 200,
     "application/json"),
    ("deep order", b'{"success":1,"data":{"total_count":1,"data":[{"id":1,"x":'
     + b"[" * 5000 + b"]" * 5000 + b"}]}}", 200, "application/json"),
    ("5000-digit number", b'{"success":1,"data":{"total_count":1' + b"0" * 5000 + b"}}",
     200, "application/json"),
    ("cut off", json.dumps(good_answer()).encode()[:-7], 200, "application/json"),
    ("error_fields int", json.dumps({"success": 0, "error_code": "x",
     "error_fields": 5}).encode(), 200, "application/json"),
    ("error_fields junk", json.dumps({"success": 0, "error_code": {"a": [1]},
     "error_message": ["m\nn"], "error_fields": [{"error_field": {"x": 1}}, 5, None]}
     ).encode(), 200, "application/json"),
    ("error echoes secrets", json.dumps({"success": 0, "error_code": "x",
     "error_message": f"bad {TOKEN} {KEY}"}).encode(), 200, "application/json"),
    ("400 echoes secrets", json.dumps({"success": 0, "error_message": f"{TOKEN}"}
     ).encode(), 400, "application/json"),
    ("500 echoes secrets", f"<html>{TOKEN} {KEY}</html>".encode(), 500, "text/html"),
]  # fmt: skip


def pull_once(
    run: Any,
    home: Path,
    body: bytes,
    status: int = 200,
    ctype: str = "application/json",
) -> tuple[Any, list[dict[str, Any]], dict[str, Any] | None]:
    """One ``pull --since 1d -o FILE`` against a store answering ``body``; fresh state."""
    out, state = home / "o.jsonl", home / "state.json"
    for path in (out, state):
        path.unlink(missing_ok=True)
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.add(responses.POST, STORE_URL, body=body, status=status, content_type=ctype)
        result = run(["pull", "--since", "1d", "-o", str(out)])
    saved = json.loads(state.read_text()) if state.exists() else None
    record = next(iter(saved["stores"].values())) if saved else None
    return result, read_jsonl(out), record


def check_outcome(
    result: Any, written: list[dict[str, Any]], record: Any, case: str
) -> None:
    if result.exit_code == 0:
        assert_clean_success(result, case)
        return
    assert_clean_failure(result, (4, 5, 6), case)
    assert written == [], f"{case}: a refused page was written"
    if record is not None:
        assert record["cursors"]["date"]["watermark"] is None, (
            f"{case}: watermark moved"
        )


def test_hostile_server_every_field_every_type(
    run: Any, store_env: dict[str, str], isolated_home: Path
) -> None:
    outcomes: dict[int, int] = {}
    for path in FIELDS:
        for value in HOSTILE:
            try:
                body = mutated(good_answer(), path, value)
            except (KeyError, IndexError, TypeError):
                continue
            case = f"{'.'.join(map(str, path))} = {value!r}"
            result, written, record = pull_once(run, isolated_home, body)
            outcomes[result.exit_code] = outcomes.get(result.exit_code, 0) + 1
            check_outcome(result, written, record, case)
            if result.exit_code == 0:
                ids = {o["id"] for o in written}
                assert ids <= {1000, 1001, 1002}, case
                assert len(written) == len(ids), f"{case}: duplicates"
    # the matrix exercises refusals (5), transient answers (6) and usable ones (0)
    assert (
        outcomes.get(0, 0) > 40 and outcomes.get(5, 0) > 40 and outcomes.get(6, 0) >= 1
    )


@pytest.mark.parametrize(
    ("name", "body", "status", "ctype"), RAW_BODIES, ids=[c[0] for c in RAW_BODIES]
)
def test_hostile_server_raw_bodies(
    run: Any, store_env: dict[str, str], isolated_home: Path,
    name: str, body: bytes, status: int, ctype: str,
) -> None:  # fmt: skip
    result, written, record = pull_once(run, isolated_home, body, status, ctype)
    assert result.exit_code != 0, f"{name}: accepted"
    check_outcome(result, written, record, name)


def test_hostile_server_random_mutations(
    run: Any, store_env: dict[str, str], isolated_home: Path
) -> None:
    rng = random.Random(SEED)
    for i in range(60):
        answer: Any = good_answer()
        picks = []
        for _ in range(rng.randint(1, 3)):
            path = rng.choice(FIELDS[6:])  # order fields: the page stays a page
            path = (*path[:2], rng.randrange(3), *path[3:])
            value = rng.choice(HOSTILE)
            picks.append((path, value))
            answer = json.loads(mutated(answer, path, value).replace(b"NaN", b'"NaN"')
                                .replace(b"Infinity", b'"Infinity"'))  # fmt: skip
        body = json.dumps(answer).replace('"NaN"', "NaN").encode()
        case = f"seed {SEED} #{i}: {picks}"
        result, written, record = pull_once(run, isolated_home, body)
        check_outcome(result, written, record, case)


@pytest.mark.parametrize(
    "value", [math_value for math_value in ("NaN", "Infinity", "1e400", str(2**70))]
)
def test_regression_unusable_orderdate_is_not_internal_error(
    run: Any, store_env: dict[str, str], isolated_home: Path, value: str
) -> None:
    # int(NaN)/int(inf) raised in timestamp(), iso(2**70) in the future-date warning:
    # exit 1. A row without a usable cursor value now stops the walk (the pager
    # cannot go on from it): exit 5 naming the field, nothing of the page written.
    body = json.dumps(good_answer()).replace(str(NOW - 3600), value).encode()
    result, written, record = pull_once(run, isolated_home, body)
    assert_clean_failure(result, 5, value)
    assert "without a usable orderdate" in result.stderr
    assert written == []
    cursor = (record or {}).get("cursors", {}).get("date") or {}
    assert cursor.get("watermark") is None


def test_regression_huge_order_id_into_sqlite_is_exit_5_not_overflow(
    run: Any, store_env: dict[str, str], isolated_home: Path
) -> None:
    # an id of 2**70 passed order_id() and crashed the SQLite sink (OverflowError, exit 1)
    answer = good_answer()
    answer["data"]["data"][0]["id"] = 2**70
    with responses.RequestsMock(assert_all_requests_are_fired=False) as api:
        api.add(responses.POST, STORE_URL, body=json.dumps(answer).encode())
        target = f"sqlite:///{isolated_home / 'o.db'}"
        result = run(["pull", "--since", "1d", "-o", target])
    assert_clean_failure(result, 5, "id 2**70 into sqlite")
    assert "id is not a number" in result.stderr


# -- end to end: a mutating proxy in front of the sandbox ------------------------------

Mutation = Callable[[dict[str, Any]], Any]


class Proxy:
    """Forwards to the sandbox; the answer to request number ``at`` of ``function`` is mutated."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.at: int | None = None
        self.function = "OrderList_Load_Query"
        self.mutation: Mutation | None = None
        self.seen = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = urllib.request.Request(  # noqa: S310 - http to the sandbox
                    proxy.upstream,
                    data=body,
                    headers={
                        k: v for k, v in self.headers.items() if k.lower() != "host"
                    },
                )
                # straight to the sandbox: never through a proxy from the environment
                direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
                with direct.open(request, timeout=10) as answer:
                    status, data = answer.status, answer.read()
                sent = json.loads(body)
                name = sent.get("Module_Function") or sent.get("Function")
                if name == proxy.function:
                    proxy.seen += 1
                    if proxy.seen == proxy.at and proxy.mutation is not None:
                        data = proxy.mutation(json.loads(data))
                        if not isinstance(data, bytes):
                            data = json.dumps(data).encode()
                send_json(self, data, status)

            def log_message(self, *args: Any) -> None:
                return

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/mm5/json.mvc"

    def arm(self, function: str, at: int | None, mutation: Mutation | None) -> None:
        self.function, self.at, self.mutation, self.seen = function, at, mutation, 0


@pytest.fixture
def proxied(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Sandbox, Proxy]]:
    with Sandbox(orders=60, seed=5) as sandbox:
        proxy = Proxy(sandbox.url)
        for name, value in sandbox.env().items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv("MIVA_URL", proxy.url)
        monkeypatch.setenv("MIVA_SYNC_RETRY_BUDGET", "0")
        try:
            yield sandbox, proxy
        finally:
            proxy.server.shutdown()
            proxy.server.server_close()


def _set(path: tuple[Any, ...], value: Any) -> Mutation:
    def apply(answer: dict[str, Any]) -> Any:
        target: Any = answer
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value
        return answer

    return apply


PAGE_MUTATIONS: list[tuple[str, Mutation]] = [
    ("success null", _set(("success",), None)),
    ("success 0", _set(("success",), 0)),
    ("data a list", _set(("data",), [])),
    ("rows a dict", _set(("data", "data"), {})),
    ("total_count str", _set(("data", "total_count"), "many")),
    ("id a string", _set(("data", "data", 0, "id"), "x")),
    ("id negative", _set(("data", "data", 0, "id"), -5)),
    ("id huge", _set(("data", "data", 0, "id"), 2**70)),
    ("row null", _set(("data", "data", 1), None)),
    ("html", lambda answer: b"<html>proxy error</html>"),
    ("cut off", lambda answer: json.dumps(answer).encode()[:-3]),
    ("deep", lambda answer: b"[" * 50_000 + b"]" * 50_000),
]


def test_hostile_server_end_to_end_bad_page_then_resume_loses_nothing(
    run: Any, proxied: tuple[Sandbox, Proxy], tmp_path: Path
) -> None:
    sandbox, proxy = proxied
    rng = random.Random(SEED)
    home = Path(os.environ["MIVA_SYNC_HOME"])
    for i, (name, mutation) in enumerate(PAGE_MUTATIONS):
        out = tmp_path / f"out-{i}.jsonl"
        (home / "state.json").unlink(missing_ok=True)
        at = rng.randint(1, 6)
        case = f"seed {SEED} #{i}: {name} on page {at}"
        proxy.arm("OrderList_Load_Query", at, mutation)
        first = run(["pull", "--since", "3650d", "-o", str(out), "--page-size", "7"])
        assert proxy.seen >= at, f"{case}: only {proxy.seen} pages"
        assert_clean_failure(first, (5, 6), case)
        record = saved_record(home)
        start = record["cursors"]["date"]["start"]
        expected = {
            o["id"] for o in sandbox.store.orders_snapshot() if o["orderdate"] >= start
        }
        written = {o["id"] for o in read_jsonl(out)}
        watermark = record["cursors"]["date"]["watermark"]
        if watermark is not None:  # never past an order that was not written
            unwritten = [o["orderdate"] for o in sandbox.store.orders_snapshot()
                         if o["id"] in expected - written]  # fmt: skip
            assert all(d >= watermark for d in unwritten), f"{case}: ran ahead"
        proxy.arm("OrderList_Load_Query", None, None)
        resumed = run(["pull", "-o", str(out), "--page-size", "7"])
        assert_clean_success(resumed, case)
        got = [o["id"] for o in read_jsonl(out)]
        assert expected <= set(got), f"{case}: lost {sorted(expected - set(got))}"
        assert len(got) == len(set(got)), (
            f"{case}: duplicates {len(got) - len(set(got))}"
        )


@pytest.mark.parametrize(
    ("function", "name", "mutation"),
    [("QueueOrderList_Load_Query", "queue page id str", _set(("data", "data", 0, "id"), "x")),
     ("QueueOrderList_Load_Query", "queue page data null", _set(("data",), None)),
     ("QueueOrderList_Load_Query", "queue page html", lambda a: b"<html>x</html>"),
     ("OrderList_Acknowledge", "processed missing", lambda a: {"success": 1}),
     ("OrderList_Acknowledge", "processed null", _set(("processed",), None)),
     ("OrderList_Acknowledge", "processed 0", _set(("processed",), 0)),
     ("OrderList_Acknowledge", 'processed "0"', _set(("processed",), "0")),
     ("OrderList_Acknowledge", "ack success missing", lambda a: {"processed": 1}),
     ("OrderList_Acknowledge", "ack html", lambda a: b"<html>x</html>")],
)  # fmt: skip
def test_hostile_server_queue_and_ack_answers_lose_nothing(
    run: Any, proxied: tuple[Sandbox, Proxy], tmp_path: Path,
    function: str, name: str, mutation: Mutation,
) -> None:  # fmt: skip
    sandbox, proxy = proxied
    queue = "new_updated_orders"
    expected = set(sandbox.store.queue_ids(queue))
    out = tmp_path / "queue.jsonl"
    proxy.arm(function, 1, mutation)
    first = run(["pull", "--queue", queue, "-o", str(out), "--page-size", "7"])
    assert proxy.seen >= 1, f"{name}: never mutated"
    if function == "OrderList_Acknowledge" and first.exit_code == 0:
        # processed: 0 is re-checked against the queue (the ack may have landed)
        assert_clean_success(first, name)
    else:
        assert_clean_failure(first, (5, 6), name)
    proxy.arm(function, None, None)
    again = run(["pull", "-o", str(out), "--page-size", "7"])
    assert_clean_success(again, name)
    got = {o["id"] for o in read_jsonl(out)}
    assert expected <= got, f"{name}: lost {sorted(expected - got)}"
    assert sandbox.store.queue_ids(queue) == [], f"{name}: left in the queue"


def test_regression_meaningless_success_flag_is_refused_not_retried_forever(
    api: Any, make_client: Any
) -> None:
    """A store that always answers ``"success": "yes"`` would make cron retry forever."""
    from miva_sync.errors import ApiError
    from miva_sync.store.query import ListQuery
    from tests.support.fakes import STORE_URL

    for flag in ("yes", None, 2):
        api.post(STORE_URL, json={"success": flag, "data": {}})
        with pytest.raises(ApiError, match="success flag") as info:
            make_client(max_attempts=3).list_orders(ListQuery())
        assert info.value.exit_code == 5

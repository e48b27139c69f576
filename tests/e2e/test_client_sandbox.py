"""MivaClient <-> sandbox round trips over real HTTP: auth, operators, paging, queues, faults."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from fnmatch import fnmatchcase
from typing import Any

import pytest

from miva_sync.errors import AckError, ApiError, AuthError, TransientError
from miva_sync.sandbox import DEFAULT_QUEUE, FAULT_KINDS, Sandbox
from miva_sync.store.client import MivaClient
from miva_sync.store.query import Condition, ListQuery, sub_and, sub_or
from tests.support.helpers import send_json


@pytest.fixture(scope="module")
def sandbox() -> Iterator[Sandbox]:
    with Sandbox(orders=300, seed=17, tie_order="random") as sb:
        yield sb


def client_for(sb: Sandbox, **options: Any) -> MivaClient:
    settings: dict[str, Any] = {"signing_key": sb.signing_key, "sleep": lambda s: None}
    settings.update(options)
    return MivaClient(sb.url, sb.store_code, sb.api_token, **settings)


def all_ids(client: MivaClient, query: ListQuery) -> list[int]:
    """Every id matching the query, paged by Count/Offset."""
    ids: list[int] = []
    offset = 0
    while True:
        page = client.list_orders(query.page(query.count, offset))
        ids += [o["id"] for o in page.orders]
        offset += len(page.orders)
        if not page.orders or offset >= page.total_count:
            return ids


# -- authentication -----------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "cause"),
    [
        ({"api_token": "0" * 32}, "MIVA_API_TOKEN"),
        ({"signing_key": "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"}, "signing key"),
        ({"signing_key": None}, "signature"),
        ({"clock": lambda: 1_000_000_000.0}, "clock"),
    ],
    ids=[
        "unknown token",
        "wrong key",
        "token-only to a signed store",
        "stale timestamp",
    ],
)
def test_client_sandbox_auth_failures_are_exit_4(
    sandbox: Sandbox, change: dict[str, Any], cause: str
) -> None:
    token = change.pop("api_token", sandbox.api_token)
    client = MivaClient(
        sandbox.url,
        sandbox.store_code,
        token,
        **{"signing_key": sandbox.signing_key, **change},
    )
    with pytest.raises(AuthError, match=cause) as info:
        client.list_orders(ListQuery(count=1))
    assert info.value.exit_code == 4
    assert token not in str(info.value)


@pytest.mark.parametrize("digest", ["sha256", "sha1"])
def test_client_sandbox_both_digests_are_accepted(
    sandbox: Sandbox, digest: str
) -> None:
    assert (
        client_for(sandbox, digest=digest).list_orders(ListQuery(count=1)).total_count
        == 300
    )


def test_client_sandbox_token_only_store() -> None:
    with Sandbox(orders=5, seed=1, signing_key=None) as sb:
        assert client_for(sb).list_orders(ListQuery(count=5)).total_count == 5


# -- operators and nesting ----------------------------------------------------


def like(pattern: str) -> Callable[[Any], bool]:
    glob = pattern.replace("%", "*").replace("_", "?").lower()
    return lambda v: fnmatchcase(str(v).lower(), glob)


OPERATOR_CASES: list[tuple[Condition, Callable[[dict[str, Any]], bool]]] = [
    (Condition("status", "EQ", 200), lambda o: o["status"] == 200),
    (Condition("ship_state", "EQ", "ca"), lambda o: o["ship_state"].lower() == "ca"),
    (Condition("total", "GT", 100), lambda o: o["total"] > 100),
    (Condition("total", "GE", 100), lambda o: o["total"] >= 100),
    (Condition("total", "LT", 20), lambda o: o["total"] < 20),
    (Condition("total", "LE", 20), lambda o: o["total"] <= 20),
    (Condition("ship_city", "CO", "an"), lambda o: "an" in o["ship_city"].lower()),
    (Condition("ship_city", "NC", "an"), lambda o: "an" not in o["ship_city"].lower()),
    (Condition("bill_lname", "LIKE", "M%"), lambda o: like("M%")(o["bill_lname"])),
    (
        Condition("bill_lname", "NOTLIKE", "M%"),
        lambda o: not like("M%")(o["bill_lname"]),
    ),
    (Condition("pay_status", "NE", 200), lambda o: o["pay_status"] != 200),
    (Condition("ship_res", "TRUE"), lambda o: bool(o["ship_res"])),
    (Condition("ship_res", "FALSE"), lambda o: not o["ship_res"]),
    # Miva has no SQL NULL; the sandbox reads NULL as empty or zero (inferred)
    (Condition("ship_addr2", "NULL"), lambda o: not o["ship_addr2"]),
    (Condition("status", "IN", [100, 200]), lambda o: o["status"] in (100, 200)),
    (
        Condition("status", "NOT_IN", [100, 200]),
        lambda o: o["status"] not in (100, 200),
    ),
]


@pytest.mark.parametrize(
    ("condition", "predicate"),
    OPERATOR_CASES,
    ids=[f"{c.field} {c.operator}" for c, _ in OPERATOR_CASES],
)
def test_client_sandbox_every_operator(
    sandbox: Sandbox, condition: Condition, predicate: Callable[[dict[str, Any]], bool]
) -> None:
    got = all_ids(client_for(sandbox), ListQuery(count=100).where(condition))
    want = [o["id"] for o in sandbox.store.orders_snapshot() if predicate(o)]
    assert sorted(got) == sorted(want)
    assert len(got) == len(set(got))


def test_client_sandbox_and_across_filters_or_within(sandbox: Sandbox) -> None:
    query = (
        ListQuery()
        .where(Condition("status", "EQ", 100), Condition("status", "EQ", 200))
        .where(Condition("total", "GE", 50))
    )
    want = [
        o["id"]
        for o in sandbox.store.orders_snapshot()
        if o["status"] in (100, 200) and o["total"] >= 50
    ]
    assert sorted(all_ids(client_for(sandbox), query)) == sorted(want)


def test_client_sandbox_subwhere_nesting(sandbox: Sandbox) -> None:
    query = ListQuery().where(
        Condition("status", "EQ", 100),
        sub_and(Condition("pay_status", "EQ", 200), Condition("pay_status", "EQ", 100)),
        sub_or(Condition("total", "GT", 250)),
    )
    snapshot = sandbox.store.orders_snapshot()
    want = [
        o["id"]
        for o in snapshot
        if (o["status"] == 100 and o["pay_status"] in (200, 100)) or o["total"] > 250
    ]
    assert sorted(all_ids(client_for(sandbox), query)) == sorted(want)


@pytest.mark.parametrize(
    ("condition", "code"),
    [
        (Condition("no_such_field", "EQ", 1), "invalid_search_field"),
        (Condition("total", "GT", "lots"), "invalid_search_value"),
    ],
)
def test_client_sandbox_refused_queries_are_exit_5(
    sandbox: Sandbox, condition: Condition, code: str
) -> None:
    with pytest.raises(ApiError) as info:
        client_for(sandbox).list_orders(ListQuery().where(condition))
    assert info.value.exit_code == 5
    assert info.value.code == code


# -- paging and sorting -------------------------------------------------------


@pytest.mark.parametrize("tie_order", ["id", "id-desc", "random"])
@pytest.mark.parametrize("descending", [False, True])
def test_client_sandbox_sorting_and_ties(tie_order: str, descending: bool) -> None:
    with Sandbox(orders=250, seed=9, tie_order=tie_order) as sb:
        client = client_for(sb)
        page = client.list_orders(
            ListQuery(count=1000).sorted_by("orderdate", descending=descending)
        )
        dates = [o["orderdate"] for o in page.orders]
        assert dates == sorted(dates, reverse=descending)
        assert page.total_count == len(page.orders) == 250
        burst = max(sb.store.bursts, key=len)
        tied = [o["id"] for o in page.orders if o["id"] in set(burst)]
        if tie_order == "id":
            assert tied == sorted(tied)
        elif tie_order == "id-desc":
            assert tied == sorted(tied, reverse=True)
        else:
            again = [
                o["id"]
                for o in client.list_orders(
                    ListQuery(count=1000).sorted_by("orderdate")
                ).orders
                if o["id"] in set(burst)
            ]
            assert sorted(tied) == sorted(again)
            assert (
                tied not in (sorted(tied), sorted(tied, reverse=True)) or again != tied
            )


def test_client_sandbox_count_offset_paging_covers_everything(sandbox: Sandbox) -> None:
    ids = all_ids(client_for(sandbox), ListQuery(count=37).sorted_by("id"))
    assert ids == sorted(o["id"] for o in sandbox.store.orders_snapshot())


def test_client_sandbox_on_demand_columns(sandbox: Sandbox) -> None:
    client = client_for(sandbox)
    bare = client.list_orders(ListQuery(count=1)).orders[0]
    full = client.list_orders(
        ListQuery(count=1).with_columns(["items", "customer"])
    ).orders[0]
    assert "items" not in bare and "customer" not in bare
    assert full["items"] and "customer" in full


# -- queues -------------------------------------------------------------------


def test_client_sandbox_queue_and_acknowledge(sandbox: Sandbox) -> None:
    client = client_for(sandbox)
    sandbox.store.create_queue("ack_test", ack=True)
    page = client.queue_orders("ack_test", ListQuery(count=50))
    ids = [o["id"] for o in page.orders]
    assert len(ids) == 50 and page.total_count == 300
    assert (
        client.queue_orders("ack_test", ListQuery(count=50)).total_count == 300
    )  # still there
    assert client.acknowledge(ids) == 50
    assert client.queue_orders("ack_test", ListQuery(count=1)).total_count == 250
    assert not set(ids) & set(sandbox.store.queue_ids("ack_test"))


def test_client_sandbox_acknowledge_unknown_ids_is_processed_0(
    sandbox: Sandbox,
) -> None:
    with pytest.raises(AckError) as info:
        client_for(sandbox).acknowledge([999_999_999])
    assert info.value.order_ids == [999_999_999]
    assert info.value.exit_code == 5


def test_client_sandbox_unknown_queue_is_api_error(sandbox: Sandbox) -> None:
    with pytest.raises(ApiError, match="invalid_queue"):
        client_for(sandbox).queue_orders("no_such_queue", ListQuery())


def test_client_sandbox_default_queue_exists(sandbox: Sandbox) -> None:
    assert (
        client_for(sandbox).queue_orders(DEFAULT_QUEUE, ListQuery(count=1)).total_count
        > 0
    )


# -- faults -------------------------------------------------------------------


@pytest.mark.parametrize("kind", FAULT_KINDS)
def test_client_sandbox_each_fault_is_transient_exit_6(kind: str) -> None:
    with Sandbox(orders=10, seed=3) as sb:
        sb.faults.timeout_seconds = 1.0
        sb.faults.inject(kind, count=2)
        client = client_for(sb, max_attempts=2, read_timeout=0.3)
        with pytest.raises(TransientError) as info:
            client.list_orders(ListQuery(count=5))
        assert info.value.exit_code == 6
        assert re.search(r"gave up after 2 attempt", str(info.value))
        # and once the fault passes, the same client recovers
        sb.faults.inject(kind, count=1)
        assert (
            client_for(sb, read_timeout=0.3).list_orders(ListQuery(count=5)).total_count
            == 10
        )


@pytest.mark.parametrize(
    ("setup", "code"),
    [
        (lambda sb, env: None, 0),
        (lambda sb, env: env.update(MIVA_API_TOKEN="f" * 32), 4),
        (lambda sb, env: env.update(MIVA_SIGNING_KEY=""), 4),
        (lambda sb, env: sb.faults.inject("503", count=5), 6),
        (lambda sb, env: sb.faults.inject("html200", count=5), 6),
    ],
    ids=["ok", "wrong token", "no signature", "503", "html on 200"],
)
def test_cli_check_against_the_sandbox(
    run: Any, setup: Callable[[Sandbox, dict[str, str]], None], code: int
) -> None:
    with Sandbox(orders=12, seed=4) as sb:
        env = {**sb.env(), "MIVA_SYNC_RETRY_BUDGET": "0"}
        setup(sb, env)
        result = run(["check"], env=env)
    assert result.exit_code == code, result.stderr
    assert result.stdout == ""
    assert sb.api_token not in result.stderr


def test_client_sends_through_the_environments_proxy(
    sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY is honoured (read once per client), and NO_PROXY bypasses it."""
    import http.server
    import threading

    import requests

    seen: list[str] = []

    class ForwardProxy(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            seen.append(self.path)  # a proxy gets the absolute URL
            body = self.rfile.read(int(self.headers["Content-Length"]))
            headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
            with requests.Session() as direct:
                direct.trust_env = False  # straight to the sandbox, not back here
                data = direct.post(self.path, data=body, headers=headers).content
            send_json(self, data)

        def log_message(self, *args: Any) -> None:
            return

    proxy = http.server.ThreadingHTTPServer(("127.0.0.1", 0), ForwardProxy)
    threading.Thread(target=proxy.serve_forever, daemon=True).start()
    try:
        for name in ("NO_PROXY", "no_proxy", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.delenv(name, raising=False)  # (lower case would win)
        monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy.server_address[1]}")
        with client_for(sandbox) as client:
            assert client.list_orders(ListQuery(count=5)).orders
            assert client.list_orders(ListQuery(count=5)).orders
        assert seen == [sandbox.url, sandbox.url]
        monkeypatch.setenv("NO_PROXY", "127.0.0.1")
        with client_for(sandbox) as client:
            assert client.list_orders(ListQuery(count=5)).orders
        assert len(seen) == 2
    finally:
        proxy.shutdown()
        proxy.server_close()

"""An error from the store says where it came from: exit status, HTTP status and
the Miva function that failed, and nothing secret (issue 20: one error tree)."""

from __future__ import annotations

from collections.abc import Generator
from typing import Any

import pytest
import requests
import responses

from miva_sync.errors import (
    AckError,
    ApiError,
    AuthError,
    ExitStatus,
    StoreError,
    TransientError,
    UntrustedAnswerError,
)
from miva_sync.store.query import ListQuery
from miva_sync.sync.pager import Chunk
from miva_sync.sync.pull import explained
from tests.support.fakes import KEY, STORE_URL, TOKEN

OK_PAGE = {"success": 1, "data": {"total_count": 0, "start_offset": 0, "data": []}}


def assert_nothing_secret(err: StoreError, api: responses.RequestsMock) -> None:
    """No token, key, signature or request body in anything the error shows."""
    sent = api.calls[-1].request
    signature = sent.headers["X-Miva-API-Authorization"].rsplit(":", 1)[1]
    body = sent.body.decode() if isinstance(sent.body, bytes) else str(sent.body)
    shown = " ".join([str(err), repr(err), repr(err.args), repr(vars(err))])
    for secret in (TOKEN, KEY, signature, body, '"Store_Code"'):
        assert secret not in shown
    assert err.request is not None and err.request in {
        "OrderList_Load_Query",
        "QueueOrderList_Load_Query",
        "OrderList_Acknowledge",
    }


def test_an_auth_refusal_carries_exit_4_http_401_and_the_function(
    api: responses.RequestsMock, make_client: Any
) -> None:
    echoed = {"error_code": "access_denied", "error_message": f"bad {TOKEN} / {KEY}"}
    api.post(STORE_URL, status=401, json=echoed)
    with pytest.raises(AuthError) as info:
        make_client().list_orders(ListQuery())
    err = info.value
    assert isinstance(err, StoreError)
    assert err.exit_code is ExitStatus.AUTH
    assert (err.http_status, err.request, err.code) == (
        401,
        "OrderList_Load_Query",
        "access_denied",
    )
    assert str(err).startswith("the store refused authentication (HTTP 401: ")
    assert "OrderList_Load_Query" not in str(err)  # the message is unchanged
    assert_nothing_secret(err, api)


def test_an_api_refusal_names_the_module_function_not_module(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(
        STORE_URL,
        json={"success": 0, "error_code": "MER-QUE-1", "error_message": f"no {KEY}"},
    )
    with pytest.raises(ApiError) as info:
        make_client().queue_orders("new_orders", ListQuery())
    err = info.value
    assert err.exit_code is ExitStatus.API
    assert (err.http_status, err.request, err.code) == (
        200,
        "QueueOrderList_Load_Query",
        "MER-QUE-1",
    )
    assert str(err) == "the store refused the request: MER-QUE-1: no [redacted]"
    assert_nothing_secret(err, api)


def test_a_malformed_page_carries_its_status_and_function(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json={"success": 1, "data": {"data": "nope"}})
    with pytest.raises(ApiError) as info:
        make_client().list_orders(ListQuery())
    assert (info.value.http_status, info.value.request) == (200, "OrderList_Load_Query")
    assert str(info.value) == "the store's answer has no list of orders (data.data)"


def test_a_5xx_after_the_retries_carries_exit_6_http_503_and_the_function(
    api: responses.RequestsMock, make_client: Any
) -> None:
    for _ in range(2):
        api.post(STORE_URL, status=503, body=f"down; you sent {TOKEN}")
    with pytest.raises(TransientError) as info:
        make_client(max_attempts=2).list_orders(ListQuery())
    err = info.value
    assert err.exit_code is ExitStatus.UNREACHABLE
    assert (err.http_status, err.request) == (503, "OrderList_Load_Query")
    assert "gave up after 2 attempt(s)" in str(err)
    assert_nothing_secret(err, api)


def test_no_answer_at_all_has_no_http_status_but_the_function(
    api: responses.RequestsMock, make_client: Any
) -> None:
    refused = requests.exceptions.ConnectionError("[Errno 111] Connection refused")
    api.post(STORE_URL, body=refused)
    with pytest.raises(TransientError) as info:
        make_client(max_attempts=1).queue_orders("new_orders", ListQuery())
    assert (info.value.http_status, info.value.request) == (
        None,
        "QueueOrderList_Load_Query",
    )
    assert_nothing_secret(info.value, api)


def test_an_acknowledge_refusal_carries_exit_5_and_the_function(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json={"success": 1, "processed": 0})
    with pytest.raises(AckError) as info:
        make_client().acknowledge([11, 12])
    err = info.value
    assert err.exit_code is ExitStatus.API
    assert (err.http_status, err.request) == (200, "OrderList_Acknowledge")
    assert (err.code, err.order_ids) == ("not_processed", [11, 12])
    assert "(processed: 0) for orders 11, 12" in str(err)
    assert_nothing_secret(err, api)


def test_an_acknowledge_the_store_refuses_outright_names_acknowledge(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, status=404, body="not here")
    with pytest.raises(ApiError) as info:
        make_client().acknowledge([11])
    assert not isinstance(info.value, AckError)
    assert (info.value.http_status, info.value.request) == (
        404,
        "OrderList_Acknowledge",
    )


def test_a_page_the_pull_cannot_trust_names_the_list_function() -> None:
    # the pager is handed its fetch and knows no function; the pull names it
    def refused() -> Generator[Chunk, None, None]:
        raise UntrustedAnswerError("a page came back out of order")
        yield  # a generator that fails on its first page

    with pytest.raises(UntrustedAnswerError) as info:
        list(explained(refused(), "number"))
    assert info.value.request == "OrderList_Load_Query"
    assert info.value.exit_code is ExitStatus.API
    assert str(info.value).startswith("number mode: a page came back out of order.")


def test_the_keywords_callers_pass_still_work() -> None:
    auth = AuthError("no", http_status=403, code="access_denied")
    api = ApiError("no", code="X", http_status=400, field_errors=[("Count", "bad")])
    gone = TransientError("down", http_status=429, retry_after=7.0)
    ack = AckError("no", order_ids=[1])
    assert (auth.http_status, auth.code, auth.request) == (403, "access_denied", None)
    assert (api.code, api.http_status, api.field_errors) == (
        "X",
        400,
        [("Count", "bad")],
    )
    assert (gone.http_status, gone.retry_after, gone.code) == (429, 7.0, None)
    assert (ack.order_ids, ack.code, ack.http_status) == ([1], "not_processed", None)
    assert [e.exit_code for e in (auth, api, gone, ack)] == [4, 5, 6, 5]
    assert [e.args for e in (auth, api, gone, ack)] == [
        ("no",),
        ("no",),
        ("down",),
        ("no",),
    ]

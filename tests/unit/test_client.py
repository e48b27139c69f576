"""MivaClient against a mocked store: signing on the wire, retries, classification."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests
import responses
from responses import matchers

from miva_sync.config import decode_signing_key
from miva_sync.errors import AckError, ApiError, AuthError, ConfigError, TransientError
from miva_sync.store.client import sign
from miva_sync.store.query import ListQuery
from tests.support.fakes import KEY, STORE_URL, TOKEN, FakeClock

OK_PAGE = {
    "success": 1,
    "data": {"total_count": 1, "start_offset": 0, "data": [{"id": 7}]},
}


def body_of(call: Any) -> dict[str, Any]:
    return json.loads(call.request.body)


def test_client_signs_the_exact_bytes_it_sends(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json=OK_PAGE)
    make_client().list_orders(ListQuery(count=10))
    request = api.calls[0].request
    header = request.headers["X-Miva-API-Authorization"]
    scheme, credentials = header.split(" ")
    token, signature = credentials.split(":")
    assert (scheme, token) == ("MIVA-HMAC-SHA256", TOKEN)
    assert signature == sign(request.body, decode_signing_key(KEY))


def test_client_sha1_setting_signs_with_sha1(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json=OK_PAGE)
    make_client(digest="sha1").list_orders(ListQuery())
    header = api.calls[0].request.headers["X-Miva-API-Authorization"]
    assert header.startswith(f"MIVA-HMAC-SHA1 {TOKEN}:")
    assert header.endswith(
        sign(api.calls[0].request.body, decode_signing_key(KEY), "sha1")
    )


def test_client_without_key_sends_token_only(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json=OK_PAGE)
    make_client(signing_key=None).list_orders(ListQuery())
    assert api.calls[0].request.headers["X-Miva-API-Authorization"] == f"MIVA {TOKEN}"


def test_client_request_body_has_store_code_function_and_timestamp(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    api.post(STORE_URL, json=OK_PAGE)
    page = make_client().list_orders(ListQuery(count=10).sorted_by("id"))
    body = body_of(api.calls[0])
    assert body["Store_Code"] == "PS"
    assert body["Function"] == "OrderList_Load_Query"
    assert body["Miva_Request_Timestamp"] == int(clock.now)
    assert (body["Count"], body["Offset"], body["Sort"]) == (10, 0, "id")
    assert page.orders == [{"id": 7}]
    assert page.total_count == 1


def test_client_retries_503_with_fresh_timestamp_and_signature(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    clock.now += 0.8  # the 0.5 s backoff crosses into the next second
    api.post(STORE_URL, status=503, body="<html><h1>Service Unavailable</h1></html>")
    api.post(STORE_URL, json=OK_PAGE)
    make_client().list_orders(ListQuery())
    first, second = (c.request for c in api.calls)
    assert (
        json.loads(second.body)["Miva_Request_Timestamp"]
        > json.loads(first.body)["Miva_Request_Timestamp"]
    )
    assert (
        first.headers["X-Miva-API-Authorization"]
        != second.headers["X-Miva-API-Authorization"]
    )
    assert second.headers["X-Miva-API-Authorization"].endswith(
        sign(second.body, decode_signing_key(KEY))
    )
    assert clock.sleeps == [0.5]


def test_client_backoff_is_exponential_and_capped(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    for _ in range(7):
        api.post(STORE_URL, status=500, body="oops")
    api.post(STORE_URL, json=OK_PAGE)
    make_client(retry_budget=1000).list_orders(ListQuery())
    assert clock.sleeps == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_client_jitter_shortens_delays(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    api.post(STORE_URL, status=502, body="bad gateway")
    api.post(STORE_URL, json=OK_PAGE)
    make_client(jitter=lambda: 0.0).list_orders(ListQuery())
    assert clock.sleeps == [0.25]


def test_client_honours_retry_after_seconds(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    api.post(STORE_URL, status=429, headers={"Retry-After": "7"}, body="slow down")
    api.post(STORE_URL, json=OK_PAGE)
    make_client().list_orders(ListQuery())
    assert clock.sleeps == [7.0]


def test_client_caps_retry_after(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    api.post(STORE_URL, status=429, headers={"Retry-After": "3600"}, body="")
    api.post(STORE_URL, json=OK_PAGE)
    make_client(retry_budget=100).list_orders(ListQuery())
    assert clock.sleeps == [30.0]


def test_client_retry_after_beyond_budget_gives_up_at_once(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    api.post(STORE_URL, status=429, headers={"Retry-After": "25"}, body="")
    with pytest.raises(TransientError) as info:
        make_client(retry_budget=20).list_orders(ListQuery())
    assert info.value.exit_code == 6
    assert "HTTP 429" in str(info.value)
    assert clock.sleeps == []


def test_client_gives_up_when_budget_is_spent(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    for _ in range(5):
        api.post(STORE_URL, status=503, body="<p>down</p>")
    with pytest.raises(
        TransientError, match=r"HTTP 503.*down.*gave up after 5 attempt"
    ):
        make_client(retry_budget=10).list_orders(ListQuery())
    assert sum(clock.sleeps) <= 10


def test_client_gives_up_after_max_attempts(
    api: responses.RequestsMock, make_client: Any
) -> None:
    for _ in range(3):
        api.post(STORE_URL, status=500, body="x")
    with pytest.raises(TransientError, match="gave up after 3 attempt"):
        make_client(max_attempts=3, retry_budget=1000).list_orders(ListQuery())


def test_client_max_rps_spaces_requests(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    for _ in range(3):
        api.post(STORE_URL, json=OK_PAGE)
    client = make_client(max_rps=2)
    for _ in range(3):
        client.list_orders(ListQuery())
    assert clock.sleeps == [0.5, 0.5]


TRANSIENT_FAULTS: list[tuple[str, dict[str, Any], str]] = [
    (
        "500 html",
        {"status": 500, "body": "<html><body>Internal Server Error</body></html>"},
        "HTTP 500.*Internal Server Error",
    ),
    ("502", {"status": 502, "body": "Bad Gateway"}, "HTTP 502"),
    ("503", {"status": 503, "body": ""}, r"HTTP 503.*\(empty body\)"),
    ("429", {"status": 429, "body": "Too Many Requests"}, "HTTP 429"),
    (
        "html on 200",
        {"status": 200, "body": "<html><title>Maintenance</title></html>"},
        "not a complete JSON object.*Maintenance",
    ),
    (
        "truncated json",
        {"status": 200, "body": '{"success":1,"data":{"total_c'},
        "not a complete JSON object",
    ),
    ("json array", {"status": 200, "body": "[1, 2]"}, "not a complete JSON object"),
    (
        "no success flag",
        {"status": 200, "body": '{"hello": "proxy"}'},
        "no success flag",
    ),
    (
        "connection reset",
        {"body": requests.exceptions.ConnectionError("Connection reset by peer")},
        "connection reset",
    ),
    (
        "refused",
        {"body": requests.exceptions.ConnectionError("[Errno 111] Connection refused")},
        "connection refused",
    ),
    (
        "read timeout",
        {"body": requests.exceptions.ReadTimeout("read timed out")},
        "did not answer within",
    ),
    (
        "connect timeout",
        {"body": requests.exceptions.ConnectTimeout("timed out")},
        "did not answer within",
    ),
    (
        "cut short",
        {"body": requests.exceptions.ChunkedEncodingError("IncompleteRead")},
        "cut short",
    ),
    ("ssl", {"body": requests.exceptions.SSLError("bad handshake")}, "TLS error"),
]


@pytest.mark.parametrize(
    ("kind", "reply", "message"), TRANSIENT_FAULTS, ids=[f[0] for f in TRANSIENT_FAULTS]
)
def test_client_transient_faults_end_in_exit_6(
    api: responses.RequestsMock,
    make_client: Any,
    kind: str,
    reply: dict[str, Any],
    message: str,
) -> None:
    api.post(STORE_URL, **reply)
    api.post(STORE_URL, **reply)
    with pytest.raises(TransientError, match=message) as info:
        make_client(max_attempts=2).list_orders(ListQuery())
    assert info.value.exit_code == 6
    assert len(api.calls) == 2  # it was retried


@pytest.mark.parametrize(
    ("kind", "reply", "message"),
    [
        t
        for t in TRANSIENT_FAULTS
        if t[0] in {"500 html", "read timeout", "truncated json", "cut short"}
    ],
)
def test_client_recovers_from_one_transient_fault(
    api: responses.RequestsMock,
    make_client: Any,
    kind: str,
    reply: dict[str, Any],
    message: str,
) -> None:
    api.post(STORE_URL, **reply)
    api.post(STORE_URL, json=OK_PAGE)
    assert make_client().list_orders(ListQuery()).orders == [{"id": 7}]


@pytest.mark.parametrize(
    ("status", "body", "cause"),
    [
        (
            401,
            {
                "success": 0,
                "error_code": "bad_signature",
                "error_message": "Signature mismatch",
            },
            "signing key",
        ),
        (
            401,
            {"success": 0, "error_code": "stale", "error_message": "Invalid timestamp"},
            "clock",
        ),
        (
            403,
            {
                "success": 0,
                "error_code": "ip",
                "error_message": "IP address not allowed",
            },
            "IP allow-list",
        ),
        (401, "not json", "MIVA_API_TOKEN"),
    ],
)
def test_client_auth_failures_are_exit_4_with_a_cause(
    api: responses.RequestsMock, make_client: Any, status: int, body: Any, cause: str
) -> None:
    if isinstance(body, dict):
        api.post(STORE_URL, status=status, json=body)
    else:
        api.post(STORE_URL, status=status, body=body)
    with pytest.raises(AuthError, match=cause) as info:
        make_client().list_orders(ListQuery())
    assert info.value.exit_code == 4
    assert f"HTTP {status}" in str(info.value)
    assert len(api.calls) == 1  # never retried


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        # Miva's own messages (docs/miva-api.md §3.7), each to its fix
        ("Access denied", "IP allow-list"),
        ("Invalid request signature", "signing key"),
        ("Timestamp outside configured window", "clock"),
        ("Missing required timestamp", "clock"),
        ("Timestamp requires request signature", "requires a signature"),
        ("Token is disabled", "disabled"),
        ("Unrecognized authorization type", "signing settings"),
    ],
)
def test_client_access_denied_at_http_200_is_exit_4(
    api: responses.RequestsMock, make_client: Any, message: str, cause: str
) -> None:
    body = {"success": 0, "error_code": "access_denied", "error_message": message}
    api.post(STORE_URL, json=body)
    with pytest.raises(AuthError, match=cause) as info:
        make_client().list_orders(ListQuery())
    err = info.value
    assert err.exit_code == 4 and err.code == "access_denied"
    assert f"access_denied: {message}" in str(err)
    assert "HTTP 200" not in str(err)
    assert len(api.calls) == 1  # never retried


def test_client_auth_codes_are_one_evidenced_list() -> None:
    from miva_sync.store.client import AUTH_ERROR_CODES

    assert sorted(AUTH_ERROR_CODES) == ["access_denied"]


@pytest.mark.parametrize(
    "code", ["invalid_store", "MER-JSN-00017", "invalid_token", "ACCESS_DENIED"]
)
def test_client_other_refusals_are_exit_5_whatever_they_say(
    api: responses.RequestsMock, make_client: Any, code: str
) -> None:
    # no guessing "auth" from words: only the evidenced code is exit 4
    body = {"success": 0, "error_code": code, "error_message": "Invalid token"}
    api.post(STORE_URL, json=body)
    with pytest.raises(ApiError) as info:
        make_client().list_orders(ListQuery())
    assert info.value.exit_code == 5 and info.value.code == code
    assert f"{code}: Invalid token" in str(info.value)


def test_client_access_denied_never_shows_secrets(
    api: responses.RequestsMock, make_client: Any
) -> None:
    echoed = f"Access denied for {TOKEN} ({KEY})"
    api.post(
        STORE_URL,
        json={"success": 0, "error_code": "access_denied", "error_message": echoed},
    )
    with pytest.raises(AuthError) as info:
        make_client().list_orders(ListQuery())
    assert TOKEN not in str(info.value) and KEY not in str(info.value)
    assert "[redacted]" in str(info.value)


def test_client_api_error_carries_code_message_and_fields(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(
        STORE_URL,
        json={
            "success": 0,
            "error_code": "MER-JSN-00023",
            "error_message": "One or more parameters are invalid",
            "validation_error": True,
            "error_fields": [
                {"error_field": "Count", "error_message": "Please enter a number"}
            ],
        },
    )
    with pytest.raises(ApiError) as info:
        make_client().list_orders(ListQuery())
    err = info.value
    assert err.exit_code == 5
    assert err.code == "MER-JSN-00023"
    assert err.field_errors == [("Count", "Please enter a number")]
    assert "MER-JSN-00023" in str(err) and "Please enter a number" in str(err)
    assert len(api.calls) == 1


@pytest.mark.parametrize(
    ("status", "hint"), [(404, "path in MIVA_URL"), (400, "HTTP 400")]
)
def test_client_other_4xx_is_api_error(
    api: responses.RequestsMock, make_client: Any, status: int, hint: str
) -> None:
    api.post(STORE_URL, status=status, body="<h1>Not here</h1>")
    with pytest.raises(ApiError, match=hint) as info:
        make_client().list_orders(ListQuery())
    assert info.value.exit_code == 5


def test_client_redirect_is_a_config_error(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(
        STORE_URL,
        status=301,
        headers={"Location": "https://www.example.com/mm5/json.mvc"},
    )
    with pytest.raises(ConfigError, match="redirected.*www.example.com") as info:
        make_client().list_orders(ListQuery())
    assert info.value.exit_code == 3


def test_client_malformed_success_answer_is_api_error(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json={"success": 1, "data": {"total_count": "x", "data": []}})
    with pytest.raises(ApiError, match="total_count"):
        make_client().list_orders(ListQuery())


def test_client_queue_call_is_a_module_function(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(
        STORE_URL,
        json=OK_PAGE,
        match=[
            matchers.json_params_matcher(
                {
                    "Function": "Module",
                    "Module_Code": "orderworkflow",
                    "Module_Function": "QueueOrderList_Load_Query",
                    "Queue_Code": "new_updated_orders",
                    "Count": 50,
                    "Offset": 0,
                },
                strict_match=False,
            )
        ],
    )
    page = make_client().queue_orders("new_updated_orders", ListQuery(count=50))
    assert page.orders == [{"id": 7}]


def test_client_acknowledges_in_batches_of_100(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json={"success": 1, "processed": 1})
    api.post(STORE_URL, json={"success": 1, "processed": 1})
    assert make_client().acknowledge(list(range(1, 151))) == 150
    batches = [body_of(c)["Order_Ids"] for c in api.calls]
    assert [len(b) for b in batches] == [100, 50]
    assert body_of(api.calls[0])["Module_Function"] == "OrderList_Acknowledge"


def test_client_reports_processed_zero_with_the_ids(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json={"success": 1, "processed": 0})
    with pytest.raises(AckError, match="processed: 0.*1046, 1047") as info:
        make_client().acknowledge([1046, 1047])
    assert info.value.order_ids == [1046, 1047]
    assert info.value.exit_code == 5


def test_client_never_shows_secrets(
    api: responses.RequestsMock, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    # a store (or proxy) that echoes our secrets back in an error page
    api.post(STORE_URL, status=500, body=f"<pre>token={TOKEN} key={KEY}</pre>")
    client = make_client(max_attempts=1)
    caplog.set_level(logging.DEBUG, logger="miva_sync")
    with pytest.raises(TransientError) as info:
        client.list_orders(ListQuery())
    shown = str(info.value) + repr(client) + caplog.text
    assert "[redacted]" in str(info.value)
    assert "MIVA-HMAC-SHA256 [redacted]" in caplog.text
    assert TOKEN not in shown and KEY not in shown


@pytest.mark.parametrize("before", [140, 150, 158, 3990, 3995])
def test_client_never_shows_part_of_a_secret_cut_by_the_excerpt(
    api: responses.RequestsMock, make_client: Any, before: int
) -> None:
    """Found in review: the store's text was clipped to one line before the
    secrets were replaced, so a token near the cut survived in part. Near the
    4,000-byte excerpt the padding is blank: it collapses before the line is
    clipped, so the excerpt's own cut is what shows (x's would clip it away)."""
    padding = ("x" if before < 1000 else " ") * before
    api.post(
        STORE_URL,
        json={"success": 0, "error_code": "E", "error_message": padding + TOKEN},
    )
    api.post(
        STORE_URL, status=401, json={"success": 0, "error_message": padding + TOKEN}
    )
    api.post(STORE_URL, status=500, body=padding + TOKEN + "y" * 5000)
    client = make_client(max_attempts=1)
    for error in (ApiError, AuthError, TransientError):
        with pytest.raises(error) as info:
            client.list_orders(ListQuery())
        assert TOKEN[:6] not in str(info.value), str(info.value)[-60:]


def test_client_never_shows_a_secret_echoed_as_the_success_flag(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json={"success": TOKEN, "data": {}})
    with pytest.raises(ApiError) as info:
        make_client(max_attempts=1).list_orders(ListQuery())
    assert "success flag" in str(info.value) and TOKEN[:6] not in str(info.value)


def test_client_never_shows_the_passphrase_a_store_echoes(
    api: responses.RequestsMock, make_client: Any
) -> None:
    passphrase = "correct-horse-battery-42"
    api.post(
        STORE_URL,
        json={"success": 0, "error_code": "PP", "error_message": f"bad {passphrase}"},
    )
    query = ListQuery(columns=("payment_data",), passphrase=passphrase)
    with pytest.raises(ApiError) as info:
        make_client(max_attempts=1).list_orders(query)
    assert "[redacted]" in str(info.value) and passphrase not in str(info.value)


def test_settings_repr_hides_secrets() -> None:
    from miva_sync.config import load_settings

    settings = load_settings(
        {"url": STORE_URL, "store_code": "PS", "api_token": TOKEN, "signing_key": KEY},
        env={},
    )
    assert TOKEN not in repr(settings) and KEY not in repr(settings)


def test_client_page_sent_early_is_the_same_page(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json=OK_PAGE)
    client = make_client()
    pending = client.list_orders_soon(ListQuery(count=10))
    assert json.loads(pending.content() or b"{}") == OK_PAGE  # before the parse
    page = pending.page()
    assert (page.orders, page.total_count, client.requests_sent) == ([{"id": 7}], 1, 1)
    client.close()


def test_client_page_sent_early_is_retried_by_the_caller(
    api: responses.RequestsMock, make_client: Any, clock: FakeClock
) -> None:
    api.post(STORE_URL, status=503, body="busy")
    api.post(STORE_URL, json=OK_PAGE)
    client = make_client()
    pending = client.list_orders_soon(ListQuery())
    assert pending.content() is None  # no usable answer: nothing to look at
    assert pending.page().orders == [{"id": 7}]
    assert (client.requests_sent, client.retries, clock.sleeps) == (2, 1, [0.5])
    client.close()


def test_client_page_sent_early_raises_what_list_orders_would(
    api: responses.RequestsMock, make_client: Any
) -> None:
    api.post(STORE_URL, json={"success": 0, "error_code": "x", "error_message": "no"})
    pending = make_client().list_orders_soon(ListQuery())
    assert pending.content() is not None
    with pytest.raises(ApiError, match="no"):
        pending.page()

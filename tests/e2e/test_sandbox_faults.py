"""Injected faults and latency, as a client sees them at the HTTP level."""

from __future__ import annotations

import json
import time

import pytest
import requests

from miva_sync.sandbox import FAULT_KINDS, RECEIVED_QUEUE, Sandbox
from tests.support import sandbox_fixtures
from tests.support.sandbox_fixtures import RawClient

# Fixtures shared with the other sandbox test modules.
raw = sandbox_fixtures.raw
sandbox = sandbox_fixtures.sandbox


@pytest.mark.parametrize("kind", ["500", "502", "503"])
def test_sandbox_5xx_fault_has_html_body(
    sandbox: Sandbox, raw: RawClient, kind: str
) -> None:
    sandbox.faults.inject(kind)
    response = raw.post(raw.body())
    assert response.status_code == int(kind)
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.startswith("<!DOCTYPE html>")
    assert raw.call()["success"] == 1  # the next request is served again


def test_sandbox_429_carries_retry_after(sandbox: Sandbox, raw: RawClient) -> None:
    sandbox.faults.inject("429")
    sandbox.faults.inject("429", retry_after=7)
    assert raw.post(raw.body()).headers["Retry-After"] == "1"
    response = raw.post(raw.body())
    assert response.status_code == 429 and response.headers["Retry-After"] == "7"


def test_sandbox_503_may_carry_retry_after(sandbox: Sandbox, raw: RawClient) -> None:
    sandbox.faults.inject("503")
    sandbox.faults.inject("503", retry_after=3)
    assert "Retry-After" not in raw.post(raw.body()).headers
    assert raw.post(raw.body()).headers["Retry-After"] == "3"


def test_sandbox_html200_is_not_json(sandbox: Sandbox, raw: RawClient) -> None:
    sandbox.faults.inject("html200")
    response = raw.post(raw.body())
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    with pytest.raises(requests.JSONDecodeError):
        response.json()


def test_sandbox_reset_raises_connection_error(
    sandbox: Sandbox, raw: RawClient
) -> None:
    sandbox.faults.inject("reset")
    with pytest.raises(requests.ConnectionError):
        raw.post(raw.body())
    assert sandbox.requests[-1].status is None and sandbox.requests[-1].fault == "reset"
    assert raw.call()["success"] == 1


def test_sandbox_truncated_body_fails_to_read(sandbox: Sandbox, raw: RawClient) -> None:
    sandbox.faults.inject("truncate", fraction=0.3)
    with pytest.raises(
        (requests.ConnectionError, requests.exceptions.ChunkedEncodingError)
    ):
        raw.post(raw.body(Count=20)).json()
    assert raw.call()["success"] == 1


def test_sandbox_truncated_body_is_cut_json(sandbox: Sandbox, raw: RawClient) -> None:
    sandbox.faults.inject("truncate")
    response = raw.post(raw.body(Count=20), stream=True)
    assert response.status_code == 200
    assert int(response.headers["Content-Length"]) > 0
    chunks = b""
    with pytest.raises(requests.exceptions.RequestException):
        for chunk in response.iter_content(1024):
            chunks += chunk
    with pytest.raises(json.JSONDecodeError):
        json.loads(chunks)


def test_sandbox_timeout_fault_exceeds_client_timeout(
    sandbox: Sandbox, raw: RawClient
) -> None:
    sandbox.faults.timeout_seconds = 1.0
    sandbox.faults.inject("timeout")
    with pytest.raises(requests.Timeout):
        raw.post(raw.body(), timeout=0.2)
    assert raw.call()["success"] == 1


def test_sandbox_timeout_fault_answers_late(sandbox: Sandbox, raw: RawClient) -> None:
    sandbox.faults.inject("timeout", seconds=0.3)
    started = time.monotonic()
    assert raw.post(raw.body()).json()["success"] == 1
    assert time.monotonic() - started >= 0.3


def test_sandbox_fault_count(sandbox: Sandbox, raw: RawClient) -> None:
    sandbox.faults.inject("503", count=2)
    statuses = [raw.post(raw.body()).status_code for _ in range(3)]
    assert statuses == [503, 503, 200]
    assert [e.fault for e in sandbox.requests] == ["503", "503", None]


def test_sandbox_reset_after_processing_loses_a_no_ack_page(
    sandbox: Sandbox, raw: RawClient
) -> None:
    sandbox.store.create_queue("fast", ack=False)
    before = set(sandbox.store.queue_ids("fast"))
    sandbox.faults.inject("reset", processed=True)
    body = raw.body("Module", Module_Code="orderworkflow",
                    Module_Function="QueueOrderList_Load_Query", Queue_Code="fast", Count=5)  # fmt: skip
    with pytest.raises(requests.ConnectionError):
        raw.post(body)
    gone = before - set(sandbox.store.queue_ids("fast"))
    assert len(gone) == 5 and gone <= set(sandbox.store.queue_ids(RECEIVED_QUEUE))


def test_sandbox_unprocessed_fault_changes_nothing(
    sandbox: Sandbox, raw: RawClient
) -> None:
    sandbox.store.create_queue("fast", ack=False)
    before = sandbox.store.queue_ids("fast")
    sandbox.faults.inject("502")
    body = raw.body("Module", Module_Code="orderworkflow",
                    Module_Function="QueueOrderList_Load_Query", Queue_Code="fast", Count=5)  # fmt: skip
    assert raw.post(body).status_code == 502
    assert sandbox.store.queue_ids("fast") == before


def test_sandbox_random_faults_are_seeded() -> None:
    def run() -> list[str | None]:
        with Sandbox(orders=5, seed=3) as sb:
            sb.faults.kinds = ("500", "503", "429", "html200")
            sb.faults.rate = 0.5
            raw = RawClient(sb)
            for _ in range(20):
                raw.post(raw.body())
            return [e.fault for e in sb.requests]

    first = run()
    assert first == run()
    assert 0 < sum(f is not None for f in first) < 20


def test_sandbox_fault_rate_from_constructor() -> None:
    with Sandbox(orders=5, fault_rate=1.0) as sb:
        sb.faults.kinds = ("500",)
        raw = RawClient(sb)
        assert raw.post(raw.body()).status_code == 500
        sb.faults.clear()
        assert raw.post(raw.body()).status_code == 200


def test_sandbox_latency() -> None:
    with Sandbox(orders=5, latency_ms=150) as sb:
        raw = RawClient(sb)
        started = time.monotonic()
        raw.call()
        assert time.monotonic() - started >= 0.15


def test_sandbox_refuses_unknown_fault(sandbox: Sandbox) -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        sandbox.faults.inject("418")
    assert set(FAULT_KINDS) == {"500", "502", "503", "reset", "truncate", "timeout", "429",
                                "html200"}  # fmt: skip


def test_sandbox_stop_wakes_sleeping_handlers() -> None:
    sb = Sandbox(orders=5).start()
    # the handler would sleep far longer than any busy machine takes to stop it
    sb.faults.timeout_seconds = 600
    sb.faults.inject("timeout")
    raw = RawClient(sb)
    with pytest.raises(requests.Timeout):
        raw.post(raw.body(), timeout=0.2)
    started = time.monotonic()
    sb.stop()
    assert time.monotonic() - started < 60, "stop waited for the sleeping handler"

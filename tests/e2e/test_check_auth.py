"""Refusals as the store sends them, end to end through the CLI.

Real Miva answers every credential failure with HTTP 200, ``success: 0`` and
``access_denied`` (docs/miva-api.md §3.7), and so does the sandbox by default.
Under its ``auth-error-401`` switch it answers HTTP 401 instead, as a web-server
layer in front of the store would (docs/miva-api.md §3.8). Both are exit 4; any other
``success: 0`` is exit 5 with the store's own code and words, and ``check`` never
calls a refusal "authentication ok".
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import responses

from miva_sync.sandbox import Sandbox
from miva_sync.sandbox.harness import new_signing_key
from miva_sync.sandbox.quirks import Quirks
from tests.support.fakes import STORE_URL


@pytest.fixture
def real_like() -> Iterator[Sandbox]:
    """The sandbox's default: refusals as a real store sends them (HTTP 200)."""
    with Sandbox(orders=10, seed=4) as sb:
        yield sb


@pytest.fixture
def behind_401() -> Iterator[Sandbox]:
    """A web-server layer in front of the store answers refusals with HTTP 401."""
    with Sandbox(orders=10, seed=4, quirks=Quirks(auth_error_401=True)) as sb:
        yield sb


def auth_row(result: Any) -> dict[str, Any]:
    data = json.loads(result.stdout)
    return next(c for c in data["checks"] if c["name"] == "authentication")


def refusing(request: pytest.FixtureRequest, status: int) -> Sandbox:
    """The sandbox that refuses with ``status``: 200 as real Miva, 401 as a proxy."""
    fixture = {200: "real_like", 401: "behind_401"}[status]
    sandbox: Sandbox = request.getfixturevalue(fixture)
    return sandbox


@pytest.mark.parametrize(
    ("status", "setting", "words", "cause"),
    [
        (200, "MIVA_API_TOKEN", ("access_denied", "Access denied"), "MIVA_API_TOKEN"),
        (
            200,
            "MIVA_SIGNING_KEY",
            ("access_denied", "Invalid request signature"),
            "signing key",
        ),
        (401, "MIVA_API_TOKEN", ("401",), "MIVA_API_TOKEN"),
        (401, "MIVA_SIGNING_KEY", ("401",), "signing key"),
    ],
)
def test_auth_failure_is_exit_4_on_pull(
    run: Any,
    request: pytest.FixtureRequest,
    tmp_path: Any,
    status: int,
    setting: str,
    words: tuple[str, ...],
    cause: str,
) -> None:
    sb = refusing(request, status)
    wrong = new_signing_key() if setting == "MIVA_SIGNING_KEY" else "nope" * 8
    env = {**sb.env(), setting: wrong}
    out = tmp_path / "o.jsonl"
    result = run(["pull", "--since", "7d", "-o", str(out), "--no-progress"], env=env)
    assert result.exit_code == 4, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("miva-sync: error:")
    assert all(w in lines[0] for w in words)
    assert cause in lines[0]
    assert "Traceback" not in result.stderr
    assert wrong not in result.stderr and sb.api_token not in result.stderr
    assert not out.exists() or out.read_text() == ""
    # the refusal came as HTTP 200 from the store, as 401 from the layer in front
    assert sb.requests[-1].status == status


@pytest.mark.parametrize(
    ("status", "detail"), [(200, ("access_denied", "Access denied")), (401, ())]
)
def test_check_never_says_authentication_ok_after_a_refusal(
    run: Any, request: pytest.FixtureRequest, status: int, detail: tuple[str, ...]
) -> None:
    env = {**refusing(request, status).env(), "MIVA_API_TOKEN": "nope" * 8}
    result = run(["check", "--json"], env=env)
    assert result.exit_code == 4
    row = auth_row(result)
    assert row["status"] == "fail"
    assert all(w in row["detail"] for w in detail)
    table = run(["check"], env=env)
    assert table.exit_code == 4
    assert "accepted the credentials" not in table.stderr


def test_other_refusal_is_exit_5_with_the_stores_code_and_words(
    run: Any, real_like: Sandbox, tmp_path: Any
) -> None:
    # a store code the store does not have: not an authentication failure
    env = {**real_like.env(), "MIVA_STORE_CODE": "NOPE"}
    pull = run(
        ["pull", "--since", "7d", "-o", str(tmp_path / "o.jsonl"), "--no-progress"],
        env=env,
    )
    assert pull.exit_code == 5, pull.stderr
    last = pull.stderr.strip().splitlines()[-1]
    assert "invalid_store" in last and "Invalid store code 'NOPE'" in last
    check = run(["check", "--json"], env=env)
    assert check.exit_code == 5
    # the store refused: authentication is not proven, and check says so
    assert auth_row(check)["status"] == "warn"
    assert "not proven" in auth_row(check)["detail"]
    failing = next(
        c for c in json.loads(check.stdout)["checks"] if c["name"] == "list orders"
    )
    assert failing["status"] == "fail" and "invalid_store" in failing["detail"]


def test_a_function_the_token_may_not_call_is_a_probe_result_not_exit_4(
    run: Any, api: responses.RequestsMock, store_env: dict[str, str]
) -> None:
    """Miva says ``access_denied`` for a function the token is not granted too:
    once a list query passed, that is "not granted", not a failed login."""
    page = {"success": 1, "data": {"total_count": 0, "start_offset": 0, "data": []}}
    denied = {
        "success": 0,
        "error_code": "access_denied",
        "error_message": "Access denied",
    }

    def answer(request: Any) -> tuple[int, dict[str, str], str]:
        body = json.loads(request.body)
        queue = body.get("Module_Function") == "QueueOrderList_Load_Query"
        return 200, {}, json.dumps(denied if queue else page)

    api.add_callback(responses.POST, STORE_URL, callback=answer)
    result = run(["check", "--json", "--queue", "new_updated_orders"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert auth_row(result)["status"] == "ok"
    assert data["probes"]["queue"]["value"] == "unsupported"
    assert "Access denied" in data["probes"]["queue"]["reason"]
    assert data["queue_granted"] is False

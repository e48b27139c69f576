"""`miva-sync sandbox` as a real process: it serves what it prints, and stops on signals."""

from __future__ import annotations

import json
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.support.sandbox_fixtures import sign

EXE = Path(sys.executable).with_name("miva-sync")


def _exports(proc: subprocess.Popen[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    assert proc.stdout is not None
    while len(env) < 4:
        line = proc.stdout.readline()
        assert line, "sandbox exited before printing its settings"
        words = shlex.split(line)
        assert words[0] == "export"
        name, _, value = words[1].partition("=")
        env[name] = value
    return env


@pytest.fixture
def start() -> Iterator[object]:
    procs: list[subprocess.Popen[str]] = []

    def run(*args: str) -> tuple[subprocess.Popen[str], dict[str, str]]:
        proc = subprocess.Popen(
            [str(EXE), "sandbox", "--port", "0", "--orders", "40", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        watchdog = threading.Timer(30, proc.kill)  # never hang the suite
        watchdog.daemon = True
        watchdog.start()
        return proc, _exports(proc)

    yield run
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def _post(env: dict[str, str], payload: dict[str, object]) -> requests.Response:
    body = json.dumps(payload).encode()
    if env["MIVA_SIGNING_KEY"]:
        sig = sign(env["MIVA_SIGNING_KEY"], body)
        header = f"MIVA-HMAC-SHA256 {env['MIVA_API_TOKEN']}:{sig}"
    else:
        header = f"MIVA {env['MIVA_API_TOKEN']}"
    return requests.post(
        env["MIVA_URL"],
        data=body,
        headers={"X-Miva-API-Authorization": header},
        timeout=10,
    )


def _query(env: dict[str, str]) -> dict[str, object]:
    return {
        "Store_Code": env["MIVA_STORE_CODE"],
        "Function": "OrderList_Load_Query",
        "Count": 5,
        "Miva_Request_Timestamp": int(time.time()),
    }


def test_sandbox_cli_serves_what_it_prints(start: object) -> None:
    proc, env = start()  # type: ignore[operator]
    assert env["MIVA_URL"].startswith("http://127.0.0.1:")
    assert not env["MIVA_URL"].startswith("http://127.0.0.1:0/")
    assert env["MIVA_STORE_CODE"] == "SANDBOX"
    assert env["MIVA_API_TOKEN"] and env["MIVA_SIGNING_KEY"]
    response = _post(env, _query(env))
    assert response.status_code == 200
    data = response.json()["data"]
    assert data["total_count"] == 40 and len(data["data"]) == 5
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0
    assert "40 orders" in proc.stderr.read()


def test_sandbox_cli_fixed_values_and_token_only(start: object) -> None:
    proc, env = start(  # type: ignore[operator]
        "--store-code",
        "DEMO",
        "--api-token",
        "tok 'quoted'",
        "--no-signing",
        "--seed",
        "4",
    )
    assert env["MIVA_STORE_CODE"] == "DEMO"
    assert env["MIVA_API_TOKEN"] == "tok 'quoted'"
    assert env["MIVA_SIGNING_KEY"] == ""
    assert _post(env, _query(env)).json()["success"] == 1
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=10) == 0


def test_sandbox_cli_uses_given_signing_key(start: object) -> None:
    key = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"
    proc, env = start("--signing-key", key, "--tie-order", "id")  # type: ignore[operator]
    assert env["MIVA_SIGNING_KEY"] == key
    assert _post(env, _query(env)).json()["success"] == 1
    wrong = dict(env, MIVA_SIGNING_KEY="AAAA")
    refused = _post(wrong, _query(env))
    assert refused.status_code == 200  # as a real store answers a refusal
    assert refused.json()["success"] == 0
    assert refused.json()["error_code"] == "access_denied"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0


def test_sandbox_cli_auth_error_401_quirk(start: object) -> None:
    """``--quirk auth-error-401``: a web-server layer in front answers refusals 401."""
    proc, env = start("--quirk", "auth-error-401")  # type: ignore[operator]
    assert _post(env, _query(env)).json()["success"] == 1
    wrong = dict(env, MIVA_API_TOKEN="nope")
    assert _post(wrong, _query(env)).status_code == 401
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=10) == 0

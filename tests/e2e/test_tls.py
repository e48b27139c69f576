"""TLS certificates are verified unless --insecure is asked for, with a warning."""

from __future__ import annotations

import http.server
import json
import shutil
import ssl
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.helpers import send_json


@pytest.fixture
def self_signed_store(tmp_path: Path) -> Iterator[str]:
    """An HTTPS 'store' on loopback with a self-signed certificate."""
    openssl = shutil.which("openssl")
    assert openssl, "the openssl command is needed to make a test certificate"
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )  # fmt: skip

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("Content-Length") or 0))
            body = json.dumps(
                {
                    "success": 1,
                    "data": {"total_count": 3, "start_offset": 0, "data": []},
                }
            ).encode()
            send_json(self, body)

        def log_message(self, *args: Any) -> None:
            return

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"https://127.0.0.1:{server.server_address[1]}/mm5/json.mvc"
    server.shutdown()
    server.server_close()


def test_tls_unverifiable_certificate_is_refused_by_default(
    run: Any, self_signed_store: str
) -> None:
    env = {"MIVA_URL": self_signed_store, "MIVA_STORE_CODE": "PS", "MIVA_API_TOKEN": "t" * 32,
           "MIVA_SYNC_RETRY_BUDGET": "0"}  # fmt: skip
    result = run(["check", "-q"], env=env)
    assert result.exit_code == 6
    assert "TLS error" in result.stderr


def test_tls_insecure_connects_with_a_warning(run: Any, self_signed_store: str) -> None:
    env = {
        "MIVA_URL": self_signed_store,
        "MIVA_STORE_CODE": "PS",
        "MIVA_API_TOKEN": "t" * 32,
    }
    result = run(["pull", "--since", "1d", "--insecure", "-o", "-"], env=env)
    assert result.exit_code == 0, result.stderr
    assert "TLS certificate verification is off" in result.stderr
    assert result.stderr.count("verification is off") == 1
    also = run(
        ["pull", "--since", "1d", "-o", "-"], env={**env, "MIVA_SYNC_INSECURE": "1"}
    )
    assert also.exit_code == 0, also.stderr


def test_regression_insecure_ignored_when_a_ca_bundle_variable_is_set(
    run: Any, self_signed_store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # requests lets REQUESTS_CA_BUNDLE override a session's verify=False
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
    env = {"MIVA_URL": self_signed_store, "MIVA_STORE_CODE": "PS", "MIVA_API_TOKEN": "t" * 32,
           "MIVA_SYNC_RETRY_BUDGET": "0"}  # fmt: skip
    result = run(["check", "-q", "--insecure"], env=env)
    assert result.exit_code == 0, result.stderr
    report = run(["check", "--json", "--insecure"], env=env)
    (tls,) = [c for c in json.loads(report.stdout)["checks"] if c["name"] == "TLS"]
    assert tls["status"] == "warn" and "not verified" in tls["detail"]


def test_tls_ca_bundle_variable_is_honoured(
    run: Any, self_signed_store: str, tmp_path: Path
) -> None:
    # the environment is read once per client (not per request): still honoured
    env = {"MIVA_URL": self_signed_store, "MIVA_STORE_CODE": "PS", "MIVA_API_TOKEN": "t" * 32,
           "MIVA_SYNC_RETRY_BUDGET": "0"}  # fmt: skip
    trusted = run(
        ["check", "-q"], env={**env, "REQUESTS_CA_BUNDLE": str(tmp_path / "cert.pem")}
    )
    assert trusted.exit_code == 0, trusted.stderr
    curl = run(
        ["check", "-q"],
        env={
            **env,
            "REQUESTS_CA_BUNDLE": None,
            "CURL_CA_BUNDLE": str(tmp_path / "cert.pem"),
        },
    )
    assert curl.exit_code == 0, curl.stderr


def test_tls_insecure_reaches_every_store_of_all_profiles(
    run: Any, self_signed_store: str, isolated_home: Path, tmp_path: Path
) -> None:
    config = isolated_home / "config.toml"
    config.write_text(
        f'[profiles.stage]\nurl = "{self_signed_store}"\nstore_code = "PS"\n'
        f'api_token = "{"t" * 32}"\noutput = "{tmp_path / "o.jsonl"}"\n'
        "retry_budget = 0\n"
    )
    config.chmod(0o600)
    refused = run(["pull", "--all-profiles", "--since", "1d"])
    assert refused.exit_code == 6, refused.stderr
    result = run(["--insecure", "pull", "--all-profiles", "--since", "1d"])
    assert result.exit_code == 0, result.stderr  # (the flag was not handed on)

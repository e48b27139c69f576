"""Helpers for tests that run the real CLI in subprocesses or serve stand-in stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from miva_sync.sandbox import Sandbox

CLI = [sys.executable, "-m", "miva_sync"]


def cli_env(sandbox: Sandbox, home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without MIVA_*, plus the sandbox's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    env.update(sandbox.env())
    env["MIVA_SYNC_HOME"] = str(home)
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str], expect: int | None = 0, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``miva-sync ARGS`` to the end; check its exit code unless ``expect`` is None."""
    done = subprocess.run(
        [*CLI, *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    if expect is not None:
        assert done.returncode == expect, done.stderr
    return done


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a JSON Lines file (a killed writer may leave half a line)."""
    if not path.exists():
        return []
    out = []
    for line in path.read_bytes().splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def kill_part_way(
    args: list[str], env: dict[str, str], out: Path, lines: int, after: float = 0.0
) -> int:
    """Run ``miva-sync ARGS`` and ``kill -9`` it once ``out`` holds ``lines``
    more lines than at the start (then ``after`` seconds more: somewhere inside
    the next page). Returns the exit status: -9 when the kill landed mid-run,
    which tests assert, so a run that finished first cannot pass as a crash test."""
    import time

    def count() -> int:
        return out.read_bytes().count(b"\n") if out.exists() else 0

    target = count() + lines
    proc = subprocess.Popen([*CLI, *args], env=env, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while proc.poll() is None and count() < target and time.monotonic() < deadline:
        time.sleep(0.005)
    time.sleep(after)
    proc.kill()
    return proc.wait(10)


def send_json(handler: BaseHTTPRequestHandler, data: bytes, status: int = 200) -> None:
    """Answer a stand-in store's request with ``data`` as a JSON body."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)

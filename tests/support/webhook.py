"""``miva-sync listen`` run as cron or systemd runs it: a real process on a free port."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.support.helpers import CLI

SECRET = "s3cret-path-0123456789abcdef"
START_LINE = re.compile(r"receiving at (http://127\.0\.0\.1:\d+)")
START_DEADLINE = 60.0  # seconds for a receiver to start on a busy machine


class Receiver:
    """``miva-sync listen --port 0 -o TARGET`` in a subprocess, with ``SECRET``.

    Everything it prints on stderr is collected in ``lines`` as it comes (a
    thread reads it, so a chatty receiver never blocks on a full pipe). The
    constructor returns once the receiver says where it listens, or once it
    ended without serving; ``must_serve`` makes the second case a failure.
    """

    def __init__(
        self,
        target: str | Path,
        home: Path,
        *,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
        must_serve: bool = True,
    ) -> None:
        self.target = str(target)
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
        full_env.update(env or {})
        full_env.update(MIVA_SYNC_HOME=str(home), MIVA_SYNC_WEBHOOK_SECRET=SECRET)
        self.proc = subprocess.Popen(
            [*CLI, "listen", "--port", "0", "-o", self.target, *args],
            env=full_env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.base = ""
        self.url = ""
        self.serving = self._wait_until_serving()
        if must_serve:
            assert self.serving, f"listen ended without serving: {self.lines}"

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()  # the end of stderr: it exited

    def _wait_until_serving(self) -> bool:
        deadline = time.monotonic() + START_DEADLINE
        with self._changed:
            while True:
                for line in self.lines:
                    found = START_LINE.search(line)
                    if found:
                        self.base = found.group(1)
                        self.url = f"{self.base}/webhook/{SECRET}"
                        return True
                if not self._reader.is_alive():
                    return False
                left = deadline - time.monotonic()
                assert left > 0, f"listen did not start in time: {self.lines}"
                self._changed.wait(left)

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    def post(
        self, body: Any, *, raw: bytes | None = None, path: str | None = None
    ) -> requests.Response:
        data = raw if raw is not None else json.dumps(body).encode()
        return requests.post(path or self.url, data=data, timeout=10)

    def deliver(self, order: dict[str, Any]) -> str:
        """POST one order; the receiver's verdict (written, unchanged, …)."""
        answer = self.post(order)
        assert answer.status_code == 200, answer.text
        result: str = answer.json()["result"]
        return result

    def stop(self) -> tuple[int, str, str]:
        """SIGTERM (if still running); the exit status, stdout and all of stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._reader.join(30)
        out = ""
        if self.proc.stdout and not self.proc.stdout.closed:
            out = self.proc.stdout.read()
            self.proc.stdout.close()
        return code, out, "".join(self.lines)

    def kill(self) -> None:
        """Make sure it is gone (a test's clean-up, whatever the test did)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._reader.join(10)
        if self.proc.stdout and not self.proc.stdout.closed:
            self.proc.stdout.close()


@pytest.fixture
def receivers() -> Iterator[list[Receiver]]:
    """Receivers a test started (append them): each is killed at the end."""
    started: list[Receiver] = []
    yield started
    for receiver in started:
        receiver.kill()


def targets(tmp_path: Path) -> dict[str, str]:
    """One target of each kind a receiver can write, by kind."""
    return {
        "jsonl": str(tmp_path / "w.jsonl"),
        "dir": f"{tmp_path / 'wdir'}/",
        "sqlite": f"sqlite:///{tmp_path / 'w.db'}",
    }

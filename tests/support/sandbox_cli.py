"""``miva-sync sandbox`` as a real process: what it prints on stdout, read as a shell would."""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import threading
from pathlib import Path

from tests.support.helpers import CLI

PID_VARIABLE = "MIVA_SANDBOX_PID"


class SandboxProcess:
    """``miva-sync sandbox ARGS`` in a subprocess; returns once its stdout is read.

    ``exports`` holds the ``export NAME=value`` lines, ``variables`` the plain
    ``NAME=value`` ones (``MIVA_SANDBOX_PID``). stderr is collected by a thread.
    """

    def __init__(self, *args: str, env: dict[str, str] | None = None) -> None:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
        self.proc = subprocess.Popen(
            [*CLI, "sandbox", *args],
            env={**clean, **(env or {})},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()
        self.exports: dict[str, str] = {}
        self.variables: dict[str, str] = {}
        assert self.proc.stdout is not None
        # the sandbox points stdout at /dev/null once its settings are out
        for line in self.proc.stdout:
            words = shlex.split(line)
            if words and words[0] == "export":
                name, _, value = words[1].partition("=")
                self.exports[name] = value
            elif words:
                name, _, value = words[0].partition("=")
                self.variables[name] = value

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        return int(self.variables[PID_VARIABLE])

    def stop(self) -> tuple[int, str]:
        """SIGTERM (if still running): the exit status and all of stderr."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(30)
        self._reader.join(30)
        return code, "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)
        self._reader.join(10)


def busy_port() -> socket.socket:
    """A socket listening on a free 127.0.0.1 port: that port is now busy."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock


def miva_sync_exe() -> Path:
    """This install's ``miva-sync`` console script (what pipx puts on PATH)."""
    import sys

    exe = Path(sys.executable).with_name("miva-sync")
    assert exe.exists(), f"no miva-sync script beside {sys.executable}"
    return exe

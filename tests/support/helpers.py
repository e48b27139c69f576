"""Helpers for tests that run the real CLI in subprocesses or serve stand-in stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from miva_sync.sandbox import Sandbox

CLI = [sys.executable, "-m", "miva_sync"]
# The real CLI with SIGINT at its default, whatever the test runner's shell
# ignores (a job started with & ignores SIGINT, and Python installs its
# KeyboardInterrupt handler only over the default): for tests that send it.
CLI_CTRL_C = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "os.execv(sys.executable, [sys.executable, '-m', 'miva_sync', *sys.argv[1:]])",
]


def cli_env(sandbox: Sandbox, home: Path, **extra: str) -> dict[str, str]:
    """This process's environment without MIVA_*, plus the sandbox's settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MIVA_")}
    env.update(sandbox.env())
    env["MIVA_SYNC_HOME"] = str(home)
    env.update(extra)
    return env


def wait_for(condition: Callable[[], object], what: str, timeout: float = 60) -> None:
    """Poll until ``condition()`` holds; a bound, not a timing assertion."""
    import time

    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    """A local TCP port nothing listens on now (for a server started by port)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


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


def read_orders(path: Path) -> list[dict[str, Any]]:
    """Every line of the JSON Lines output of runs that finished ([] before the
    first): unlike :func:`read_jsonl`, a broken line fails the test."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


class Puller:
    """``miva-sync pull`` in-process (conftest's ``run``), always appending to
    one output file; each call checks the exit code and returns stderr."""

    def __init__(self, run: Any, sandbox: Sandbox, out: Path) -> None:
        self.run, self.sandbox, self.out = run, sandbox, out

    def __call__(self, *args: str, expect: int = 0, **env: str) -> str:
        result = self.run(
            ["pull", *args, "-o", str(self.out), "--no-progress"],
            env={**self.sandbox.env(), **env},
        )
        assert result.exit_code == expect, result.stderr
        assert result.stdout == ""
        return str(result.stderr)

    @property
    def orders(self) -> list[dict[str, Any]]:
        return read_orders(self.out)

    @property
    def ids(self) -> set[int]:
        return {o["id"] for o in self.orders}


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


def pull_killed_repeatedly(
    args: list[str],
    env: dict[str, str],
    folder: Path,
    *,
    since: int,
    attempts: int,
    lines: Callable[[], int],
    after: Callable[[], float],
    between: Callable[[int], None] = lambda attempt: None,
) -> set[int]:
    """``attempts`` pulls (``args``; the first from ``since``, the rest resume),
    each into a new file and killed part-way (see :func:`kill_part_way`), then
    one clean resume. ``between(attempt)`` runs after each kill. Returns the ids
    of every order any of them wrote."""
    received: set[int] = set()
    for attempt in range(attempts):
        out = folder / f"kill{attempt}.jsonl"
        start = ["--since", str(since)] if attempt == 0 else []
        status = kill_part_way(
            [*args, "-o", str(out), *start], env, out, lines(), after()
        )
        assert status == -9, f"attempt {attempt} finished before the kill"
        received |= {o["id"] for o in read_jsonl(out)}
        between(attempt)
    final = folder / "final.jsonl"
    run_cli("pull", "--page-size", "50", "-o", str(final), env=env)
    return received | {o["id"] for o in read_jsonl(final)}


def saved_record(home: Path) -> dict[str, Any]:
    """The one store record in ``home``'s state file."""
    (record,) = json.loads((home / "state.json").read_text())["stores"].values()
    return record  # type: ignore[no-any-return]


def committed_orders(home: Path, out: Path) -> int:
    """How many of the orders in ``out`` the state file in ``home`` counts as
    committed: the whole lines before the offset its receipt saved."""
    offset = saved_record(home)["output"]["offset"]
    return out.read_bytes()[:offset].count(b"\n")


def held_ids(home: Path) -> set[int]:
    """The ids of the orders held (unpaid) in ``home``'s state file, any store."""
    from miva_sync.state.file import StateStore

    stores = StateStore(home / "state.json").all()
    return {int(i) for record in stores.values() for i in record.get("held", {})}


def assert_state_valid(home: Path) -> None:
    """The state file (if any) loads, and nothing was quarantined as corrupt."""
    from miva_sync.state.file import StateStore

    path = home / "state.json"
    if path.exists():
        StateStore(path).all()  # raises on anything corrupt
    assert not list(home.glob("state.json.corrupt-*"))


def set_at(document: Any, path: tuple[Any, ...], value: Any) -> None:
    """Set ``document[p0][p1]…`` to ``value``; the value ``"DELETE"`` removes the key."""
    for part in path[:-1]:
        document = document[part]
    if value == "DELETE":
        del document[path[-1]]
    else:
        document[path[-1]] = value


def write_config(home: Path, text: str, mode: int = 0o600) -> Path:
    """``home``'s config.toml with ``text``, private unless ``mode`` says otherwise."""
    path = home / "config.toml"
    path.write_text(text)
    path.chmod(mode)
    return path


def profile_toml(
    name: str, sb: Sandbox | None, out: Path | None = None, **extra: str | int
) -> str:
    """A ``[profiles.NAME]`` table reaching sandbox ``sb`` (its token unless
    ``api_token`` is given), writing to ``out``, with ``extra`` settings."""
    lines = [f"[profiles.{name}]"]
    settings: dict[str, str | int] = {}
    if sb is not None:
        settings.update(url=sb.url, store_code=sb.store_code, api_token=sb.api_token)
        settings["signing_key"] = sb.signing_key or ""
    if out is not None:
        settings["output"] = str(out)
    settings.update(extra)
    lines += [f"{key} = {json.dumps(value)}" for key, value in settings.items()]
    return "\n".join(lines) + "\n"


def send_json(handler: BaseHTTPRequestHandler, data: bytes, status: int = 200) -> None:
    """Answer a stand-in store's request with ``data`` as a JSON body."""
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.end_headers()
    handler.wfile.write(data)


class Gate:
    """Holds the sandbox's answer to its ``request``-th request (1-based) until
    :meth:`open`: a run of the real CLI stays mid-run, holding its lock, for
    as long as a test needs. ``entered`` is set once the request is held."""

    def __init__(self, sandbox: Sandbox, request: int, limit: float = 60) -> None:
        import threading

        self.entered, self._open = threading.Event(), threading.Event()

        def hold(store: object) -> None:
            self.entered.set()
            self._open.wait(limit)

        sandbox.after_request(request, hold)

    def open(self) -> None:
        self._open.set()

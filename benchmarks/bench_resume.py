"""Start-up and the empty resume: how soon a cron run's first request leaves (issue 23).

Run from a checkout (after ``pip install -e '.[test]'``):

    python benchmarks/bench_resume.py                   # 20,000 orders, 3 rounds
    python benchmarks/bench_resume.py --orders 5000 --rounds 2

One ``miva-sync sandbox`` process (no latency) is reached through a small
recording proxy in this process (127.0.0.1, a free port): it forwards every
request and notes ``time.monotonic()`` when the first one of a run arrives.
CLOCK_MONOTONIC is system-wide on Linux, so that time less a monotonic stamp
taken just before the child is spawned is the child's start-up up to its first
request: interpreter, imports, settings, the state file's load, the output's
opening, the request's signing and sending.

Two stores' states are made by a first pull each (``--since 0``): one with a
lookback longer than the sandbox's 90 days of orders, so its dedupe window
holds every order (a full window), and one with the default 15 minutes (a
small state). Then, interleaved over rounds (the order rotating), each in a
fresh process:

(a) ``python -c "import requests, orjson, click"`` (its whole wall time)
(b) a bare ``miva-sync pull -o SAME_FILE`` over the full state: spawn to first request
(c) the same over the small state

Targets: (b) and (c) within 1.3x of (a) (medians), and an empty resume sends
one request per page of its window (the run's own ``--json`` summary counts
the pages; the proxy counts what arrived). Nothing is asserted.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests
from bench_pull import (
    PYTHON,
    Target,
    run_alone,
    sandbox,
    target_row,
    timed,
    tool_argv,
)

REPEATS = 3  # samples of each variant per round: start-up is short and noisy
FULL_LOOKBACK = "91d"  # the sandbox's orders span the last 90 days
PAGE_SIZE = 100  # pull's default --page-size
BASELINE = [PYTHON, "-c", "import requests, orjson, click"]
# hop-by-hop and framing headers: the proxy sets its own
_DROPPED = {"host", "connection", "keep-alive", "content-length", "transfer-encoding"}


class Recorder:
    """What the proxy saw since the last :meth:`reset`: the first request's
    arrival (``time.monotonic()``) and how many requests came."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.first: float | None = None
        self.count = 0
        self.lock = threading.Lock()
        self.sessions = threading.local()  # a requests.Session per server thread

    def reset(self) -> None:
        with self.lock:
            self.first, self.count = None, 0

    def arrived(self) -> None:
        now = time.monotonic()
        with self.lock:
            self.count += 1
            if self.first is None:
                self.first = now

    def session(self) -> requests.Session:
        found: requests.Session | None = getattr(self.sessions, "s", None)
        if found is None:
            found = self.sessions.s = requests.Session()
        return found


def _handler(recorder: Recorder) -> type[BaseHTTPRequestHandler]:
    class Forward(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as miva-sync uses it

        def do_POST(self) -> None:
            recorder.arrived()  # first: the headers have just been read
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in _DROPPED
            }
            answer = recorder.session().post(
                recorder.upstream, data=body, headers=headers, stream=True
            )
            data = answer.raw.read(decode_content=False)  # the bytes as sent
            self.send_response(answer.status_code)
            for name, value in answer.headers.items():
                if name.lower() not in _DROPPED:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            return  # quiet

    return Forward


@contextmanager
def recording_proxy(upstream: str) -> Iterator[tuple[str, Recorder]]:
    """A forwarding proxy on 127.0.0.1; yields (its URL, its recorder)."""
    recorder = Recorder(upstream)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(recorder))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    path = "/" + upstream.split("://", 1)[1].partition("/")[2]
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}{path}", recorder
    finally:
        server.shutdown()
        server.server_close()


def bare_pull(out: Path, *extra: str) -> list[str]:
    return [PYTHON, "-m", "miva_sync", "pull", "-o", str(out), "--no-progress", *extra]


def first_request(argv: list[str], env: dict[str, str], recorder: Recorder) -> float:
    """Seconds from spawning ``argv`` to its first request at the proxy."""
    recorder.reset()
    spawned = time.monotonic()
    timed(argv, env)  # runs to its end: the resume must succeed
    if recorder.first is None:
        raise SystemExit(f"{argv[:5]} sent no request")
    return recorder.first - spawned


def window_counts(
    argv: list[str], env: dict[str, str], recorder: Recorder
) -> dict[str, Any]:
    """One more resume with ``--json``: the run's own counts, and the proxy's."""
    recorder.reset()
    done = subprocess.run(
        [*argv, "--json"], env=env, capture_output=True, text=True, check=True
    )
    summary: dict[str, Any] = json.loads(done.stdout)
    summary["arrived"] = recorder.count
    return summary


def dedupe_entries(home: Path) -> int:
    stores = json.loads((home / "state.json").read_bytes())["stores"]
    return sum(len(record.get("dedupe", {})) for record in stores.values())


def run(workdir: Path, orders: int, rounds: int) -> list[Target]:
    with (
        sandbox(orders, 0) as (env, generated),
        recording_proxy(env["MIVA_URL"]) as (
            url,
            recorder,
        ),
    ):
        timed(BASELINE, env)  # its bytecode cached (cache_bytecode) before timing
        print(f"\n## resume: start-up to the first request, {orders:,} orders, "
              f"{rounds} rounds x {REPEATS} (sandbox generated in {generated:.1f} s)")  # fmt: skip
        # the proxy's URL is the store's URL: the state key is made from it
        states: dict[str, tuple[dict[str, str], list[str]]] = {}
        for name, first in (("full", ("--lookback", FULL_LOOKBACK)), ("small", ())):
            home = workdir / f"resume-{name}"
            home.mkdir()
            out = workdir / f"resume-{name}.jsonl"
            reach = {**env, "MIVA_URL": url, "MIVA_SYNC_HOME": str(home)}
            timed(tool_argv(str(out), *first), reach)
            states[name] = (reach, bare_pull(out))
            size = (home / "state.json").stat().st_size
            print(f"{name} state: {dedupe_entries(home):,} dedupe entries, "
                  f"{size / 1024:,.0f} KiB")  # fmt: skip
        times: dict[str, list[float]] = {"import": [], "full": [], "small": []}
        walls: dict[str, list[float]] = {"full": [], "small": []}
        names = list(times)
        for n in range(rounds * REPEATS):
            for name in names[n % 3 :] + names[: n % 3]:
                if name == "import":
                    times[name].append(timed(BASELINE, env).wall)
                    continue
                reach, argv = states[name]
                started = time.perf_counter()
                times[name].append(first_request(argv, reach, recorder))
                walls[name].append(time.perf_counter() - started)
        counts = {
            name: window_counts(argv, reach, recorder)
            for name, (reach, argv) in states.items()
        }
    return report(times, walls, counts)


def report(
    times: dict[str, list[float]],
    walls: dict[str, list[float]],
    counts: dict[str, dict[str, Any]],
) -> list[Target]:
    base = statistics.median(times["import"])
    print(f"import requests, orjson, click: {base * 1000:.1f} ms (median of "
          f"{len(times['import'])}, min {min(times['import']) * 1000:.1f})")  # fmt: skip
    rows: list[Target] = []
    for name, label in (("full", "full dedupe window"), ("small", "15-minute window")):
        first = statistics.median(times[name])
        c = counts[name]
        window = c["emitted"] + c["unchanged"]
        least = max(1, math.ceil(window / PAGE_SIZE))
        print(f"{name}: first request {first * 1000:.1f} ms (min "
              f"{min(times[name]) * 1000:.1f}) = {first / base:.2f}x import; whole "
              f"resume {statistics.median(walls[name]):.2f} s; {window:,} orders in "
              f"its window, {c['pages']} pages ({least} at {PAGE_SIZE} a page), "
              f"{c['requests']} requests ({c['arrived']} arrived at the proxy)")  # fmt: skip
        rows += [
            target_row(f"Resume: first request / import ({label})", first / base, "<= 1.3"),
            target_row(f"Resume: requests per page ({label})",
                       c["arrived"] / max(c["pages"], 1), "<= 1.0"),
        ]  # fmt: skip
    return rows


def main() -> None:
    run_alone(run, __doc__ or "")


if __name__ == "__main__":
    main()

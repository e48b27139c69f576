"""PostgreSQL against JSON Lines for the same pull, and round trips per 1,000 orders.

Run from a checkout (``pip install -e '.[test]'`` brings psycopg), alone or from
``bench_pull.py``:

    python benchmarks/bench_postgres.py --orders 20000 --rounds 3

Starts a throwaway PostgreSQL server the way the tests do
(tests/support/pg_fixtures.py: initdb and pg_ctl on 127.0.0.1), then turns its
durability back on (``fsync``, ``synchronous_commit``, ``full_page_writes``:
the tests switch them off, a real server has them, and the JSON Lines pull it
is compared with fsyncs every commit). A sandbox serves N full orders; the
rounds interleave ``pull --since 0 -o FILE.jsonl`` and ``-o postgresql://…``,
each a fresh process with fresh state, the PostgreSQL one into a fresh
database. The ratio is of the medians.

Round trips are counted outside the tool, by one more (untimed) PostgreSQL
pull through a loopback TCP relay: every time the client sends after the
server has answered is one round trip (a turn). That counts what the network
sees, whatever the sink's code believes it does: the connection, the
migration, the lock and checkpoint reads, every page's writes and commits.
"""

from __future__ import annotations

import contextlib
import socket
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

from bench_pull import (
    Series,
    Target,
    run_alone,
    sandbox,
    target_row,
    timed,
    tool_argv,
)

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))  # for tests.support.pg_fixtures

RATIO = "PostgreSQL / JSONL wall"
TRIPS = "PostgreSQL round trips per 1,000 orders"
# What the tests switch off for speed and a production server keeps on.
DURABLE = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}


class TurnCounter:
    """A loopback TCP relay to ``upstream`` that counts request/response turns.

    One turn is a burst of bytes from a client that follows bytes from the
    server (or opens the connection): the client had to wait for an answer
    before it could go on, so each turn costs one network round trip.
    """

    def __init__(self, upstream: tuple[str, int]) -> None:
        self.upstream = upstream
        self.turns = 0
        self.connections = 0
        self._lock = threading.Lock()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = int(self._listener.getsockname()[1])
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.upstream)
            for sock in (client, server):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            # last[0]: who sent last on this connection ("client"/"server"/None)
            last: list[str | None] = [None]
            with self._lock:
                self.connections += 1
            for args in (
                (client, server, "client", last),
                (server, client, "server", last),
            ):
                threading.Thread(target=self._pump, args=args, daemon=True).start()

    def _pump(
        self, src: socket.socket, dst: socket.socket, side: str, last: list[str | None]
    ) -> None:
        with contextlib.suppress(OSError):
            while data := src.recv(1 << 16):
                with self._lock:
                    if side == "client" and last[0] != "client":
                        self.turns += 1
                    last[0] = side
                dst.sendall(data)
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)


def _server_available() -> str | None:
    """Why a PostgreSQL server cannot be started here, or None."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    from tests.support.pg_fixtures import find_binaries

    if find_binaries() is None:
        return "no PostgreSQL binaries (initdb, pg_ctl) on PATH or in /usr/lib/postgresql/*/bin"
    return None


@contextlib.contextmanager
def _server() -> Iterator[object]:
    """The tests' throwaway server, with a production server's durability."""
    import psycopg
    import pytest

    from tests.support.pg_fixtures import running_server

    try:
        with running_server() as server:
            with psycopg.connect(server.url(), autocommit=True) as conn:
                for name, value in DURABLE.items():
                    conn.execute(f"ALTER SYSTEM SET {name} = {value}")
                conn.execute("SELECT pg_reload_conf()")
            yield server
    except (pytest.skip.Exception, pytest.fail.Exception) as exc:
        # the fixture's way of saying it cannot start a server: say it, plainly
        raise RuntimeError(str(exc)) from None


def run(workdir: Path, orders: int, rounds: int) -> list[Target]:
    print(f"\n## PostgreSQL against JSON Lines, {orders:,} orders, 0 ms latency")
    missing = _server_available()
    if missing is not None:
        print(f"PostgreSQL benchmark skipped: {missing}")
        return [(RATIO, "-", "<= 1.5", None)]
    try:
        with _server() as server, sandbox(orders, 0) as (env, generated):
            return _measure(server, env, generated, workdir, orders, rounds)
    except RuntimeError as exc:
        print(f"PostgreSQL benchmark skipped: {exc}")
        return [(RATIO, "-", "<= 1.5", None)]


def _measure(
    server: object,
    env: dict[str, str],
    generated: float,
    workdir: Path,
    orders: int,
    rounds: int,
) -> list[Target]:
    from tests.support.pg_fixtures import PostgresServer

    assert isinstance(server, PostgresServer)  # noqa: S101 - narrows the type
    print(f"(sandbox generated in {generated:.1f} s; server durability on: "
          f"{', '.join(DURABLE)})")  # fmt: skip
    jsonl = workdir / "pg-bench.jsonl"

    def fresh_env() -> dict[str, str]:
        return {**env, "MIVA_SYNC_HOME": tempfile.mkdtemp(dir=workdir)}

    def argv(name: str) -> list[str]:
        if name == "jsonl":
            jsonl.unlink(missing_ok=True)
            return tool_argv(str(jsonl))
        return tool_argv(server.url(server.create_database()))  # a fresh database

    results: dict[str, Series] = {"jsonl": Series(), "postgres": Series()}
    names = list(results)
    for n in range(rounds):
        for name in names[n % 2 :] + names[: n % 2]:  # A B, B A, ...
            results[name].runs.append(timed(argv(name), fresh_env()))
    relay = TurnCounter((server.host, server.port))
    try:
        database = server.create_database()
        through = f"postgresql://{server.user}@127.0.0.1:{relay.port}/{database}"
        counted = timed(tool_argv(through), fresh_env())
    finally:
        relay.close()
    print(f"{'variant':<10} {'wall s':>7} {'orders/s':>9} {'cpu s':>6} {'RSS MiB':>8}")
    for name, series in results.items():
        wall = series.median("wall")
        print(f"{name:<10} {wall:7.2f} {orders / wall:9,.0f} "
              f"{series.median('cpu'):6.2f} {series.median('rss_mib'):8.1f}")  # fmt: skip
    ratio = results["postgres"].median("wall") / results["jsonl"].median("wall")
    per_1000 = relay.turns / orders * 1000
    pages = counted.requests
    print(f"PostgreSQL/JSONL wall {ratio:.2f} (cpu "
          f"{results['postgres'].median('cpu') / results['jsonl'].median('cpu'):.2f})")  # fmt: skip
    print(f"round trips: {relay.turns} over {relay.connections} connection(s) for "
          f"{orders:,} orders in {pages if pages is not None else '?'} store requests: "
          f"{per_1000:.1f} per 1,000 orders "
          f"(the counted pull took {counted.wall:.2f} s through the relay)")  # fmt: skip
    return [
        target_row(RATIO, ratio, "<= 1.5"),
        (TRIPS, f"{per_1000:.1f}", "report", None),
    ]


def main() -> None:
    run_alone(run, __doc__ or "")


if __name__ == "__main__":
    main()

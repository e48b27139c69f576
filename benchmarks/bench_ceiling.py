"""How fast could any parallel backfill be on this host? A yardstick for ``--workers``.

Run from a checkout (after ``pip install -e '.[test]'``):

    python benchmarks/bench_ceiling.py                 # 20,000 orders, 20 ms, 4 workers
    python benchmarks/bench_ceiling.py --latency 50 --workers 8

``--workers N``'s speed-up depends on the host: under one GIL it cannot pass
about ``1 + latency / CPU per page``. This script measures the best a design
could do here: N forked processes that each fetch, parse and encode their share
of the pages (offset paging, safe because the sandbox runs with ties in id
order), while the parent only writes the lines they send: no dedupe, no state,
no fsync, no threads. It times, interleaved over rounds, ``miva-sync pull
--workers 1``, ``miva-sync pull --workers N`` and that ideal, against the same
sandbox process, and prints each one's speed-up over ``--workers 1``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import tempfile
from multiprocessing.connection import Connection, wait
from pathlib import Path

from bench_pull import PYTHON, Series, lines_of, sandbox, timed, tool_argv

PAGE = 100


def fetch_share(offsets: list[int], conn: Connection) -> None:
    """A forked worker: fetch, parse and encode its pages; send each page's lines."""
    from miva_sync.base.jsonio import dumps
    from miva_sync.store.client import MivaClient
    from miva_sync.store.query import DEFAULT_COLUMNS, Condition, ListQuery

    env = os.environ
    client = MivaClient(
        env["MIVA_URL"],
        env["MIVA_STORE_CODE"],
        env["MIVA_API_TOKEN"],
        signing_key=env.get("MIVA_SIGNING_KEY") or None,
    )
    query = (
        ListQuery(count=PAGE)
        .where(Condition("orderdate", "GE", 0))
        .sorted_by("orderdate")
        .with_columns(DEFAULT_COLUMNS)
    )
    with client:
        for offset in offsets:
            page = client.list_orders(query.page(PAGE, offset))
            lines = [dumps(order) for order in page.orders]
            lines.append(b"")
            conn.send_bytes(b"\n".join(lines))
    conn.send_bytes(b"")  # this share is done
    conn.close()


def ideal(out: Path, orders: int, workers: int) -> None:
    """The parent of the ideal design: fork the workers, write what they send."""
    fork = multiprocessing.get_context("fork")
    offsets = list(range(0, orders, PAGE))
    pending: list[Connection] = []
    processes = []
    for n in range(workers):
        receiver, sender = fork.Pipe(duplex=False)
        process = fork.Process(target=fetch_share, args=(offsets[n::workers], sender))
        process.start()
        sender.close()
        pending.append(receiver)
        processes.append(process)
    with out.open("wb") as file:
        while pending:
            for conn in wait(pending):
                data = conn.recv_bytes()  # type: ignore[union-attr]
                if data:
                    file.write(data)
                else:
                    pending.remove(conn)  # type: ignore[arg-type]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise SystemExit(f"a worker failed ({process.exitcode})")


def ideal_argv(out: str, orders: int, workers: int) -> list[str]:
    """The command that runs the ideal design once (a fresh process, like the tool)."""
    return [PYTHON, __file__, "--ideal", out,
            "--orders", str(orders), "--workers", str(workers)]  # fmt: skip


def count_lines(path: Path) -> int:
    """Lines in a file, read a MiB at a time: a benchmark process that held the
    whole output would pass that memory on to the peak RSS of every child it forks."""
    with path.open("rb") as file:
        return sum(
            block.count(b"\n") for block in iter(lambda: file.read(1 << 20), b"")
        )


def interleaved(
    variants: dict[str, list[str]],
    env: dict[str, str],
    workdir: Path,
    out: Path,
    orders: int,
    rounds: int,
    digests: dict[str, str] | None = None,
) -> dict[str, Series]:
    """Time each variant once per round, the order rotating each round.

    Every variant writes ``out`` (removed before each run, checked for one line
    per order after it) and gets a fresh ``MIVA_SYNC_HOME``, so each tool run
    is a first pull. One sandbox serves them all, so the ratios compare like
    with like on a shared, noisy host. ``digests``, when given, receives each
    variant's first output as ``lines_of`` digests it (same orders, same bytes).
    """
    runs: dict[str, Series] = {name: Series() for name in variants}
    names = list(variants)
    for n in range(rounds):
        for name in names[n % len(names) :] + names[: n % len(names)]:
            out.unlink(missing_ok=True)
            home = tempfile.mkdtemp(dir=workdir)
            runs[name].runs.append(
                timed(variants[name], {**env, "MIVA_SYNC_HOME": home})
            )
            lines = count_lines(out)
            if lines != orders:
                sys.exit(f"{name} wrote {lines} lines, not {orders}")
            if digests is not None and name not in digests:
                digests[name] = lines_of(out)
    out.unlink(missing_ok=True)
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--latency", type=int, default=20, help="ms per request")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--ideal", type=Path, help=argparse.SUPPRESS)  # the child run
    args = parser.parse_args()
    if args.ideal:
        ideal(args.ideal, args.orders, args.workers)
        return

    workdir = Path(tempfile.mkdtemp(prefix="miva-ceiling-"))
    out = workdir / "out.jsonl"
    variants = {
        "tool --workers 1": tool_argv(str(out), "--workers", "1"),
        f"tool --workers {args.workers}": tool_argv(
            str(out), "--workers", str(args.workers)
        ),
        f"ideal, {args.workers} processes": ideal_argv(
            str(out), args.orders, args.workers
        ),
    }
    try:
        with sandbox(args.orders, args.latency) as (env, generated):
            print(f"# {args.orders:,} orders, {args.latency} ms per request, "
                  f"{os.cpu_count()} CPUs (sandbox generated in {generated:.1f} s)")  # fmt: skip
            runs = interleaved(variants, env, workdir, out, args.orders, args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    base = runs["tool --workers 1"].median("wall")
    print(f"{'variant':<24} {'wall s':>7} {'cpu s':>6} {'speed-up':>9}")
    for name, series in runs.items():
        wall = series.median("wall")
        print(f"{name:<24} {wall:7.2f} {series.median('cpu'):6.2f} {base / wall:8.2f}x")


if __name__ == "__main__":
    main()

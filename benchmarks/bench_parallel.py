"""``--workers`` against the ceiling this host allows, in one run (issue 23).

Run from a checkout (after ``pip install -e '.[test]'``):

    python benchmarks/bench_parallel.py                 # 20,000 orders, 3 rounds
    python benchmarks/bench_parallel.py --orders 5000 --rounds 2

One ``miva-sync sandbox`` process at 20 ms per request serves, interleaved over
rounds (the order rotating each round), ``miva-sync pull --workers 1``, ``4``
and ``8`` and the ideal of ``bench_ceiling.py`` (4 forked processes that only
fetch, parse and encode, a parent that only writes). The ideal is the ceiling:
under one GIL the tool's speed-up cannot pass it. Targets: ``--workers 4``
reaches at least 0.9 of the ideal's speed-up, and ``--workers 8`` is no
slower than 4. Every variant must write every order; the first round's
outputs are compared line for line (sorted).
"""

from __future__ import annotations

from pathlib import Path

from bench_ceiling import ideal_argv, interleaved
from bench_pull import (
    Series,
    Target,
    run_alone,
    sandbox,
    target_row,
    tool_argv,
)

LATENCY = 20  # ms per request: the figure
IDEAL_WORKERS = 4  # the ceiling bench_ceiling.py measures by default


def run(workdir: Path, orders: int, rounds: int) -> list[Target]:
    out = workdir / "parallel.jsonl"
    variants = {
        "workers1": tool_argv(str(out), "--workers", "1"),
        "workers4": tool_argv(str(out), "--workers", "4"),
        "workers8": tool_argv(str(out), "--workers", "8"),
        "ideal4": ideal_argv(str(out), orders, IDEAL_WORKERS),
    }
    digests: dict[str, str] = {}
    with sandbox(orders, LATENCY) as (env, generated):
        print(f"\n## --workers against the ceiling: {orders:,} orders, {LATENCY} ms "
              f"latency, {rounds} rounds (sandbox generated in {generated:.1f} s)")  # fmt: skip
        runs = interleaved(variants, env, workdir, out, orders, rounds, digests)
    return report(runs, digests)


def report(runs: dict[str, Series], digests: dict[str, str]) -> list[Target]:
    base = runs["workers1"].median("wall")
    print(f"{'variant':<10} {'wall s':>7} {'cpu s':>6} {'RSS MiB':>8} "
          f"{'requests':>8} {'speed-up':>9}")  # fmt: skip
    for name, series in runs.items():
        wall = series.median("wall")
        requests = series.requests if series.requests is not None else "-"
        print(f"{name:<10} {wall:7.2f} {series.median('cpu'):6.2f} "
              f"{series.median('rss_mib'):8.1f} {requests:>8} {base / wall:8.2f}x")  # fmt: skip
    same = len(set(digests.values())) == 1
    print(f"same lines from --workers 1, 4, 8 and the ideal: {same}")
    w4 = base / runs["workers4"].median("wall")
    ideal = base / runs["ideal4"].median("wall")
    w8_w4 = runs["workers8"].median("wall") / runs["workers4"].median("wall")
    print(f"--workers 4 {w4:.2f}x, ideal {ideal:.2f}x: {w4 / ideal:.2f} of the "
          f"ceiling; --workers 8 / 4 wall {w8_w4:.2f}")  # fmt: skip
    return [
        (f"Parallel: --workers 4 speed-up over 1 ({LATENCY} ms)", f"{w4:.2f}x", "-", None),
        (f"Parallel: ideal ({IDEAL_WORKERS} processes) speed-up", f"{ideal:.2f}x", "-", None),
        target_row("Parallel: --workers 4 / ideal speed-up", w4 / ideal, ">= 0.9"),
        target_row("Parallel: --workers 8 / 4 wall", w8_w4, "<= 1.0"),
    ]  # fmt: skip


def main() -> None:
    run_alone(run, __doc__ or "")


if __name__ == "__main__":
    main()

"""miva-sync against a floor client and the official SDK, side by side, as ratios.

Run from a checkout (after ``pip install -e '.[test]'``, which brings the SDK):

    python benchmarks/bench_pull.py                     # everything: 20,000 orders, 3 rounds
    python benchmarks/bench_pull.py --orders 5000 --rounds 2 --only pull,startup

Starts ``miva-sync sandbox`` as its own process (N full orders, every on-demand
column, ties in id order so the offset-paging floor and SDK see each order
once), then times, interleaved over several rounds (the order rotates each
round), each in a fresh process so CPU and peak RSS are per process:

(a) ``miva-sync pull --since 0 -o FILE.jsonl`` (a first pull, fresh state)
(b) the floor: ``benchmarks/floor_client.py`` (requests + stdlib json, no fsync)
(c) the SDK: ``benchmarks/sdk_client.py`` (merchantapi paging the same query)
(d) ``-o sqlite:///…`` for the same pull

and a resume (a bare ``pull`` after a first pull) for requests per 1,000
orders (section ``pull``, at each ``--latency``; the targets come from the
first). Then peak RSS at 10,000 against 100,000 orders (``flat``), start-up
(``--version``, ``--help`` against ``python -c "import click"``: ``startup``),
and the sections that are scripts of their own, each run as its own process
(a child's peak RSS counts the memory of the process that forks it):
``bench_postgres.py``, ``bench_parallel.py``, ``bench_resume.py`` and
``bench_queue.py``. Prints medians, ratios and one table of the issue's
targets. No assertions: the figures go into benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

HERE = Path(__file__).resolve().parent
PYTHON = sys.executable
SDK_OK = True
try:
    import merchantapi  # noqa: F401 - only checks that the SDK is installed
except ImportError:
    SDK_OK = False


# One row of the closing table: (figure, measured, target, met); met None: a
# figure reported without a target. Every section returns its rows.
Target = tuple[str, str, str, "bool | None"]


def target_row(
    figure: str, value: float | None, target: str, fmt: str = "{:.2f}"
) -> Target:
    """A row for a ratio or a figure against a target like "<= 0.45" or ">= 0.9"."""
    if value is None:
        return (figure, "-", target, None)
    op, _, bound = target.partition(" ")
    met = value <= float(bound) if op == "<=" else value >= float(bound)
    return (figure, fmt.format(value), target, met)


def print_targets(rows: list[Target]) -> None:
    print("\n## targets (issue 23)")
    width = max(len(r[0]) for r in rows)
    for figure, measured, target, met in rows:
        verdict = "report" if met is None else ("met" if met else "MISSED")
        print(f"{figure:<{width}}  {measured:>10}  {target:<10}  {verdict}")


@dataclass
class Run:
    wall: float
    cpu: float
    rss_mib: float
    requests: int | None
    stderr: str


@dataclass
class Series:
    runs: list[Run] = field(default_factory=list)

    def median(self, attr: str) -> float:
        return statistics.median(getattr(r, attr) for r in self.runs)

    @property
    def requests(self) -> int | None:
        return self.runs[-1].requests if self.runs else None


def timed(argv: list[str], env: dict[str, str]) -> Run:
    """Run one process; wall, CPU (user+sys) and peak RSS from os.wait4."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stderr is not None  # noqa: S101
    err = proc.stderr.read().decode("utf-8", "replace")
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"{argv[:4]} failed ({proc.returncode}):\n{err}")
    found = re.search(r"(\d+) requests", err)
    return Run(
        wall,
        usage.ru_utime + usage.ru_stime,
        usage.ru_maxrss / 1024,  # KiB on Linux
        int(found.group(1)) if found else None,
        err,
    )


@contextmanager
def sandbox(orders: int, latency: int) -> Iterator[tuple[dict[str, str], float]]:
    """A sandbox process; yields (environment to reach it, seconds to generate)."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        [PYTHON, "-m", "miva_sync", "sandbox", "--port", "0", "--orders", str(orders),
         "--latency", str(latency), "--tie-order", "id", "--seed", "1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.stdout is not None  # noqa: S101
    env = dict(os.environ)
    for line in proc.stdout.read().decode().splitlines():  # closed once ready
        name, _, value = line.removeprefix("export ").partition("=")
        env[name] = value.strip("'")
    generated = time.perf_counter() - started
    try:
        yield env, generated
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def columns() -> str:
    from miva_sync.store.query import DEFAULT_COLUMNS

    return ",".join(DEFAULT_COLUMNS)


def cache_bytecode() -> None:
    """Child processes use cached bytecode, as an installed package has it (pip
    compiles it): a PYTHONDONTWRITEBYTECODE in the caller's environment would
    make every start compile all of miva-sync again. The package is compiled
    now (into its __pycache__ folders, which git ignores), so that no timed run
    pays for it."""
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    package = HERE.parent / "miva_sync"
    subprocess.run([PYTHON, "-m", "compileall", "-q", str(package)], check=True)


def tool_argv(out: str, *extra: str) -> list[str]:
    return [PYTHON, "-m", "miva_sync", "pull", "--since", "0", "-o", out,
            "--no-progress", *extra]  # fmt: skip


def lines_of(path: Path) -> str:
    """A digest of the file's sorted lines (and their count).

    Computed in a child process: a benchmark process holding 100 MB of lines
    would pass that memory to every child it forks, and their peak RSS with it.
    """
    code = (
        "import hashlib, sys\n"
        "lines = sorted(open(sys.argv[1], 'rb').read().splitlines())\n"
        "print(hashlib.sha256(b'\\n'.join(lines)).hexdigest()[:16], len(lines))\n"
    )
    done = subprocess.run(
        [PYTHON, "-c", code, str(path)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def profile(
    orders: int, latency: int, rounds: int, workdir: Path, extras: bool
) -> list[Target]:
    results: dict[str, Series] = {}
    with sandbox(orders, latency) as (env, generated):
        print(f"\n## {orders:,} orders, {latency} ms latency "
              f"(sandbox generated in {generated:.1f} s)")  # fmt: skip
        cols = columns()

        def fresh_env() -> dict[str, str]:
            home = Path(tempfile.mkdtemp(dir=workdir))
            return {**env, "MIVA_SYNC_HOME": str(home)}

        variants: dict[str, list[str]] = {
            "tool": tool_argv(str(workdir / "tool.jsonl")),
            "floor": [PYTHON, str(HERE / "floor_client.py"),
                      str(workdir / "floor.jsonl"), "--columns", cols],
        }  # fmt: skip
        if SDK_OK:
            variants["sdk"] = [PYTHON, str(HERE / "sdk_client.py"),
                               str(workdir / "sdk.jsonl"), "--columns", cols]  # fmt: skip
        if extras:
            variants["sqlite"] = tool_argv(f"sqlite:///{workdir / 'tool.db'}")
        names = list(variants)
        for n in range(rounds):
            order = names[n % len(names) :] + names[: n % len(names)]
            for name in order:
                for stale in workdir.glob("*.jsonl"):
                    if stale.name.startswith(("tool", "floor", "sdk")):
                        stale.unlink()
                for stale in workdir.glob("tool.db*"):
                    stale.unlink()
                run = timed(variants[name], fresh_env())
                results.setdefault(name, Series()).runs.append(run)
                if n == 0 and name == "floor":
                    floor_lines = lines_of(workdir / "floor.jsonl")
                if n == 0 and name == "tool":
                    tool_lines = lines_of(workdir / "tool.jsonl")
        print(f"tool lines byte-identical to the floor's: {tool_lines == floor_lines}")
        if extras:
            # resume: a first pull, then a bare pull over the same state
            home_env = fresh_env()
            timed(tool_argv(str(workdir / "r.jsonl")), home_env)
            resume = timed(
                [PYTHON, "-m", "miva_sync", "pull", "-o", str(workdir / "r.jsonl"),
                 "--no-progress"], home_env)  # fmt: skip
            results["resume"] = Series([resume])
            found = re.search(r"(\d+) orders emitted, (\d+) unchanged", resume.stderr)
            print(f"resume: {resume.requests} requests, "
                  f"{found.group(1) if found else '?'} emitted, "
                  f"{found.group(2) if found else '?'} unchanged re-read")  # fmt: skip
    return report(results, orders)


def report(results: dict[str, Series], orders: int) -> list[Target]:
    print(f"{'variant':<10} {'wall s':>7} {'orders/s':>9} {'cpu s':>6} "
          f"{'RSS MiB':>8} {'requests':>8}")  # fmt: skip
    for name, series in results.items():
        wall = series.median("wall")
        print(f"{name:<10} {wall:7.2f} {orders / wall:9,.0f} "
              f"{series.median('cpu'):6.2f} {series.median('rss_mib'):8.1f} "
              f"{series.requests if series.requests is not None else '-':>8}")  # fmt: skip

    def ratio(a: str, b: str, attr: str = "wall") -> float | None:
        if a not in results or b not in results:
            return None
        return results[a].median(attr) / results[b].median(attr)

    def shown(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f}"

    print(f"tool/floor wall {shown(ratio('tool', 'floor'))}, "
          f"cpu {shown(ratio('tool', 'floor', 'cpu'))}; "
          f"tool/SDK wall {shown(ratio('tool', 'sdk'))}, "
          f"cpu {shown(ratio('tool', 'sdk', 'cpu'))}; "
          f"SDK/floor wall {shown(ratio('sdk', 'floor'))}")  # fmt: skip
    rows = [
        target_row(f"JSONL pull: tool / floor wall ({orders:,} orders)",
                   ratio("tool", "floor"), "<= 0.45"),
        target_row("JSONL pull: tool / SDK wall", ratio("tool", "sdk"), "<= 0.35"),
    ]  # fmt: skip
    if "tool" in results and "floor" in results:
        diff = results["tool"].median("rss_mib") - results["floor"].median("rss_mib")
        print(f"RSS tool - floor: {diff:+.1f} MiB")
        rows.append(target_row("peak RSS tool - floor (MiB)", diff, "<= 5", "{:+.1f}"))
    if "sqlite" in results:
        print(f"SQLite/JSONL wall {shown(ratio('sqlite', 'tool'))}")
        rows.append(
            target_row("SQLite / JSONL wall", ratio("sqlite", "tool"), "<= 1.2")
        )
    if "resume" in results and results["resume"].requests is not None:
        per = results["resume"].requests / orders * 1000
        first = results["tool"].requests or 0
        print(
            f"requests per 1,000 orders: first pull {first / orders * 1000:.2f}, "
            f"resume {per:.2f} ({results['resume'].requests} requests)"
        )
    return rows


def startup(rounds: int) -> list[Target]:
    """--version and --help against importing click alone, interleaved."""
    env = dict(os.environ)
    cases = {
        "import click": [PYTHON, "-c", "import click"],
        "--version": [PYTHON, "-m", "miva_sync", "--version"],
        "--help": [PYTHON, "-m", "miva_sync", "--help"],
        "pull --help": [PYTHON, "-m", "miva_sync", "pull", "--help"],
    }
    times: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(rounds):
        for name, argv in cases.items():
            times[name].append(timed(argv, env).wall)
    base = statistics.median(times["import click"])
    print("\n## start-up (median of", rounds, "runs)")
    rows = []
    for name, values in times.items():
        med = statistics.median(values)
        print(f"{name:<14} {med * 1000:6.1f} ms  {med / base:.2f}x import click")
        if name != "import click":
            rows.append(
                target_row(f"start-up: {name} / import click", med / base, "<= 1.5")
            )
    return rows


def flat(sizes: list[int], workdir: Path) -> list[Target]:
    """Peak RSS of a first pull at each size (tool and floor)."""
    print("\n## peak RSS against the number of orders (0 ms latency)")
    rss: dict[int, tuple[float, float]] = {}
    for size in sizes:
        with sandbox(size, 0) as (env, generated):
            home = Path(tempfile.mkdtemp(dir=workdir))
            tool = timed(tool_argv(str(workdir / f"flat{size}.jsonl")),
                         {**env, "MIVA_SYNC_HOME": str(home)})  # fmt: skip
            floor = timed([PYTHON, str(HERE / "floor_client.py"),
                           str(workdir / f"floorflat{size}.jsonl"), "--columns",
                           columns()], env)  # fmt: skip
            rss[size] = (tool.rss_mib, floor.rss_mib)
            print(f"{size:>8,} orders (generated in {generated:.0f} s): tool "
                  f"{tool.rss_mib:.1f} MiB in {tool.wall:.1f} s, floor "
                  f"{floor.rss_mib:.1f} MiB in {floor.wall:.1f} s")  # fmt: skip
            for path in workdir.glob("*flat*.jsonl"):
                path.unlink()
    if len(sizes) < 2:
        return []
    small, big = rss[sizes[0]][0], rss[sizes[-1]][0]
    print(f"tool RSS {sizes[-1]:,} / {sizes[0]:,}: {big / small:.2f}x")
    return [target_row(f"peak RSS {sizes[-1]:,} / {sizes[0]:,} orders", big / small,
                       "<= 1.1")]  # fmt: skip


SECTIONS = ("pull", "flat", "startup", "postgres", "parallel", "resume", "queue")


def run_alone(run: Callable[[Path, int, int], list[Target]], doc: str) -> None:
    """The ``main`` of a section module (bench_postgres, bench_parallel, …):
    ``--orders``, ``--rounds``, and ``--rows FILE`` to hand its target rows to
    bench_pull, which runs each such section as a process of its own."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=Path, help="write the target rows here (JSON)")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="miva-bench-"))
    cache_bytecode()
    try:
        rows = run(workdir, args.orders, args.rounds)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    if args.rows:
        args.rows.write_text(json.dumps(rows))
    else:
        print_targets(rows)


def section(name: str, orders: int, rounds: int, workdir: Path) -> list[Target]:
    """Run ``bench_NAME.py`` as a process of its own and take its target rows.

    A child's peak RSS (os.wait4) counts the memory of the process that forked
    it, so this process stays small: what a section loads (psycopg, outputs
    read back) never reaches another section's figures.
    """
    rows_file = workdir / f"{name}-rows.json"
    subprocess.run(
        [PYTHON, str(HERE / f"bench_{name}.py"), "--orders", str(orders),
         "--rounds", str(rounds), "--rows", str(rows_file)],
        check=True,
    )  # fmt: skip
    return [tuple(row) for row in json.loads(rows_file.read_text())]  # type: ignore[misc]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--latency", default="0", help="ms per request, comma list "
                        "(the targets come from the first)")  # fmt: skip
    parser.add_argument("--flat-sizes", default="10000,100000")
    parser.add_argument("--startup-rounds", type=int, default=15)
    parser.add_argument("--only", default=",".join(SECTIONS),
                        help=f"sections to run, comma list of {', '.join(SECTIONS)}")  # fmt: skip
    args = parser.parse_args()
    only = set(args.only.split(","))
    print(f"# miva-sync benchmark {time.strftime('%Y-%m-%d')} on {platform.node()}: "
          f"{os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{'SDK merchantapi' if SDK_OK else 'no SDK installed'}")  # fmt: skip
    from miva_sync.base import jsonio

    print(f"JSON backend: {jsonio.BACKEND}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="miva-bench-"))
    cache_bytecode()
    rows: list[Target] = []
    try:
        if "pull" in only:
            for n, latency in enumerate(int(x) for x in args.latency.split(",")):
                found = profile(
                    args.orders, latency, args.rounds, workdir, extras=n == 0
                )
                rows += found if n == 0 else []
        if "flat" in only:
            rows += flat([int(x) for x in args.flat_sizes.split(",")], workdir)
        if "startup" in only:
            rows += startup(args.startup_rounds)
        sys.stdout.flush()
        for name in ("postgres", "parallel", "resume", "queue"):
            if name in only:
                rows += section(name, args.orders, args.rounds, workdir)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print_targets(rows)


if __name__ == "__main__":
    main()

"""Queue mode with acknowledgement: requests per 1,000 queued orders (issue 23).

Run from a checkout (after ``pip install -e '.[test]'``):

    python benchmarks/bench_queue.py                 # 20,000 queued orders, 3 rounds
    python benchmarks/bench_queue.py --orders 5000 --rounds 1

Each round starts a ``miva-sync sandbox`` process (no added latency), whose
workflow queue ``new_updated_orders`` holds every one of its orders, and
drains it with ``miva-sync pull --queue new_updated_orders -o FILE.jsonl``:
download a page, write and commit it, acknowledge its orders, read them again
by id (docs/design.md §5.9). The queue is empty afterwards, hence a fresh
sandbox per round. The tool's ``-v --log-format json`` log names the Miva
function of every request, which splits the requests into queue pages, re-reads
and acknowledgements. Acknowledgements and re-reads go in batches of 100 ids:
more than one per 100 orders would be a request per order somewhere.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

from bench_ceiling import count_lines
from bench_pull import PYTHON, Run, Target, run_alone, sandbox, timed

QUEUE = "new_updated_orders"  # the sandbox's queue, filled with every order
BATCH = 100  # ids per acknowledgement and per re-read (docs/design.md §5.9)
KINDS = {
    "QueueOrderList_Load_Query": "queue page",
    "OrderList_Load_Query": "re-read",
    "OrderList_Acknowledge": "ack",
}


def tally(run: Run) -> tuple[Counter[str], dict[str, Any]]:
    """Requests by kind (from the tool's request log) and the run's summary event."""
    kinds: Counter[str] = Counter()
    summary: dict[str, Any] = {}
    for line in run.stderr.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        message = str(record.get("message", ""))
        if record.get("event") == "summary":
            summary = record
        elif message.startswith("POST ") and " -> HTTP " in message:
            function = message.split()[2]  # POST URL FUNCTION ...
            kinds[KINDS.get(function, function)] += 1
    return kinds, summary


def run(workdir: Path, orders: int, rounds: int) -> list[Target]:
    out = workdir / "queue.jsonl"
    runs: list[tuple[Run, Counter[str], dict[str, Any]]] = []
    print(f"\n## queue with acknowledgement: {orders:,} queued orders, 0 ms latency, "
          f"{rounds} rounds (a fresh sandbox each)")  # fmt: skip
    for _ in range(rounds):
        with sandbox(orders, 0) as (env, _generated):
            out.unlink(missing_ok=True)
            home = tempfile.mkdtemp(dir=workdir)
            argv = [PYTHON, "-m", "miva_sync", "-v", "--log-format", "json", "pull",
                    "--queue", QUEUE, "-o", str(out), "--no-progress"]  # fmt: skip
            done = timed(argv, {**env, "MIVA_SYNC_HOME": home})
            kinds, summary = tally(done)
            lines = count_lines(out)
            if lines != orders or summary.get("acknowledged") != orders:
                sys.exit(f"queue pull wrote {lines} lines and acknowledged "
                         f"{summary.get('acknowledged')}, not {orders}")  # fmt: skip
            runs.append((done, kinds, summary))
    out.unlink(missing_ok=True)
    return report(runs, orders)


def report(
    runs: list[tuple[Run, Counter[str], dict[str, Any]]], orders: int
) -> list[Target]:
    wall = statistics.median(r.wall for r, _, _ in runs)
    cpu = statistics.median(r.cpu for r, _, _ in runs)
    done, kinds, summary = runs[-1]  # the counts are the same every round
    per = {kind: kinds[kind] * 1000 / orders for kind in KINDS.values()}
    per["all"] = sum(kinds.values()) * 1000 / orders
    print(f"wall {wall:.2f} s ({orders / wall:,.0f} orders/s), cpu {cpu:.2f} s, "
          f"peak RSS {statistics.median(r.rss_mib for r, _, _ in runs):.1f} MiB; "
          f"{summary.get('newer', '?')} newer after acknowledgement, "
          f"drained: {summary.get('drained', '?')}")  # fmt: skip
    print(f"requests: {sum(kinds.values())} in all ({done.requests} in the summary): "
          + ", ".join(f"{n} {kind}" for kind, n in kinds.most_common()))  # fmt: skip
    print("per 1,000 queued orders: "
          + ", ".join(f"{kind} {value:.2f}" for kind, value in per.items()))  # fmt: skip
    batches = -(-orders // BATCH)  # one ack and one re-read per 100 orders
    batched = kinds["ack"] <= batches and kinds["re-read"] <= batches
    split = f"{per['queue page']:.1f}/{per['re-read']:.1f}/{per['ack']:.1f}"
    return [
        ("Queue with ack: requests per 1,000 orders", f"{per['all']:.1f}", "-", None),
        ("Queue: pages/re-reads/acks per 1,000", split, "-/<=10/<=10", batched),
        ("Queue with ack: wall s per 1,000 orders", f"{wall * 1000 / orders:.3f}", "-", None),
    ]  # fmt: skip


def main() -> None:
    run_alone(run, __doc__ or "")


if __name__ == "__main__":
    main()

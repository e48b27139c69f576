"""Who runs the output's writes and commits: the pull's own thread, or one behind it.

A database target spends most of a page's write in C code (SQLite releases the
GIL while it works) or waiting on the network (PostgreSQL). In a thread of its
own that work overlaps the next page's fetch and parse: the pull no longer
waits for it (measured in benchmarks/README.md). The contract does not move:

* one thread runs the jobs first in, first out, so a page's rows are committed
  before its cursor, and the state file moves only after the commit covering
  every page it counts;
* the queue is short (the pull waits when the writer is behind), so at most a
  page or two more is held in memory;
* after a job fails no later job runs: a failed write is never followed by a
  commit of its cursor. The failure is raised in the pull's thread by the next
  :meth:`submit` or by :meth:`drain`. The inline writer keeps the same rule.

Files (JSONL, a folder, stdout) keep writing inline: a write there is a copy
into the page cache and an fsync, and overlapping it would cost a second page
of memory for little.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

Job = Callable[[], None]

DEPTH = 2  # jobs waiting behind the one running: about a page and its commit


class InlineWriter:
    """Runs each job at once, in the caller's thread; none after one failed."""

    def __init__(self) -> None:
        self._failure: BaseException | None = None

    def submit(self, job: Job) -> None:
        if self._failure is not None:
            raise self._failure
        try:
            job()
        except BaseException as exc:
            self._failure = exc
            raise

    def drain(self) -> None:
        return None

    def close(self) -> None:
        return None


class BackgroundWriter:
    """Runs jobs in order in one background thread."""

    def __init__(self, depth: int = DEPTH) -> None:
        self._jobs: queue.Queue[Job | None] = queue.Queue(maxsize=depth)
        self._failure: BaseException | None = None
        self._thread = threading.Thread(
            target=self._work, daemon=True, name="output-writer"
        )
        self._thread.start()

    def submit(self, job: Job) -> None:
        self._raise_failure()
        self._jobs.put(job)

    def drain(self) -> None:
        """Wait until every submitted job has run; raise the first failure."""
        self._jobs.join()
        self._raise_failure()

    def close(self) -> None:
        """Stop the thread once the jobs already submitted are done (or skipped)."""
        self._jobs.put(None)
        self._thread.join()

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            try:
                if job is None:
                    return
                if self._failure is None:
                    job()
            except BaseException as exc:  # noqa: BLE001 - raised in the pull's thread
                self._failure = exc
            finally:
                self._jobs.task_done()

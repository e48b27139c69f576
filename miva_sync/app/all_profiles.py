"""``miva-sync pull --all-profiles``: every profile in one cron line, a few at a time.

Each profile runs as its own ``python -m miva_sync --profile NAME pull …``
process, so each takes its own store's run lock, keeps its own state and fails
on its own; one profile's failure never stops the others. The exit code is the
worst of the children's by :data:`SEVERITY`.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass

from miva_sync.errors import ExitStatus, InterruptedRunError, MivaSyncError

# Most severe first: what needs a person (a bug, data that could not be
# written, broken settings or credentials, a refused request, a usage problem
# such as a profile with nothing to resume) before what heals by itself
# (an incomplete target the next run fills, a store that is down, a run still
# going, an interrupted child).
SEVERITY = (
    ExitStatus.INTERNAL,
    ExitStatus.OUTPUT,
    ExitStatus.CONFIG,
    ExitStatus.AUTH,
    ExitStatus.API,
    ExitStatus.USAGE,
    ExitStatus.INCOMPLETE,
    ExitStatus.UNREACHABLE,
    ExitStatus.LOCKED,
    ExitStatus.INTERRUPTED,
)


class ProfilesFailedError(MivaSyncError):
    """Some profiles failed; the exit code is the worst of theirs."""

    def __init__(self, message: str, exit_code: ExitStatus) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass(frozen=True)
class ProfileResult:
    """One profile's run: its exit code and what it said on stderr."""

    profile: str
    exit_code: int
    stderr: str

    @property
    def meaning(self) -> str:
        try:
            return ExitStatus(self.exit_code).meaning
        except ValueError:
            return f"killed or unknown ({self.exit_code})"

    @property
    def last_line(self) -> str:
        """The child's last message, without the ``miva-sync: error:`` prefix."""
        lines = [line for line in self.stderr.splitlines() if line.strip()]
        if not lines:
            return ""
        line = lines[-1]
        for prefix in ("miva-sync: error: ", "miva-sync: "):
            if line.startswith(prefix):
                return line[len(prefix) :]
        return line


def normalise(code: int) -> ExitStatus:
    """A code outside the table (a child killed by a signal) counts as a bug (1)."""
    return ExitStatus(code) if code == 0 or code in SEVERITY else ExitStatus.INTERNAL


def worst(codes: Sequence[int]) -> ExitStatus:
    """The most severe exit code (0 when every one is 0)."""
    failing = [normalise(c) for c in codes if c != 0]
    if not failing:
        return ExitStatus.OK
    return min(failing, key=SEVERITY.index)


def run_profiles(
    profiles: Sequence[str],
    pull_args: Sequence[str],
    *,
    jobs: int = 3,
    on_done: Callable[[ProfileResult], None],
) -> list[ProfileResult]:
    """Run ``pull`` for every profile, ``jobs`` at a time; results in profile order.

    Children inherit stdout (only one may write data there: the caller checks)
    and stdin is closed, so a child can never wait for a prompt.
    """
    running: set[subprocess.Popen[str]] = set()
    lock = threading.Lock()
    stopping = threading.Event()  # set under the lock: no child starts after it

    def one(name: str) -> ProfileResult:
        command = [sys.executable, "-m", "miva_sync", "--profile", name, *pull_args]
        with lock:
            if stopping.is_set():  # its thread was already on its way when stopped
                return ProfileResult(
                    name, ExitStatus.INTERRUPTED, "not started: interrupted\n"
                )
            proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stderr=subprocess.PIPE,
                text=True,
            )
            running.add(proc)
        try:
            _, err = proc.communicate()
        finally:
            with lock:
                running.discard(proc)
        return ProfileResult(name, proc.returncode, err or "")

    results: dict[str, ProfileResult] = {}
    from miva_sync.app.session import sigterm_as_interrupt

    with sigterm_as_interrupt(), ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        futures = {pool.submit(one, name): name for name in profiles}
        try:
            for future in as_completed(futures):
                result = future.result()
                results[result.profile] = result
                on_done(result)
        except KeyboardInterrupt:
            # Stop the children the way systemd would stop one run: SIGTERM, so
            # each ends with consistent state; queued profiles never start.
            for future in futures:
                future.cancel()
            with lock:
                stopping.set()
                for proc in running:
                    with contextlib.suppress(OSError):
                        proc.terminate()
            raise InterruptedRunError(
                "interrupted; the running profiles were stopped with their state "
                "consistent"
            ) from None
    return [results[name] for name in profiles]


def summary_error(results: Sequence[ProfileResult]) -> ProfilesFailedError | None:
    """The error to exit with, naming every failed profile; None when all succeeded."""
    failed = [r for r in results if r.exit_code != 0]
    if not failed:
        return None
    names = ", ".join(f"{r.profile} ({r.exit_code})" for r in failed)
    return ProfilesFailedError(
        f"{len(failed)} of {len(results)} profiles failed: {names}; exit code is the "
        "most severe (see 'Exit codes' in the README)",
        worst([r.exit_code for r in results]),
    )

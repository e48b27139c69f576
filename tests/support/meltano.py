"""A real Meltano for the end-to-end tap test (tests/process/test_meltano.py).

Meltano lives in its own virtualenv, cached between runs outside the repository
(``$XDG_CACHE_HOME/miva-sync-tests/meltano-VERSION``): it cannot share the test
environment (it pins its own dependencies) and it installs every plugin into a
virtualenv of its own under the project's ``.meltano/``.

Where Meltano or a plugin cannot be installed (no package registry), the test
skips and says why, except under CI (``CI`` set), where that is a failure: CI
must run it.
"""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
from pathlib import Path
from typing import NoReturn

import pytest

MELTANO_VERSION = "4.4.1"
REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = REPO_ROOT / "examples" / "meltano"
# The example installs the extractor from this checkout, two folders up.
EXAMPLE_PIP_URL = "-e ${MELTANO_PROJECT_ROOT}/../.."


def unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the Meltano test", pytrace=False)
    pytest.skip(f"Meltano test skipped: {reason}")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "miva-sync-tests"


def meltano_executable() -> Path:
    """Meltano MELTANO_VERSION's executable, installed on first use (cached)."""
    venv = cache_dir() / f"meltano-{MELTANO_VERSION}"
    exe = venv / "bin" / "meltano"
    venv.parent.mkdir(parents=True, exist_ok=True)
    # one installer at a time (parallel test processes, parallel CI jobs)
    with (venv.parent / f"meltano-{MELTANO_VERSION}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _works(exe):
            return exe
        steps = [
            [sys.executable, "-m", "venv", "--clear", str(venv)],
            [
                str(venv / "bin" / "python"),
                "-m",
                "pip",
                "install",
                "--quiet",
                f"meltano=={MELTANO_VERSION}",
            ],
        ]
        for step in steps:
            done = subprocess.run(
                step, capture_output=True, text=True, timeout=900, check=False
            )
            if done.returncode != 0:
                unavailable(
                    f"cannot install meltano=={MELTANO_VERSION} into {venv}: "
                    f"{(done.stderr or done.stdout).strip()[-600:]}"
                )
        if not _works(exe):
            unavailable(f"{exe} does not run after installing meltano")
        return exe


def _works(exe: Path) -> bool:
    if not exe.exists():
        return False
    done = subprocess.run(
        [str(exe), "--version"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return done.returncode == 0 and MELTANO_VERSION in done.stdout


def meltano_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without MIVA_*/TAP_MIVA_*/MELTANO_*, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("MIVA_", "TAP_MIVA_", "TARGET_JSONL_", "MELTANO_"))
    }
    env.update(
        {
            "MELTANO_SEND_ANONYMOUS_USAGE_STATS": "false",
            "MELTANO_CLI_LOG_LEVEL": "info",
            "NO_COLOR": "1",
        }
    )
    env.update(extra)
    return env


def copy_example(dest: Path) -> Path:
    """examples/meltano/ copied to ``dest`` (its own files only), the extractor's
    pip_url pointing at this checkout wherever ``dest`` is."""
    dest.mkdir(parents=True)
    for name in ("meltano.yml", "README.md", ".gitignore"):
        if (EXAMPLE / name).exists():
            (dest / name).write_text((EXAMPLE / name).read_text())
    text = (dest / "meltano.yml").read_text()
    assert EXAMPLE_PIP_URL in text, "the example's tap-miva pip_url changed"
    (dest / "meltano.yml").write_text(text.replace(EXAMPLE_PIP_URL, f"-e {REPO_ROOT}"))
    return dest


def run_meltano(
    exe: Path,
    project: Path,
    *args: str,
    env: dict[str, str],
    timeout: float = 600,
    check: bool = True,
) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(exe), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if check:
        assert done.returncode == 0, (
            f"meltano {' '.join(args)} exited {done.returncode}\n"
            f"--- stdout\n{done.stdout[-4000:]}\n--- stderr\n{done.stderr[-8000:]}"
        )
    return done

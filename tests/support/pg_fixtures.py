"""A throwaway PostgreSQL server for the tests, started from the machine's binaries.

``pip install -e '.[test]' && pytest`` covers PostgreSQL too: one server per
test session (initdb + pg_ctl on 127.0.0.1, a free port, fsync off), one
fresh database per test. initdb refuses to run as root, and CI runs as root,
so there the server runs as the ``postgres`` user through ``runuser``, in a
folder under /tmp that user can enter (pytest's tmp_path is 0700).

Without PostgreSQL binaries the tests skip and say why, except under CI
(``CI`` set), where a missing server is a failure: CI must run them.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import pytest

from tests.support.helpers import free_port

SERVICE_USER = "postgres"
_names = itertools.count(1)


@dataclass
class PostgresServer:
    """A running server: where it listens, and how to make databases on it."""

    port: int
    base: Path
    user: str = "postgres"
    host: str = "127.0.0.1"

    def url(self, database: str = "postgres", **params: str) -> str:
        query = "&".join(f"{k}={v}" for k, v in params.items())
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}" + (
            f"?{query}" if query else ""
        )

    def create_database(self) -> str:
        """A new empty database; its name."""
        import psycopg

        name = f"t{os.getpid()}_{next(_names)}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must run the PostgreSQL tests", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason}")


def require_psycopg() -> None:
    """psycopg, or a skip (a failure under CI: the test extra brings it)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed")


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: PATH first, then Debian's layout."""
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(initdb).parent
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "pg_ctl").exists():
            return folder
    return None


def _service_user() -> list[str]:
    """The command prefix that runs the server's binaries as a non-root user."""
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam(SERVICE_USER)
    except KeyError:
        made = subprocess.run(
            ["useradd", "--system", "--no-create-home", SERVICE_USER],
            capture_output=True,
            text=True,
            check=False,
        )
        if made.returncode != 0:
            _unavailable(
                f"running as root, no '{SERVICE_USER}' user to run initdb as, "
                f"and useradd failed: {made.stderr.strip()}"
            )
    if not shutil.which("runuser"):
        _unavailable("running as root and runuser is missing (initdb refuses root)")
    return ["runuser", "-u", SERVICE_USER, "--"]


def _run(command: list[str], what: str) -> None:
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=120, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} failed ({done.returncode}): {done.stderr[-2000:]}")


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    """initdb, start, yield, stop (immediate) and remove everything."""
    require_psycopg()
    binaries = find_binaries()
    if binaries is None:
        _unavailable(
            "no PostgreSQL binaries (initdb, pg_ctl) on PATH or in "
            "/usr/lib/postgresql/*/bin"
        )
    prefix = _service_user()
    # /tmp, not pytest's 0700 tmp_path: the server's user must be able to enter it
    base = Path(tempfile.mkdtemp(prefix="miva-sync-pg-", dir="/tmp"))
    base.chmod(0o755)
    if prefix:
        info = pwd.getpwnam(SERVICE_USER)
        os.chown(base, info.pw_uid, info.pw_gid)
    data, sockets, log = base / "data", base / "sockets", base / "server.log"
    started = False
    try:
        _run(
            [
                *prefix,
                str(binaries / "initdb"),
                "--pgdata",
                str(data),
                "--username",
                "postgres",
                "--auth",
                "trust",
                "--encoding",
                "UTF8",
                "--no-locale",
                "--no-sync",
            ],
            "initdb",
        )
        _run([*prefix, "mkdir", "-m", "0700", str(sockets)], "mkdir")
        for attempt in range(3):
            port = free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -p {port} -k {sockets} "
                "-c fsync=off -c synchronous_commit=off -c full_page_writes=off "
                "-c max_connections=60"
            )
            try:
                _run(
                    [
                        *prefix,
                        str(binaries / "pg_ctl"),
                        "--pgdata",
                        str(data),
                        "--log",
                        str(log),
                        "--options",
                        options,
                        "--wait",
                        "--timeout",
                        "60",
                        "start",
                    ],
                    "pg_ctl start",
                )
            except RuntimeError:
                if attempt == 2:
                    raise
                time.sleep(0.2)  # the port was taken in between: try another
                continue
            started = True
            break
        yield PostgresServer(port=port, base=base)
    except RuntimeError as exc:
        tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
        pytest.fail(f"could not start PostgreSQL: {exc}\n{tail}", pytrace=False)
    finally:
        if started:
            subprocess.run(
                [
                    *prefix,
                    str(binaries / "pg_ctl"),
                    "--pgdata",
                    str(data),
                    "--mode",
                    "immediate",
                    "stop",
                ],
                capture_output=True,
                timeout=60,
                check=False,
            )
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session."""
    with running_server() as server:
        yield server


@pytest.fixture
def pg_url(pg_server: PostgresServer) -> str:
    """A URL of a fresh, empty database for one test."""
    return pg_server.url(pg_server.create_database())


def query(url: str, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
    """Run one statement on its own connection; its rows."""
    import psycopg

    from miva_sync.sinks.postgres import split_target

    dsn, schema = split_target(url)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if schema:
            conn.execute("SELECT set_config('search_path', %s, false)", (schema,))
        cursor = conn.execute(sql, params)
        return cursor.fetchall() if cursor.description else []

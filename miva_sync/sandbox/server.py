"""``miva-sync sandbox``: serve a sandbox until SIGINT/SIGTERM, print how to reach it."""

from __future__ import annotations

import ipaddress
import os
import random
import shlex
import signal
import sys
import threading
from types import FrameType
from urllib.parse import urlsplit

from miva_sync.sandbox.harness import AUTO, Sandbox
from miva_sync.sandbox.quirks import Quirks

DEFAULT_PORT = 8090  # not listen's 8080: a sandbox and a receiver run side by side
PID_VARIABLE = "MIVA_SANDBOX_PID"  # printed unexported: `kill "$MIVA_SANDBOX_PID"`


class BindError(Exception):
    """The address cannot be bound (busy port, no such address): one line, exit 3."""


def run_from_cli(
    host: str,
    port: int,
    orders: int,
    seed: int,
    store_code: str,
    api_token: str | None,
    signing_key: str | None,
    no_signing: bool,
    latency: float,
    fault_rate: float,
    tie_order: str,
    timestamp_window: int,
    no_dt_updated: bool,
    webhook_url: str | None,
    webhook_paid_only: bool = False,
    quirks: tuple[str, ...] = (),
    add_every: float = 0.0,
) -> None:
    """Start a sandbox, print ``export`` lines on stdout, serve until told to stop.

    Port 0 binds a free port; the printed MIVA_URL carries the real one. The
    last stdout line, ``MIVA_SANDBOX_PID=N``, is a shell variable, not an
    export: ``eval`` gives the shell the pid to stop the sandbox with.
    ``webhook_url``: every order it starts with is POSTed there at once, then
    each new or updated one; ``add_every`` (seconds, 0: never) makes a new
    order and updates an older one on that beat, so a receiver keeps hearing.
    """
    sandbox = Sandbox(
        orders=orders,
        seed=seed,
        tie_order=tie_order,
        store_code=store_code,
        api_token=api_token or None,
        signing_key=None if no_signing else (signing_key or AUTO),
        timestamp_window=timestamp_window,
        supports_dt_updated=not no_dt_updated,
        latency_ms=latency,
        fault_rate=fault_rate,
        host=host,
        port=port,
        webhook_url=webhook_url,
        webhook_paid_only=webhook_paid_only,
        quirks=Quirks.from_names(quirks),
    )
    try:
        sandbox.start()
    except OSError as exc:
        if sandbox.webhook is not None:
            sandbox.webhook.close()
        raise BindError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            f"{'; --port 0 picks a free port' if port else ''}"
        ) from None
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    try:
        for name, value in sandbox.env().items():
            sys.stdout.write(f"export {name}={shlex.quote(value)}\n")
        sys.stdout.write(f"{PID_VARIABLE}={os.getpid()}\n")
        sys.stdout.flush()
        _release_stdout()
        sys.stderr.write(
            f"miva-sync sandbox: {len(sandbox.store)} orders for store "
            f"{store_code} at {sandbox.url} (tie order {tie_order}"
            f"{', token-only auth' if no_signing else ''}"
            f"{''.join(f', quirk {q}' for q in quirks)}); "
            f"Ctrl-C or kill {os.getpid()} to stop\n"
        )
        if not _is_loopback(host):
            sys.stderr.write(
                f"miva-sync sandbox: warning: listening on {host}, not loopback; "
                "its secrets are throwaway but anyone who can reach it can read it\n"
            )
        if sandbox.webhook is not None and webhook_url:
            backlog = sandbox.store.orders_snapshot()
            sys.stderr.write(
                f"miva-sync sandbox: POSTing its {len(backlog)} orders, then each "
                f"new or updated one, to {_shown(webhook_url)}"
                f"{'' if add_every else ' (--add-every SECONDS makes new ones)'}\n"
            )
            for order in backlog:
                sandbox.webhook("created", order)
        sys.stderr.flush()
        rng = random.Random(seed)
        while not stop.wait(add_every or 0.2):
            if add_every:
                _add_and_update(sandbox, rng)
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if sandbox.webhook is not None:
            sys.stderr.write(
                f"miva-sync sandbox: webhooks: {sandbox.webhook.sent} delivered, "
                f"{sandbox.webhook.failed} failed\n"
            )


def _add_and_update(sandbox: Sandbox, rng: random.Random) -> None:
    """One beat of ``--add-every``: a new order, and an older one updated."""
    ids = sandbox.store.ids()
    sandbox.store.add_order()
    if ids:
        sandbox.store.update_order(rng.choice(ids))


def _shown(url: str) -> str:
    """The webhook URL without its path, which holds the receiver's secret."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    host = f"[{host}]" if ":" in host else host
    return f"{parts.scheme}://{host}{f':{parts.port}' if parts.port else ''}/…"


def _release_stdout() -> None:
    """Point stdout at /dev/null once the settings are out.

    ``eval "$(miva-sync sandbox --port 0 &)"`` waits for stdout to close; a
    server that kept it open would hang the shell.
    """
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):
        pass  # not a real file descriptor (e.g. under a test runner)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False

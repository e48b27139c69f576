"""``miva-sync sandbox``: serve a sandbox until SIGINT/SIGTERM, print how to reach it."""

from __future__ import annotations

import ipaddress
import os
import shlex
import signal
import sys
import threading
from types import FrameType

from miva_sync.sandbox.harness import AUTO, Sandbox
from miva_sync.sandbox.quirks import Quirks


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
) -> None:
    """Start a sandbox, print ``export`` lines on stdout, serve until told to stop.

    Port 0 binds a free port; the printed MIVA_URL carries the real one.
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
    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    previous = {
        sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)
    }
    sandbox.start()
    try:
        for name, value in sandbox.env().items():
            sys.stdout.write(f"export {name}={shlex.quote(value)}\n")
        sys.stdout.flush()
        _release_stdout()
        sys.stderr.write(
            f"miva-sync sandbox: {len(sandbox.store)} orders for store "
            f"{store_code} at {sandbox.url} (tie order {tie_order}"
            f"{', token-only auth' if no_signing else ''}"
            f"{''.join(f', quirk {q}' for q in quirks)}); Ctrl-C to stop\n"
        )
        if not _is_loopback(host):
            sys.stderr.write(
                f"miva-sync sandbox: warning: listening on {host}, not loopback; "
                "its secrets are throwaway but anyone who can reach it can read it\n"
            )
        sys.stderr.flush()
        while not stop.wait(0.2):
            pass
    finally:
        sandbox.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


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

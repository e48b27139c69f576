"""Best-effort webhook delivery: POST each new or updated order's JSON to one URL."""

from __future__ import annotations

import ipaddress
import json
import queue
import threading
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlsplit

LOOPBACK_NAMES = {"localhost"}


def require_loopback(url: str) -> None:
    """The sandbox only talks to this machine."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    shown = f"{parts.scheme}://{host}/…"  # its path may hold a receiver's secret
    if parts.scheme not in ("http", "https"):
        got = f"{parts.scheme}://" if parts.scheme else "no scheme"
        raise ValueError(f"webhook URL must start with http:// or https:// ({got})")
    if host in LOOPBACK_NAMES:
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass
    raise ValueError(f"webhook URL must point at loopback (127.0.0.1): {shown}")


class WebhookSender:
    """Queue orders and POST them one by one from a daemon thread; failures are dropped.

    The payload is the bare order object (docs/miva-api.md §7: the envelope is
    unconfirmed) with an ``X-Sandbox-Event`` header naming the trigger. Like
    Miva, it never retries. ``paid_only`` mimics a workflow that waits until
    the order has a payment record (the guide's advice for admin orders).
    """

    def __init__(
        self, url: str, timeout: float = 5.0, *, paid_only: bool = False
    ) -> None:
        require_loopback(url)
        self.url = url
        self.timeout = timeout
        self.paid_only = paid_only
        self.sent = 0
        self.failed = 0
        self.statuses: list[int] = []
        self._queue: queue.Queue[tuple[str, dict[str, Any]] | None] = queue.Queue()
        self._thread = threading.Thread(
            target=self._run, name="sandbox-webhook", daemon=True
        )
        self._thread.start()

    def __call__(self, event: str, order: dict[str, Any]) -> None:
        if self.paid_only and not order.get("payments"):
            return  # "Wait Until True": sent once a payment record exists
        self._queue.put((event, order))

    def drain(self) -> None:
        """Wait until every queued delivery has been attempted (for tests)."""
        self._queue.join()

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(timeout=self.timeout)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:  # None: close()
            try:
                self._deliver(*item)
            finally:
                self._queue.task_done()

    def _deliver(self, event: str, order: dict[str, Any]) -> None:
        body = json.dumps(order, ensure_ascii=False).encode()
        request = urllib.request.Request(  # noqa: S310 - loopback http(s) checked above
            self.url,
            data=body,
            headers={"Content-Type": "application/json", "X-Sandbox-Event": event},
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as answer:  # noqa: S310
                self.sent += 1
                self.statuses.append(answer.status)
        except urllib.error.HTTPError as exc:
            self.failed += 1
            self.statuses.append(exc.code)
        except OSError:
            self.failed += 1

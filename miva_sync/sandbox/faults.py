"""Injectable transport faults and latency: what proxies and busy stores do to clients."""

from __future__ import annotations

import random
import threading
from collections import deque
from dataclasses import dataclass, field
from typing import Any

KINDS = ("500", "502", "503", "reset", "truncate", "timeout", "429", "html200")

_PAGES = {
    "500": (
        "Internal Server Error",
        "The server encountered an internal error or misconfiguration and was "
        "unable to complete your request.",
    ),
    "502": ("502 Bad Gateway", "nginx"),
    "503": (
        "Service Unavailable",
        "The server is temporarily unable to service your request due to "
        "maintenance downtime or capacity problems.",
    ),
    "429": ("429 Too Many Requests", "You have sent too many requests. Slow down."),
    "html200": (
        "Store Maintenance",
        "This store is down for scheduled maintenance. Please check back soon.",
    ),
}


def html_page(kind: str) -> bytes:
    """The HTML body a web server or proxy answers with for this fault."""
    title, text = _PAGES[kind]
    return (
        f"<!DOCTYPE html>\n<html><head><title>{title}</title></head>\n"
        f"<body><h1>{title}</h1>\n<p>{text}</p>\n<hr></body></html>\n"
    ).encode()


@dataclass(frozen=True)
class Fault:
    """One fault to apply to one request, with its options.

    Options: ``retry_after`` (429, 503), ``seconds`` (timeout), ``fraction``
    (truncate: share of the body sent), ``processed`` (reset: handle the
    request first, so its effect on queues happens but the answer is lost).
    """

    kind: str
    options: dict[str, Any] = field(default_factory=dict)


class Faults:
    """Faults for the next requests (``inject``) and at random (``rate``), plus latency."""

    def __init__(
        self,
        rate: float = 0.0,
        seed: int = 1,
        latency_ms: float = 0.0,
        timeout_seconds: float = 2.0,
        kinds: tuple[str, ...] = KINDS,
    ) -> None:
        self.rate = rate
        self.latency_ms = latency_ms
        self.timeout_seconds = timeout_seconds
        self.kinds = kinds
        self._rng = random.Random(f"faults:{seed}")
        self._pending: deque[Fault] = deque()
        self._lock = threading.Lock()

    def inject(self, kind: str, count: int = 1, **options: Any) -> None:
        """Give the next ``count`` requests this fault (after those already injected)."""
        if kind not in KINDS:
            raise ValueError(f"unknown fault {kind!r}; choose from {', '.join(KINDS)}")
        with self._lock:
            self._pending.extend(Fault(kind, dict(options)) for _ in range(count))

    def clear(self) -> None:
        """Forget injected faults and stop random ones."""
        with self._lock:
            self._pending.clear()
            self.rate = 0.0

    @property
    def pending(self) -> list[Fault]:
        with self._lock:
            return list(self._pending)

    def draw(self) -> Fault | None:
        """The fault for the request now arriving, if any."""
        with self._lock:
            if self._pending:
                return self._pending.popleft()
            if self.rate and self._rng.random() < self.rate:
                return Fault(self._rng.choice(self.kinds))
        return None

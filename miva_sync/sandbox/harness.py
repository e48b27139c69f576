"""``Sandbox``: a store, its API and an HTTP server on loopback, for tests and demos."""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable
from enum import Enum
from types import TracebackType
from typing import Self

from miva_sync.sandbox.api import Api
from miva_sync.sandbox.auth import Authenticator
from miva_sync.sandbox.faults import Fault, Faults
from miva_sync.sandbox.httpd import RequestLogEntry, SandboxHTTPServer
from miva_sync.sandbox.quirks import NO_QUIRKS, Quirks
from miva_sync.sandbox.store import DEFAULT_QUEUE, Store
from miva_sync.sandbox.webhook import WebhookSender

Hook = Callable[[Store], None]
Watcher = Callable[[int, RequestLogEntry], None]


class _Auto(Enum):
    AUTO = "auto"


AUTO = _Auto.AUTO  # "make up a throwaway secret"


def new_token() -> str:
    """A throwaway API token shaped like Miva's (32 hex digits)."""
    return secrets.token_hex(16)


def new_signing_key() -> str:
    """A throwaway signing key: base64 of 32 random bytes, unpadded as Miva shows it."""
    return base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")


class Sandbox:
    """A local Miva store: start it, point a client at ``url``, inspect ``store``."""

    def __init__(
        self,
        orders: int = 100,
        seed: int = 1,
        tie_order: str = "random",
        store_code: str = "SANDBOX",
        api_token: str | None = None,
        signing_key: str | _Auto | None = AUTO,
        require_signature: bool = True,
        timestamp_window: int = 120,
        supports_dt_updated: bool = True,
        latency_ms: float = 0.0,
        fault_rate: float = 0.0,
        now: Callable[[], float] | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/mm5/json.mvc",
        burst_size: int | None = None,
        late_numbers: int | None = None,
        default_queue: str = DEFAULT_QUEUE,
        webhook_url: str | None = None,
        webhook_paid_only: bool = False,
        anchor: float | None = None,
        quirks: Quirks = NO_QUIRKS,
    ) -> None:
        self.quirks = quirks
        self.clock: Callable[[], float] = now or time.time
        self.store_code = store_code
        self.api_token = api_token or new_token()
        self.signing_key = new_signing_key() if signing_key is AUTO else signing_key
        self.host, self.port, self.path = host, port, path
        self.store = Store(
            orders,
            seed,
            tie_order=tie_order,
            supports_dt_updated=supports_dt_updated,
            clock=self.clock,
            burst_size=burst_size,
            late_numbers=late_numbers,
            default_queue=default_queue,
            anchor=anchor,
            quirks=quirks,
        )
        self.auth = Authenticator(
            self.api_token, self.signing_key, require_signature, timestamp_window
        )
        self.api = Api(self.store, self.auth, store_code, quirks)
        self.faults = Faults(rate=fault_rate, seed=seed, latency_ms=latency_ms)
        self.webhook = (
            WebhookSender(webhook_url, paid_only=webhook_paid_only)
            if webhook_url
            else None
        )
        if self.webhook is not None:
            self.store.subscribe(self.webhook)
        self.hook_errors: list[BaseException] = []
        self._log: list[RequestLogEntry] = []
        self._count = 0
        self._hooks: dict[int, list[Hook]] = {}
        self._watchers: list[Watcher] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        """Bind (port 0 picks a free one) and serve from a daemon thread."""
        if self._server is not None:
            return self
        self._stopping.clear()
        self._server = SandboxHTTPServer((self.host, self.port), self)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="miva-sandbox",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; raise if a request hook failed."""
        self._stopping.set()  # wake handlers sleeping for latency or a timeout fault
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None
        if self.webhook is not None:
            self.webhook.close()
        if self.hook_errors:
            errors, self.hook_errors = self.hook_errors, []
            raise RuntimeError(
                f"a sandbox request hook failed: {errors[0]!r}"
            ) from errors[0]

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self.hook_errors.clear()  # the test's own failure is the one to see
        self.stop()

    # --- settings ------------------------------------------------------------------------

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}{self.path}"

    def env(self) -> dict[str, str]:
        """The connection settings as environment variables (empty key: token-only)."""
        return {
            "MIVA_URL": self.url,
            "MIVA_STORE_CODE": self.store_code,
            "MIVA_API_TOKEN": self.api_token,
            "MIVA_SIGNING_KEY": self.signing_key or "",
        }

    def now(self) -> int:
        """The store's clock in unix seconds."""
        return int(self.clock())

    # --- hooks and the request log -------------------------------------------------------

    @property
    def requests(self) -> list[RequestLogEntry]:
        """Every request so far, in arrival order."""
        with self._lock:
            return list(self._log)

    @property
    def request_count(self) -> int:
        with self._lock:
            return self._count

    def after_request(self, k: int, fn: Hook) -> None:
        """Call ``fn(store)`` once the k-th request (1-based) is handled, before its
        answer leaves, so the client's next request sees the change."""
        with self._lock:
            if k <= self._count:
                raise ValueError(f"request {k} has already been handled")
            self._hooks.setdefault(k, []).append(fn)

    def on_request(self, fn: Watcher) -> None:
        """Call ``fn(n, entry)`` after every request."""
        with self._lock:
            self._watchers.append(fn)

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # --- called by the HTTP handler ------------------------------------------------------

    def begin_request(self, draw_fault: bool = True) -> tuple[int, Fault | None]:
        with self._lock:
            self._count += 1
            n = self._count
        return n, self.faults.draw() if draw_fault else None

    def end_request(self, entry: RequestLogEntry) -> None:
        with self._lock:
            self._log.append(entry)
            hooks = self._hooks.pop(entry.n, [])
            watchers = list(self._watchers)
        for hook in hooks:
            self._guard(hook, self.store)
        for watcher in watchers:
            self._guard(watcher, entry.n, entry)

    def pause(self, seconds: float) -> None:
        """Sleep, but wake at once when the sandbox stops."""
        if seconds > 0:
            self._stopping.wait(seconds)

    def _guard(self, fn: Callable[..., None], *args: object) -> None:
        try:
            fn(*args)
        except Exception as err:  # noqa: BLE001 - reported by stop(), not lost in a thread
            self.hook_errors.append(err)

"""Webhook receiver: orders pushed by Miva land in the same outputs as pulls, safely.

A WSGI app (:class:`WebhookApp`) and a small threaded server (:func:`serve`).
Miva cannot authenticate its webhooks (docs/miva-api.md §7), so the endpoint hides
behind a secret path, answers 404 to anything else, and can treat deliveries
as mere notifications (``--verify-with-api``). A 2xx is sent only after the
order is durably written; repeats and older versions are no-ops that still get
a 2xx, because a refusal would only make the sender retry.
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import math
import os
import signal
import socketserver
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from miva_sync import console
from miva_sync.base import jsonio
from miva_sync.errors import ConfigError, MivaSyncError
from miva_sync.sinks.base import Sink
from miva_sync.state.file import StateStore
from miva_sync.store.orders import MAX_ID, cursor_value, version_key
from miva_sync.store.urls import StoreIdentity
from miva_sync.sync.held import HeldOrders

if TYPE_CHECKING:
    from miva_sync.app.requests import GlobalOptions, ListenRequest
    from miva_sync.config import Settings

log = logging.getLogger("miva_sync.app.listen")

MAX_BODY = 1_000_000
MAX_CONCURRENT = 32  # requests handled at once; more get 503 at once
REQUEST_TIMEOUT = 30.0  # seconds any socket read or write of a request may take
BUSY_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    b"Content-Length: 18\r\nConnection: close\r\n\r\n"
    b'{"error": "busy"}\n'
)
MIN_SECRET_LENGTH = 16
WEBHOOK_STORE_KEY = "webhook"  # the receiver saves no cursor; sinks only need a name
REMEMBERED_VERSIONS = 100_000  # newest-wins memory for this process, LRU-bounded
# keys that make a JSON object look like an order rather than a wrapper
ORDER_HINTS = frozenset(
    {"orderdate", "dt_updated", "pay_status", "status", "total", "items", "ship_email",
     "bill_email", "ship_lname", "bill_lname", "cust_id"}
)  # fmt: skip
ID_PARAMETERS = ("id", "order_id", "Order_ID", "orderid", "OrderID", "order")

Response = tuple[int, dict[str, Any]]
_request = threading.local()
Fetch = Callable[[int], dict[str, Any] | None]


class Rejected(Exception):
    """A delivery answered with a 4xx/5xx and nothing written."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def find_order(payload: Any, depth: int = 0) -> dict[str, Any] | int | None:
    """The order in a delivery: the object itself, one inside a wrapper, or a bare id."""
    if isinstance(payload, dict):
        oid = _as_id(payload.get("id"))
        if oid is not None and ORDER_HINTS & payload.keys():
            return payload
        if depth < 3:
            for value in payload.values():
                if isinstance(value, (dict, list)):
                    found = find_order(value, depth + 1)
                    if isinstance(found, dict):
                        return found
        for key in ID_PARAMETERS:
            oid = _as_id(payload.get(key))
            if oid is not None:
                return oid
    if isinstance(payload, list) and depth < 3:
        for value in payload:
            found = find_order(value, depth + 1)
            if found is not None:
                return found
    return None


def _as_id(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value) if len(value) <= 20 else None
    if isinstance(value, int) and 0 <= value <= MAX_ID:
        return value
    return None


@dataclass
class Outcome:
    order_id: int
    result: str  # written | unchanged | older | held


class Holds:
    """The receiver's held (unpaid) orders, kept in the state file across restarts.

    They live in a record of their own (``listen:<store key>``), so the
    receiver never touches a pull's record and never needs the run lock.
    """

    def __init__(self, state: StateStore, store_key: str, hold_for: int) -> None:
        self.state = state
        self.key = f"listen:{store_key}"
        self.orders = HeldOrders.from_record(
            state.get(self.key), require_payment=True, hold_for=hold_for
        )

    def save(self) -> None:
        self.state.put(
            self.key,
            {"mode": "webhook", "cursors": {"webhook": {}}, "dedupe": {},
             "held": self.orders.entries},
        )  # fmt: skip


class OrderWriter:
    """Writes deliveries into one sink, one at a time, newest version wins."""

    def __init__(
        self,
        sink: Sink,
        fetch: Fetch | None,
        *,
        verify_with_api: bool = False,
        holds: Holds | None = None,
    ) -> None:
        self.sink = sink
        self.fetch = fetch
        self.verify_with_api = verify_with_api
        self.holds = holds
        self._lock = threading.Lock()
        self._versions: OrderedDict[int, int | str] = OrderedDict()

    def accept(self, delivered: dict[str, Any] | int) -> Outcome:
        order = self._resolve(delivered)
        oid = order["id"]
        # dt_updated, else the content fingerprint, which leaves out the workflow
        # module's queue flags: a delivery (or re-read) that differs only there
        # is "unchanged", not a new version (store/orders.py)
        version = version_key(order)
        with self._lock:
            known = self._versions.get(oid)
            if known is not None and _not_newer(version, known):
                return Outcome(oid, "unchanged" if version == known else "older")
            holds = self.holds.orders if self.holds is not None else None
            was_held = holds is not None and str(oid) in holds.entries
            if holds is not None and not holds.admit(order, int(time.time())):
                if not was_held:
                    self._save_holds()  # durable before the 2xx
                return Outcome(oid, "held")
            self._write([order])
            self._remember(oid, version)
            if was_held:
                self._save_holds()  # after the write: a release never loses the order
        return Outcome(oid, "written")

    def release_due(
        self, fetch_many: Callable[[list[int]], list[dict[str, Any]]]
    ) -> list[str]:
        """Re-check held orders by id; write those paid or expired. Returns warnings."""
        if self.holds is None or not len(self.holds.orders):
            return []
        with self._lock:
            ready = self.holds.orders.recheck(fetch_many, int(time.time()))
            if ready:
                self._write(ready)
                for order in ready:
                    self._remember(order["id"], version_key(order))
            self._save_holds()
            warnings = list(self.holds.orders.warnings)
            self.holds.orders.warnings.clear()
        return warnings

    def _remember(self, oid: int, version: int | str) -> None:
        """The newest version written, for the last REMEMBERED_VERSIONS orders."""
        self._versions[oid] = version
        self._versions.move_to_end(oid)
        while len(self._versions) > REMEMBERED_VERSIONS:
            self._versions.popitem(last=False)

    def close(self) -> None:
        with self._lock:  # let a background re-check finish its write first
            self.sink.close()

    def _write(self, orders: list[dict[str, Any]]) -> None:
        try:
            self.sink.write(orders)
            self.sink.commit(WEBHOOK_STORE_KEY, None)
        except MivaSyncError as err:
            raise Rejected(503, f"output failed: {err}") from None

    def _save_holds(self) -> None:
        assert self.holds is not None  # noqa: S101 - callers check
        try:
            self.holds.save()
        except MivaSyncError as err:
            raise Rejected(503, f"cannot save held orders: {err}") from None

    def _resolve(self, delivered: dict[str, Any] | int) -> dict[str, Any]:
        """The order to write: as delivered, or re-read from the store by id."""
        oid: int | None
        if isinstance(delivered, int):
            oid, needs_store = delivered, True
        else:
            oid = _as_id(delivered.get("id"))
            if oid is None:
                raise Rejected(422, "the delivery's order id is not a number")
            needs_store = (
                self.verify_with_api
                or not isinstance(delivered["id"], int)
                or cursor_value(delivered, "dt_updated") is None
            )
            if self.fetch is None and not isinstance(delivered["id"], int):
                raise Rejected(422, "the delivery's order id is not a number")
            if not needs_store or self.fetch is None:
                # without a store connection a pre-10.03 delivery is written as it
                # arrived (newest arrival wins); everything else is compared first
                return delivered
        if self.fetch is None:
            raise Rejected(
                503, "only an order id arrived and no store is configured to fetch it"
            )
        try:
            order = self.fetch(oid)
        except MivaSyncError as err:
            raise Rejected(
                503, f"cannot re-read order {oid} from the store: {err}"
            ) from None
        if order is None:
            raise Rejected(422, f"order {oid} is not in the store")
        return order


def _not_newer(version: int | str, known: int | str) -> bool:
    if isinstance(version, int) and isinstance(known, int):
        return version <= known
    return version == known  # content hashes: only an exact repeat is a no-op


class WebhookApp:
    """The WSGI application: ``/webhook/<secret>`` and ``/healthz``."""

    def __init__(
        self, secret: str, writer: OrderWriter, *, max_body: int = MAX_BODY
    ) -> None:
        self._path = f"/webhook/{secret}".encode()
        self.writer = writer
        self.max_body = max_body

    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        status, body = self.handle(environ)
        _request.outcome = body  # for the access log, written later on this thread
        data = json.dumps(body).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
                  413: "Payload Too Large", 422: "Unprocessable Entity",
                  501: "Not Implemented", 503: "Service Unavailable"}.get(status, "Error")  # fmt: skip
        start_response(
            f"{status} {reason}",
            [("Content-Type", "application/json"), ("Content-Length", str(len(data)))],
        )
        return [data]

    def handle(self, environ: dict[str, Any]) -> Response:
        path = environ.get("PATH_INFO", "").encode("latin-1", "replace").rstrip(b"/")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == b"/healthz":
            return 200, {"ok": True}
        # constant-time: the path is the only credential a Miva webhook can carry
        if not hmac.compare_digest(path, self._path):
            return 404, {"error": "not found"}
        try:
            if method == "POST":
                delivered = self._from_body(environ)
            elif method == "GET":
                delivered = self._from_query(environ.get("QUERY_STRING", ""))
            else:
                return 405, {"error": "use POST or GET"}
            outcome = self.writer.accept(delivered)
        except Rejected as rejected:
            return rejected.status, {"error": rejected.reason}
        return 200, {"ok": True, "id": outcome.order_id, "result": outcome.result}

    def _from_body(self, environ: dict[str, Any]) -> dict[str, Any] | int:
        raw = read_body(environ, self.max_body)
        if raw.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark (RFC 8259 §8.1)
            raw = raw[3:]
        try:
            # the same parse as a pulled page: NaN and big numbers kept as sent
            payload = jsonio.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise Rejected(400, "the body is not JSON") from None
        found = find_order(payload)
        if found is None:
            raise Rejected(422, "the JSON holds no order")
        return found

    def _from_query(self, query: str) -> dict[str, Any] | int:
        params = {k: v[-1] for k, v in parse_qs(query, max_num_fields=200).items()}
        for value in params.values():  # an order passed as a JSON parameter
            if value.startswith("{"):
                try:
                    found = find_order(jsonio.loads(value.encode()))
                except (ValueError, UnicodeDecodeError):
                    continue
                if found is not None:
                    return found
        found = find_order(params)
        if found is None:
            raise Rejected(422, "the query holds no order id")
        return found


def read_body(environ: dict[str, Any], limit: int) -> bytes:
    """A request's body, at most ``limit`` bytes (413 beyond), framed by
    Content-Length or ``Transfer-Encoding: chunked`` (RFC 9112 §6, §7.1)."""
    stream = environ["wsgi.input"]
    codings = [
        c.strip().lower()
        for c in environ.get("HTTP_TRANSFER_ENCODING", "").split(",")
        if c.strip()
    ]
    if codings:
        # Transfer-Encoding wins over any Content-Length (RFC 9112 §6.3)
        if codings[-1] != "chunked":
            raise Rejected(400, "Transfer-Encoding must end with chunked")
        if codings != ["chunked"]:
            raise Rejected(501, f"Transfer-Encoding {', '.join(codings)} not supported")
        if environ.get("wsgi.input_terminated"):
            # a server in front (gunicorn, mod_wsgi) already removed the framing
            return _read_to_end(stream, limit)
        return _read_chunked(stream, limit)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        raise Rejected(400, "bad Content-Length") from None
    if length > limit:
        raise Rejected(413, f"body over {limit} bytes")
    try:
        body: bytes = stream.read(length) if length > 0 else b""
        return body
    except OSError:  # the socket timeout: fewer bytes came than announced
        raise Rejected(400, "the body did not arrive (Content-Length)") from None


# a chunk-size line: hex digits, optional extensions; longer means a broken sender
MAX_CHUNK_LINE = 4096
MAX_TRAILER_LINES = 100
_HEX = b"0123456789abcdefABCDEF"


def _read_chunked(stream: Any, limit: int) -> bytes:
    """Decode a chunked body, refusing it (413) as soon as it passes ``limit``:
    a sender cannot make the receiver buffer more than the limit by streaming."""
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            line = stream.readline(MAX_CHUNK_LINE + 1)
            if not line.endswith(b"\n") or len(line) > MAX_CHUNK_LINE:
                raise Rejected(400, "malformed chunked body (chunk size line)")
            size_text = line.split(b";", 1)[0].strip()
            if not size_text or size_text.strip(_HEX):
                raise Rejected(400, "malformed chunked body (chunk size)")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > limit:
                raise Rejected(413, f"body over {limit} bytes")
            chunk = stream.read(size)
            if len(chunk) != size or stream.read(2) != b"\r\n":
                raise Rejected(400, "malformed chunked body (chunk data)")
            parts.append(chunk)
        for _ in range(MAX_TRAILER_LINES):  # trailer fields, ignored, to the blank line
            line = stream.readline(MAX_CHUNK_LINE + 1)
            if line in (b"\r\n", b"\n"):
                return b"".join(parts)
            if not line.endswith(b"\n"):
                break
        raise Rejected(400, "malformed chunked body (trailer)")
    except OSError:  # the socket timeout: the sender stopped mid-body
        raise Rejected(400, "the chunked body did not arrive") from None


def _read_to_end(stream: Any, limit: int) -> bytes:
    """Read an already de-chunked input to its end, at most ``limit`` bytes."""
    parts: list[bytes] = []
    total = 0
    try:
        while True:
            block = stream.read(min(65536, limit + 1 - total))
            if not block:
                return b"".join(parts)
            total += len(block)
            if total > limit:
                raise Rejected(413, f"body over {limit} bytes")
            parts.append(block)
    except OSError:
        raise Rejected(400, "the body did not arrive") from None


def _say(message: str, level: str = "info", **fields: Any) -> None:
    """One of the receiver's lines, ``miva-sync listen: …`` (a JSON line with
    ``fields`` under --log-format json). They are the server's access log, so
    -q leaves them on, as it always has; its warnings use console.warning."""
    console.line(level, message, command="listen", **fields)


class _Handler(WSGIRequestHandler):
    """Access log on the console without the secret path or customer details."""

    # every socket read and write gives up after this long: a client that sends
    # its request slowly (or never finishes it) cannot hold a thread forever
    timeout = REQUEST_TIMEOUT

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        # a request line too long or garbled to parse has no path or command
        path = getattr(self, "path", "").split("?", 1)[0]
        shown = "/healthz" if path.rstrip("/") == "/healthz" else "/webhook/…"
        outcome = getattr(_request, "outcome", None) or {}
        _request.outcome = None
        detail = ""
        fields: dict[str, Any] = {}
        if "id" in outcome:
            detail = f" order {outcome['id']} {outcome['result']}"
            fields = {"order": outcome["id"], "result": outcome["result"]}
        elif "error" in outcome:
            detail = f" ({outcome['error']})"
            fields = {"error": outcome["error"]}
        method = getattr(self, "command", None) or "-"
        client = self.client_address[0]
        _say(
            f'{client} "{method} {shown}" {code}{detail}',
            event="request",
            client=client,
            method=method,
            path=shown,
            status=int(code) if str(code).isdigit() else str(code),
            **fields,
        )

    def log_message(self, format: str, *args: Any) -> None:
        return  # everything worth logging goes through log_request


class ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    # in-flight deliveries finish before shutdown returns: their 2xx is a promise
    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True
    max_concurrent = MAX_CONCURRENT

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._slots = threading.BoundedSemaphore(self.max_concurrent)

    def process_request(self, request: Any, client_address: Any) -> None:
        # a flood of connections gets a quick 503 instead of unbounded threads
        if not self._slots.acquire(blocking=False):
            with contextlib.suppress(OSError):
                request.sendall(BUSY_RESPONSE)
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        # a client that stalls mid-request (socket timeout) or hangs up: one
        # line, not socketserver's traceback (the receiver keeps serving)
        error = sys.exc_info()[1]
        _say(
            f"{client_address[0]} request abandoned ({type(error).__name__})",
            event="abandoned",
            client=client_address[0],
        )


def make_server(
    host: str, port: int, app: WebhookApp | None = None
) -> ThreadingWSGIServer:
    """Bind ``host:port`` (0: a free port); a busy one is a ConfigError (exit 3)."""
    handler = type("_Handler", (_Handler,), {"timeout": _request_timeout()})
    try:
        server = ThreadingWSGIServer((host, port), handler)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}"
            f"{'; --port 0 picks a free port' if port else ''}"
        ) from None
    if app is not None:
        server.set_app(app)
    return server


def check_secret(secret: str | None, other_secrets: Iterable[str]) -> str:
    if not secret:
        raise ConfigError(
            "listen needs a secret: set MIVA_SYNC_WEBHOOK_SECRET (or --secret, or "
            "webhook_secret in the profile); e.g. python3 -c 'import secrets; "
            "print(secrets.token_urlsafe(24))'"
        )
    if len(secret) < MIN_SECRET_LENGTH:
        raise ConfigError(
            f"the webhook secret must be at least {MIN_SECRET_LENGTH} characters"
        )
    if any(hmac.compare_digest(secret, other) for other in other_secrets):
        raise ConfigError(
            "the webhook secret must differ from the API token and signing key"
        )
    if not all(c.isalnum() or c in "-_.~" for c in secret):
        raise ConfigError(
            "the webhook secret may hold only letters, digits and - _ . ~"
        )
    return secret


def serve(
    server: ThreadingWSGIServer,
    *,
    on_ready: Callable[[str], None],
    stop_signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGINT),
) -> None:
    """Serve until SIGTERM/SIGINT, then finish in-flight deliveries and return."""

    def stop(signum: int, frame: Any) -> None:
        # shutdown() waits for serve_forever to return: call it from another thread
        threading.Thread(target=server.shutdown, daemon=True).start()

    previous = {sig: signal.signal(sig, stop) for sig in stop_signals}
    try:
        host, port = server.server_address[:2]
        if isinstance(host, bytes):  # only for AF_UNIX, which this never binds
            host = host.decode()
        on_ready(f"http://{host}:{port}")
        server.serve_forever(poll_interval=0.2)
    finally:
        server.server_close()  # joins the request threads (block_on_close)
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_listen(options: GlobalOptions, request: ListenRequest) -> None:
    """``miva-sync listen``: wire settings, sink, store access and the server."""
    from miva_sync.config import load_settings

    settings = load_settings(
        options.settings_flags(webhook_secret=request.secret or None)
    )
    # the receiver may use every secret (its own, and the store's to re-read
    # orders): an unset env: reference is exit 3 here, naming the variable
    settings.require_secrets()
    secret = check_secret(
        settings.webhook_secret,
        (s for s in (settings.api_token, settings.signing_key) if s),
    )
    if request.verify_with_api or request.require_payment:
        # held orders are re-read by id to see whether they were paid
        settings.require_connection()
    # bound before anything is opened or said: a busy port is one line, exit 3
    server = make_server(request.host, request.port)
    try:
        _receive(settings, request, secret, server)
    finally:
        server.server_close()
    _say("stopped", event="stop")


def _receive(
    settings: Settings, request: ListenRequest, secret: str, server: ThreadingWSGIServer
) -> None:
    """Open the target and serve deliveries into it until told to stop."""
    from miva_sync.sinks import open_sink

    access = _store_access(settings) if settings.has_connection else None
    fetch = access[0] if access else None
    if fetch is None:
        console.warning(
            "no store connection configured; deliveries that carry only an id are "
            "refused (503) and deliveries without dt_updated are written as they "
            "arrive",
            command="listen",
        )
    sink = open_sink(request.output, source="webhook", store=_served_store(settings))
    writer: OrderWriter | None = None
    try:
        holds = None
        if request.require_payment:
            holds = Holds(
                StateStore(settings.state_path()), settings.store_key, request.hold_for
            )
        writer = OrderWriter(
            sink, fetch, verify_with_api=request.verify_with_api, holds=holds
        )
        if holds is not None and access is not None:
            _start_rechecks(writer, access[1], _recheck_interval())
        server.set_app(WebhookApp(secret, writer, max_body=request.max_body))

        def ready(base: str) -> None:
            _say(
                f"receiving at {base}/webhook/<secret> into {sink.description}; "
                f"health at {base}/healthz",
                event="start",
                url=base,
            )

        serve(server, on_ready=ready)
    finally:
        if writer is not None:
            writer.close()
        else:
            sink.close()


def _served_store(settings: Any) -> StoreIdentity | None:
    """The store the receiver serves, for a database target to record or refuse.

    Its settings name it (the same ones that re-read orders by id); without
    them the receiver cannot tell, and the target is neither checked nor claimed.
    """
    if not (settings.url and settings.store_code):
        return None
    from miva_sync.app.session import store_identity

    return store_identity(settings, settings.store_key)


def _store_access(
    settings: Any,
) -> tuple[Fetch, Callable[[list[int]], list[dict[str, Any]]]]:
    """Read one order, or many, from the store (one client shared by all threads)."""
    from miva_sync.store.client import MivaClient
    from miva_sync.store.query import DEFAULT_COLUMNS, ListQuery
    from miva_sync.sync.held import fetcher

    client = MivaClient.from_settings(settings)
    lock = threading.Lock()  # one requests.Session, shared by the request threads
    read_many = fetcher(client, ListQuery(columns=DEFAULT_COLUMNS))

    def fetch_many(ids: list[int]) -> list[dict[str, Any]]:
        with lock:
            return read_many(ids)

    def fetch(oid: int) -> dict[str, Any] | None:
        rows = fetch_many([oid])
        return rows[0] if rows else None

    return fetch, fetch_many


def _request_timeout() -> float:
    """Seconds a request's socket reads may stall (MIVA_SYNC_WEBHOOK_TIMEOUT, default 30)."""
    return _env_seconds("MIVA_SYNC_WEBHOOK_TIMEOUT", REQUEST_TIMEOUT, 0.1, 3600)


def _recheck_interval() -> float:
    """Seconds between re-checks of held orders (MIVA_SYNC_HOLD_RECHECK, default 300)."""
    return _env_seconds("MIVA_SYNC_HOLD_RECHECK", 300.0, 0.1, 86400)


def _env_seconds(name: str, default: float, lo: float, hi: float) -> float:
    """A number of seconds from the environment, within ``lo..hi`` (NaN and
    infinity are not: a re-check loop sleeping ``inf`` died of OverflowError)."""
    try:
        value = float(os.environ.get(name) or default)
    except ValueError:
        value = math.nan
    if not lo <= value <= hi:
        raise ConfigError(f"{name} must be {lo:g}..{hi:g} seconds")
    return value


def _start_rechecks(
    writer: OrderWriter,
    fetch_many: Callable[[list[int]], list[dict[str, Any]]],
    every: float,
) -> None:
    """Release paid or expired held orders now and then, from a daemon thread."""

    def loop() -> None:
        while True:
            try:
                for warning in writer.release_due(fetch_many):
                    console.warning(warning, command="listen")
            except (Rejected, MivaSyncError) as err:
                _say(f"re-checking held orders failed: {err}", "error")
            time.sleep(every)

    threading.Thread(target=loop, name="miva-sync-holds", daemon=True).start()

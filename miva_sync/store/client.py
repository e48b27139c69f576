"""MivaClient: the only code that speaks HTTP to a Miva store.

One request = serialise the body once, add a fresh ``Miva_Request_Timestamp``,
sign exactly those bytes, POST them with a timeout, classify the answer in one
place (:meth:`MivaClient._classify`). Transient failures are retried with capped
exponential backoff and jitter, bounded by attempts and by a time budget.
"""

from __future__ import annotations

import base64
import contextlib
import email.utils
import hashlib
import hmac
import logging
import os
import queue
import random
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar

import requests

from miva_sync import __version__
from miva_sync.base import jsonio
from miva_sync.config import Settings, decode_signing_key
from miva_sync.errors import AckError, ApiError, AuthError, ConfigError, TransientError
from miva_sync.store.query import ListQuery, chunked
from miva_sync.store.urls import redact_url, url_passwords

log = logging.getLogger("miva_sync.store.client")

AUTH_HEADER = "X-Miva-API-Authorization"
WORKFLOW_MODULE = "orderworkflow"
BACKOFF_BASE = 0.5
BACKOFF_CAP = 8.0
RETRY_AFTER_CAP = 30.0
DEFAULT_MAX_ATTEMPTS = 8
EXCERPT_LENGTH = 160
EXCERPT_SOURCE = 4000  # bytes of an error body read for its excerpt
CHUNK_SIZE = 64 * 1024
MAX_RESPONSE_BYTES = 128 * 1024 * 1024  # a page of 1000 full orders is ~5 MB
_DIGESTS = {"sha256": hashlib.sha256, "sha1": hashlib.sha1}

# The Miva functions miva-sync calls. An error from one records its name as
# ``request`` (a module function by its own name, not "Module").
LIST_ORDERS = "OrderList_Load_Query"
QUEUE_ORDERS = "QueueOrderList_Load_Query"
ACKNOWLEDGE = "OrderList_Acknowledge"

# The one list of the store's ``error_code`` values that mean "authentication
# refused" in a ``success: 0`` answer: exit 4, like HTTP 401/403. Only codes
# with evidence belong here (docs/miva-api.md §3.7, §3.8): Miva's own json.mvc
# answers every credential failure (unknown or disabled token, IP not allowed,
# bad signature, timestamp outside the window) and a function the token may
# not call with HTTP 200 and ``access_denied``. Every other ``success: 0`` is
# exit 5 with the store's own code and words: guessing "auth" from a message
# would send a user to the wrong fix.
AUTH_ERROR_CODES: frozenset[str] = frozenset({"access_denied"})


@dataclass(frozen=True)
class Page:
    """One page of a list query."""

    orders: list[dict[str, Any]]
    total_count: int
    start_offset: int


class _Answer(NamedTuple):
    """A successful answer and its HTTP status, which errors found in it carry."""

    status: int
    body: dict[str, Any]


class _Raw(NamedTuple):
    """One HTTP answer as it came, before it is classified."""

    status: int
    headers: Mapping[str, str]
    content: bytes


T = TypeVar("T")


class _Later(Generic[T]):
    """The result of a job the courier runs: :meth:`result` waits for it."""

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: T | None = None
        self._error: BaseException | None = None

    def settle(self, job: Callable[[], T]) -> None:
        try:
            self._value = job()
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread
            self._error = exc
        self._done.set()

    def result(self) -> T:
        self._done.wait()
        if self._error is not None:
            error, self._error = self._error, None  # raised once, its frames freed
            raise error
        value, self._value = self._value, None
        return value  # type: ignore[return-value]


class _Watchdog:
    """Cuts a body read that has run past its time limit (:meth:`MivaClient._read_body`).

    One thread for the client's life, not a timer thread per request: starting
    a thread for each page was a tenth of a pull's CPU. A client reads one
    body at a time (the courier only sends), so it watches one read at a time.
    """

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._deadline: float | None = None
        self._cut: Callable[[], None] | None = None
        self._waking: float | None = None  # when the thread wakes (None: when told)
        self._thread = threading.Thread(
            target=self._serve, name="miva-sync-watchdog", daemon=True
        )
        self._thread.start()

    def arm(self, seconds: float, cut: Callable[[], None]) -> None:
        with self._changed:
            # the real clock, as a timer thread had: tests fake the client's own
            self._deadline, self._cut = time.monotonic() + seconds, cut
            # wake the thread only if it would sleep past this deadline: reads
            # follow each other with the same limit, so it rarely needs telling
            if self._waking is None or self._deadline < self._waking:
                self._changed.notify()

    def disarm(self) -> None:
        with self._changed:
            self._deadline = self._cut = None

    def _serve(self) -> None:
        with self._changed:
            while True:
                if self._deadline is None or self._cut is None:
                    self._waking = None
                    self._changed.wait()
                    continue
                left = self._deadline - time.monotonic()
                if left > 0:
                    self._waking = self._deadline
                    self._changed.wait(left)
                    continue
                # under the lock: the read cannot end (and its connection go to
                # another request) while its socket is being cut
                cut, self._deadline, self._cut = self._cut, None, None
                cut()


class _Posted(NamedTuple):
    """A request sent, its answer's headers in, its body not yet read."""

    response: requests.Response
    request: str
    what: str
    started: float
    attempt: int


class PendingPage:
    """A list query on its way (:meth:`MivaClient.list_orders_soon`)."""

    def __init__(
        self, client: MivaClient, payload: dict[str, Any], posted: _Later[_Posted]
    ) -> None:
        self._client = client
        self._payload = payload
        self._posted = posted
        self._raw: _Raw | None = None
        self._error: BaseException | None = None

    def content(self) -> bytes | None:
        """The answer's bytes once they are in (None: no usable answer), for a
        look before the parse (store/peek.py); nothing is checked here."""
        try:
            raw = self._first()
        except Exception:  # noqa: BLE001 - kept: page() raises it, or retries
            return None
        return raw.content if raw.status == 200 else None

    def page(self) -> Page:
        """The page, exactly as :meth:`MivaClient.list_orders` would give it."""
        answer = self._client._attempts(self._payload, self._first)
        return _page(answer, LIST_ORDERS)

    def discard(self) -> None:
        """Not wanted after all: let its connection go back to the pool once
        the request is done, without waiting for it here."""
        if self._raw is None and self._error is None:
            self._client._courier().submit(partial(_close, self._posted))

    def _first(self) -> _Raw:
        """The first attempt's answer (its body read once)."""
        if self._raw is None and self._error is None:
            try:
                self._raw = self._client._receive(self._posted.result())
            except BaseException as exc:  # noqa: BLE001 - raised to page()'s caller
                self._error = exc
        if self._error is not None:
            raise self._error
        assert self._raw is not None  # noqa: S101 - set above
        return self._raw


def _close(posted: _Later[_Posted]) -> None:
    # runs on the courier after the post it follows, so that post is settled
    with contextlib.suppress(Exception):
        posted.result().response.close()


class _Courier:
    """One daemon thread that runs a client's background exchanges in turn.

    One thread for the client's life, not one per request: starting a thread
    per page cost more than it saved, and a page allocated in a short-lived
    thread's malloc arena kept that arena's memory (benchmarks/README.md).
    """

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], _Later[Any]] | None]
        self._jobs = queue.SimpleQueue()
        self._thread = threading.Thread(
            target=self._serve, name="miva-sync-courier", daemon=True
        )
        self._thread.start()

    def submit(self, job: Callable[[], T]) -> _Later[T]:
        later: _Later[T] = _Later()
        self._jobs.put((job, later))
        return later

    def close(self) -> None:
        # never waits: a request still in flight (an interrupted pull) ends on
        # its own timeout in a daemon thread nobody waits for
        self._jobs.put(None)

    def _serve(self) -> None:
        while (item := self._jobs.get()) is not None:
            job, later = item
            later.settle(job)


def sign(body: bytes, key: bytes, digest: str = "sha256") -> str:
    """Base64 HMAC of the exact body bytes (docs/miva-api.md §2.2)."""
    mac = hmac.new(key, body, _DIGESTS[digest]).digest()
    return base64.b64encode(mac).decode("ascii")


def authorization(token: str, body: bytes, key: bytes | None, digest: str) -> str:
    """The ``X-Miva-API-Authorization`` value for these body bytes."""
    if key is None:
        return f"MIVA {token}"
    return f"MIVA-HMAC-{digest.upper()} {token}:{sign(body, key, digest)}"


def encode_body(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON: the bytes that are both signed and sent.

    The same bytes as ``json.dumps(payload, separators=(",", ":"),
    ensure_ascii=False)`` for every body we build (strings, ints, lists).
    """
    return jsonio.dumps(payload)


class MivaClient:
    """A signed Miva JSON API client with timeouts, retries and typed errors."""

    def __init__(
        self,
        url: str,
        store_code: str,
        api_token: str,
        *,
        signing_key: str | None = None,
        digest: str = "sha256",
        connect_timeout: float = 10.0,
        read_timeout: float = 60.0,
        retry_budget: float = 20.0,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        max_rps: float | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
        verify_tls: bool = True,
    ) -> None:
        if digest not in _DIGESTS:
            raise ConfigError(f"digest must be sha256 or sha1, not {digest!r}")
        self.url = url
        self.shown_url = redact_url(url)  # a store behind basic auth: user:pass@
        self.store_code = store_code
        self._token = api_token
        self._key = decode_signing_key(signing_key) if signing_key else None
        # how messages name the token and key: where each came from (a flag, a
        # variable, a profile key); from_settings fills it in
        self.setting_names = {
            "api_token": "MIVA_API_TOKEN",
            "signing_key": "MIVA_SIGNING_KEY",
        }
        self._secrets = tuple(
            s for s in (api_token, signing_key, *url_passwords(url)) if s
        )
        self.digest = digest
        self.timeout = (connect_timeout, read_timeout)
        self.retry_budget = retry_budget
        self.max_attempts = max(1, max_attempts)
        self._min_interval = 1.0 / max_rps if max_rps else 0.0
        self._next_slot = 0.0
        self._rate_lock = threading.Lock()
        self._sleep = sleep
        self._clock = clock
        self._monotonic = monotonic
        self._jitter = jitter
        self._session = session or requests.Session()
        self._session.headers.update(
            {
                "Content-Type": "application/json",
                "Accept": "application/json",
                "User-Agent": f"miva-sync/{__version__}",
            }
        )
        self.requests_sent = 0
        self.retries = 0  # requests sent again after a transient failure
        self.max_response_bytes = MAX_RESPONSE_BYTES
        # The environment's proxy and CA-bundle settings, read once: requests
        # would scan the whole environment (and ~/.netrc) again on every
        # request, a few percent of a pull's CPU. Per request, verify also
        # keeps a CA-bundle variable from overriding --insecure.
        self._verify: bool | str = verify_tls and (
            os.environ.get("REQUESTS_CA_BUNDLE")
            or os.environ.get("CURL_CA_BUNDLE")
            or True
        )
        self._proxies = requests.utils.get_environ_proxies(url)
        if session is None:
            self._session.trust_env = False
        if not verify_tls:
            import urllib3

            # one clear warning here instead of one per request from urllib3
            urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)
            log.warning(
                "TLS certificate verification is off (--insecure): anyone on the "
                "network path can read and change this store's orders"
            )
        # The last answer's Date header and this machine's clock when it came,
        # for `miva-sync check` to measure clock skew (timestamps are signed).
        self.last_response_date: str | None = None
        self.last_response_at: float | None = None
        self._courier_thread: _Courier | None = None
        self._watchdog: _Watchdog | None = None

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> MivaClient:
        settings.require_connection()
        options: dict[str, Any] = {
            "signing_key": settings.signing_key,
            "digest": settings.digest,
            "connect_timeout": settings.connect_timeout,
            "read_timeout": settings.read_timeout,
            "retry_budget": settings.retry_budget,
            "max_rps": settings.max_rps,
            "verify_tls": not settings.insecure,
        }
        options.update(overrides)
        client = cls(
            settings.url or "",
            settings.store_code or "",
            settings.api_token or "",
            **options,
        )
        client.setting_names = {
            name: settings.origin(name) for name in client.setting_names
        }
        return client

    def __repr__(self) -> str:
        auth = f"HMAC-{self.digest.upper()}" if self._key else "token"
        return f"MivaClient(url={self.shown_url!r}, store_code={self.store_code!r}, auth={auth})"

    def __enter__(self) -> MivaClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._courier_thread is not None:
            self._courier_thread.close()
        self._session.close()

    def _courier(self) -> _Courier:
        if self._courier_thread is None:
            self._courier_thread = _Courier()
        return self._courier_thread

    # -- API functions -------------------------------------------------------

    def list_orders(self, query: ListQuery) -> Page:
        """``OrderList_Load_Query``."""
        return _page(self._exchange(LIST_ORDERS, query.to_params()), LIST_ORDERS)

    def list_orders_soon(self, query: ListQuery) -> PendingPage:
        """Send ``list_orders(query)`` now; :meth:`PendingPage.page` waits for it.

        Only the first attempt's request runs in the background, up to the
        answer's headers (one thread per client): the body is read, parsed and
        classified, and any retry made, in the thread that asks for the page,
        so errors, retries and the page's objects are exactly those of
        :meth:`list_orders`. The pager uses it to have the store build the next
        page while it parses and writes this one.
        """
        payload = self._payload(LIST_ORDERS, query.to_params())
        posted = self._courier().submit(partial(self._post, payload, 1))
        return PendingPage(self, payload, posted)

    def queue_orders(self, queue_code: str, query: ListQuery) -> Page:
        """``QueueOrderList_Load_Query`` on a workflow queue."""
        params = {"Queue_Code": queue_code, **query.to_params()}
        return _page(self._exchange(*_module(QUEUE_ORDERS, params)), QUEUE_ORDERS)

    def acknowledge(self, order_ids: Sequence[int], *, batch_size: int = 100) -> int:
        """``OrderList_Acknowledge`` in batches; raise :class:`AckError` on ``processed: 0``."""
        done = 0
        for batch in chunked(list(order_ids), batch_size):
            answer = self._exchange(*_module(ACKNOWLEDGE, {"Order_Ids": batch}))
            if not answer.body.get("processed"):
                raise AckError(
                    "the store did not process the acknowledgement (processed: 0) "
                    f"for orders {_id_list(batch)}; they stay in the queue",
                    order_ids=batch,
                    http_status=answer.status,
                    request=ACKNOWLEDGE,
                )
            done += len(batch)
        return done

    def call_module(
        self, module_function: str, params: dict[str, Any]
    ) -> dict[str, Any]:
        """A ``Function: Module`` call on the ``orderworkflow`` module."""
        return self.call(*_module(module_function, params))

    def call(
        self, function: str, params: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Call one API function and return the successful response object."""
        return self._exchange(function, params).body

    def _exchange(self, function: str, params: dict[str, Any] | None) -> _Answer:
        """:meth:`call`, keeping the answer's status for errors found in its body."""
        return self._attempts(self._payload(function, params))

    def _payload(self, function: str, params: dict[str, Any] | None) -> dict[str, Any]:
        payload: dict[str, Any] = {"Store_Code": self.store_code, "Function": function}
        payload.update(params or {})
        passphrase = payload.get("Passphrase")
        if passphrase and passphrase not in self._secrets:
            # a store echoing the request back must not show it in an error
            self._secrets = (*self._secrets, str(passphrase))
        return payload

    def _attempts(
        self, payload: dict[str, Any], first: Callable[[], _Raw] | None = None
    ) -> _Answer:
        """Send ``payload`` until it succeeds, fails for good or the budget is
        spent; ``first``: gives the first attempt's answer, already under way."""
        attempt = 0
        started = self._monotonic()
        first_failure: float | None = None
        request = _function(payload)
        while True:
            attempt += 1
            try:
                if first is not None and attempt == 1:
                    raw = first()
                else:
                    raw = self._transfer(payload, attempt)
                status = raw.status
                return _Answer(
                    status, self._classify(status, raw.headers, raw.content, request)
                )
            except TransientError as err:
                now = self._monotonic()
                first_failure = now if first_failure is None else first_failure
                spent = now - first_failure
                delay = self._backoff(attempt, err.retry_after)
                if attempt >= self.max_attempts or spent + delay > self.retry_budget:
                    raise TransientError(
                        f"{err}; gave up after {attempt} attempt(s) in "
                        f"{now - started:.1f}s "
                        "(the next run will retry)",
                        http_status=err.http_status,
                        request=err.request,
                    ) from None
                log.info("retrying in %.1fs after: %s", delay, err)
                self.retries += 1
                self._sleep(delay)

    # -- one attempt -----------------------------------------------------------

    def _transfer(self, payload: dict[str, Any], attempt: int) -> _Raw:
        """One HTTP exchange: the answer's status, headers and whole body."""
        return self._receive(self._post(payload, attempt))

    def _post(self, payload: dict[str, Any], attempt: int) -> _Posted:
        """Send one attempt and wait for the answer's status and headers.

        Runs in the caller's thread or in the courier's (list_orders_soon), so
        it touches nothing but the session and this attempt's own values.
        """
        # A fresh timestamp and signature on every attempt: stores reject stale ones.
        payload["Miva_Request_Timestamp"] = int(self._clock())
        body = encode_body(payload)
        headers = {
            AUTH_HEADER: authorization(self._token, body, self._key, self.digest)
        }
        self._throttle()
        request = _function(payload)
        what = _describe(payload)
        if log.isEnabledFor(logging.DEBUG):  # (the headers copy costs every request)
            log.debug(
                "POST %s %s %s", self.shown_url, what, self._redacted_headers(headers)
            )
        started = self._monotonic()
        with self._rate_lock:  # the courier and the caller may both be counting
            self.requests_sent += 1
        with self._transport_errors(request, what):
            response = self._session.post(
                self.url,
                data=body,
                headers=headers,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
                verify=self._verify,
                proxies=self._proxies,
            )
        return _Posted(response, request, what, started, attempt)

    def _receive(self, posted: _Posted) -> _Raw:
        """Read the answer's body (in the thread that will parse it, so the
        page's bytes are allocated where they are used and freed)."""
        response, request, what = posted.response, posted.request, posted.what
        with self._transport_errors(request, what):
            content = self._read_body(response, request, what)  # a cut-off body raises
        elapsed_ms = (self._monotonic() - posted.started) * 1000
        self.last_response_date = response.headers.get("Date")
        self.last_response_at = self._clock()
        log.info(
            "POST %s %s -> HTTP %s in %.0f ms (attempt %d)",
            self.shown_url,
            what,
            response.status_code,
            elapsed_ms,
            posted.attempt,
        )
        return _Raw(response.status_code, response.headers, content)

    @contextlib.contextmanager
    def _transport_errors(self, request: str, what: str) -> Iterator[None]:
        """requests' exceptions as this client's errors (retried: TransientError)."""
        try:
            yield
        except (
            requests.exceptions.InvalidURL,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidSchema,
        ) as exc:
            raise ConfigError(f"MIVA_URL is not usable: {type(exc).__name__}") from None
        except requests.exceptions.Timeout:
            raise TransientError(
                f"the store did not answer within {self.timeout[1]:g}s ({what})",
                request=request,
            ) from None
        except requests.exceptions.RequestException as exc:
            raise TransientError(
                f"connection to the store failed ({_transport_reason(exc)}; {what})",
                request=request,
            ) from None

    def _read_body(self, response: requests.Response, request: str, what: str) -> bytes:
        """The whole body, within a total time limit and a size limit.

        The read timeout bounds each socket read, not the answer: a store (or a
        proxy) dripping a byte at a time would never trip it. A watchdog cuts
        the connection once the whole exchange has taken too long.
        """
        limit = self.timeout[0] + 2 * self.timeout[1]
        expired = threading.Event()

        def cut() -> None:
            expired.set()
            sock = getattr(getattr(response.raw, "connection", None), "sock", None)
            with contextlib.suppress(OSError, AttributeError):
                if sock is not None:
                    sock.shutdown(socket.SHUT_RDWR)

        if self._watchdog is None:
            self._watchdog = _Watchdog()
        self._watchdog.arm(limit, cut)
        chunks: list[bytes] = []
        size = 0
        try:
            for chunk in response.iter_content(CHUNK_SIZE):
                size += len(chunk)
                if size > self.max_response_bytes:
                    raise ApiError(
                        f"the store's answer is larger than {self.max_response_bytes} "
                        f"bytes ({what}): use a smaller --page-size",
                        http_status=response.status_code,
                        request=request,
                    )
                chunks.append(chunk)
        except (requests.exceptions.RequestException, OSError):
            if expired.is_set():
                raise TransientError(
                    f"the store's answer took longer than {limit:g}s ({what})",
                    http_status=response.status_code,
                    request=request,
                ) from None
            raise
        finally:
            self._watchdog.disarm()
            response.close()
        if expired.is_set():
            raise TransientError(
                f"the store's answer took longer than {limit:g}s ({what})",
                http_status=response.status_code,
                request=request,
            )
        return b"".join(chunks)

    def _classify(
        self, status: int, headers: Mapping[str, str], content: bytes, request: str
    ) -> dict[str, Any]:
        """Map one HTTP answer to a response object or a typed error."""
        if 300 <= status < 400:
            raise ConfigError(
                f"the store redirected the request (HTTP {status}) to "
                f"{self._scrub(headers.get('Location', '?'))}: set MIVA_URL to the final "
                "address (https, exact path)"
            )
        if status in (401, 403):
            refusal = _json_object(content) or {}
            code = refusal.get("error_code")
            raise AuthError(
                self._auth_message(status, refusal),
                http_status=status,
                request=request,
                code=self._shown(code) if code else None,
            )
        if status == 429 or status >= 500:
            raise TransientError(
                f"HTTP {status} from the store: {self._excerpt(content)}",
                http_status=status,
                request=request,
                retry_after=_retry_after(headers.get("Retry-After"), self._clock()),
            )
        if status >= 400:
            hint = " (check the path in MIVA_URL)" if status in (404, 405) else ""
            raise ApiError(
                f"HTTP {status} from the store{hint}: {self._excerpt(content)}",
                http_status=status,
                request=request,
            )
        answer = _json_object(content)
        if answer is None:
            raise TransientError(
                f"HTTP {status} but the body is not a complete JSON object: "
                f"{self._excerpt(content)}",
                http_status=status,
                request=request,
            )
        success = answer.get("success")
        if success in (1, True, "1"):
            return answer
        if success in (0, False, "0"):
            code = answer.get("error_code")
            if isinstance(code, str) and code in AUTH_ERROR_CODES:
                raise AuthError(
                    self._auth_message(status, answer),
                    http_status=status,
                    request=request,
                    code=self._shown(code),
                )
            raise self._api_error(answer, status, request)
        if "success" in answer:
            # a flag that is there but means nothing: retrying cannot help
            raise ApiError(
                f"HTTP {status} but the answer's success flag is "
                f"{self._shown(repr(success))}: {self._excerpt(content)}",
                http_status=status,
                request=request,
            )
        raise TransientError(
            f"HTTP {status} but the answer has no success flag: {self._excerpt(content)}",
            http_status=status,
            request=request,
        )

    def _api_error(self, answer: dict[str, Any], status: int, request: str) -> ApiError:
        # one short line each, secrets out: the store's text ends up on stderr
        shown = self._shown
        code = shown(answer.get("error_code") or "unknown")
        message = shown(answer.get("error_message") or "no message")
        fields: list[tuple[str, str]] = []
        listed = answer.get("error_fields")
        for item in listed if isinstance(listed, list) else []:
            if isinstance(item, dict):
                fields.append(
                    (shown(item.get("error_field")), shown(item.get("error_message")))
                )
        if not fields and answer.get("error_field"):
            fields.append(
                (
                    shown(answer["error_field"]),
                    shown(answer.get("error_field_message") or ""),
                )
            )
        detail = "".join(f"; {name}: {msg}" for name, msg in fields)
        text = f"the store refused the request: {code}: {message}{detail}"
        return ApiError(
            text,
            code=code,
            http_status=status,
            request=request,
            field_errors=fields,
        )

    def _auth_message(self, status: int, answer: dict[str, Any]) -> str:
        """What an authentication refusal says, from the store's parsed answer
        (an empty one when the body is no JSON object)."""
        words = [answer.get("error_code"), answer.get("error_message")]
        said = ": ".join(str(w) for w in words if w)  # the store's code and words
        said_lower = said.lower()
        cause = self._auth_cause(said_lower)
        # HTTP 200 carrying success: 0 says nothing the store's code does not
        shown = [f"HTTP {status}"] if status != 200 else []
        shown += [self._shown(said)] if said else []
        where = f" ({': '.join(shown)})" if shown else ""
        return f"the store refused authentication{where}; likely cause: {cause}"

    def _auth_cause(self, said: str) -> str:
        """The likely fix, from the store's (lower-cased) words; Miva's own
        messages are quoted in docs/miva-api.md §3.7."""
        token, key = self.setting_names["api_token"], self.setting_names["signing_key"]
        if "requires request signature" in said:  # Miva's words, about a signature
            return f"the token requires a signature: set {key}"
        if "timestamp" in said:
            return (
                "this machine's clock (Miva_Request_Timestamp is outside the "
                "store's window): check NTP"
            )
        if "signature" in said or "hmac" in said:
            return f"the signing key: check {key} and the digest"
        if "disabled" in said:
            return "the token is disabled in the Miva admin"
        if "authorization type" in said:
            return f"the signing settings: {key} and the digest"
        if "ip" in said.replace(":", " ").split() or "address" in said:
            return "the token's IP allow-list in the Miva admin"
        if self._key is None:
            return (
                f"{token} or the token's IP allow-list, the store requires "
                f"a signature (set {key}), or the token may not call "
                "this function"
            )
        return (
            f"{token}, the token's IP allow-list, or the token may not call "
            "this function (User Management > API Tokens in the Miva admin)"
        )

    # -- helpers -----------------------------------------------------------------

    def _backoff(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), RETRY_AFTER_CAP)
        # int ** int is typed Any (a negative exponent gives a float)
        ceiling: float = min(BACKOFF_CAP, BACKOFF_BASE * 2 ** (attempt - 1))
        return ceiling * (0.5 + 0.5 * self._jitter())

    def _throttle(self) -> None:
        if not self._min_interval:
            return
        with self._rate_lock:
            now = self._monotonic()
            wait = self._next_slot - now
            self._next_slot = max(now, self._next_slot) + self._min_interval
        if wait > 0:
            self._sleep(wait)

    def _scrub(self, text: str) -> str:
        for secret in self._secrets:
            text = text.replace(secret, "[redacted]")
        return text

    def _shown(self, value: object) -> str:
        """A value from the store as one short line: secrets out first, then
        clipped (clipping first could cut a secret so it no longer matches)."""
        return _clip(self._scrub(str(value)))

    def _excerpt(self, content: bytes) -> str:
        if not content:
            return "(empty body)"
        text = content[:EXCERPT_SOURCE].decode("utf-8", "replace")
        import html  # only an error page needs it: not at start-up

        text = self._scrub(html.unescape(re.sub(r"<[^>]*>", " ", text)))
        if len(content) > EXCERPT_SOURCE:
            for secret in self._secrets:
                text = _without_partial(text, secret)  # one cut in two by the limit
        return _clip(text)

    def _redacted_headers(self, headers: dict[str, str]) -> dict[str, str]:
        shown = dict(headers)
        kind = shown[AUTH_HEADER].split(" ", 1)[0]
        shown[AUTH_HEADER] = f"{kind} [redacted]"
        return shown


def _without_partial(text: str, secret: str) -> str:
    """``text`` without a trailing beginning of ``secret`` (a cut-off copy)."""
    for length in range(len(secret) - 1, 0, -1):
        if text.endswith(secret[:length]):
            return text[:-length]
    return text


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXCERPT_LENGTH else text[: EXCERPT_LENGTH - 1] + "…"


def _json_object(content: bytes) -> dict[str, Any] | None:
    # The one parse of a page: the orders in it are these dicts from here to the
    # output (a parse is most of a client's CPU cost; jsonio uses orjson, a
    # slice of a page at a time: see loads_page)
    try:
        value = jsonio.loads_page(content)
    except (ValueError, UnicodeDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _module(module_function: str, params: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The function and parameters of a call to ``module_function`` on the
    ``orderworkflow`` module."""
    module = {"Module_Code": WORKFLOW_MODULE, "Module_Function": module_function}
    return "Module", {**module, **params}


def _page(answer: _Answer, request: str) -> Page:
    def malformed(what: str) -> ApiError:
        return ApiError(
            f"the store's answer {what}", http_status=answer.status, request=request
        )

    data = answer.body.get("data")
    if not isinstance(data, dict):
        raise malformed("has no data object")
    rows = data.get("data")
    if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
        raise malformed("has no list of orders (data.data)")
    try:
        total = int(data.get("total_count", len(rows)))
        offset = int(data.get("start_offset", 0))
    except (TypeError, ValueError, OverflowError):  # OverflowError: Infinity
        raise malformed("has a malformed total_count") from None
    return Page(orders=rows, total_count=total, start_offset=offset)


def _retry_after(value: str | None, now: float) -> float | None:
    """Seconds from a ``Retry-After`` header (seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - now)


def _transport_reason(exc: requests.exceptions.RequestException) -> str:
    if isinstance(exc, requests.exceptions.ChunkedEncodingError):
        return "the answer was cut short"
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS error"
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = str(exc).lower()
        if "refused" in text:
            return "connection refused"
        if "reset" in text or "aborted" in text or "remote end closed" in text:
            return "connection reset"
        if "name or service" in text or "resolve" in text or "getaddrinfo" in text:
            return "host name not found"
        return "connection error"
    return type(exc).__name__


def _function(payload: dict[str, Any]) -> str:
    """The Miva function a body calls: a module function by its own name."""
    return str(payload.get("Module_Function") or payload.get("Function"))


def _describe(payload: dict[str, Any]) -> str:
    parts = [_function(payload)]
    for key in ("Queue_Code", "Count", "Offset", "Sort"):
        if key in payload:
            parts.append(f"{key}={payload[key]}")
    if "Order_Ids" in payload:
        parts.append(f"{len(payload['Order_Ids'])} ids")
    return " ".join(parts)


def _id_list(ids: Sequence[int]) -> str:
    shown = ", ".join(str(i) for i in ids[:20])
    return shown + (f" and {len(ids) - 20} more" if len(ids) > 20 else "")

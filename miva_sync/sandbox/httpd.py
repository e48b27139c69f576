"""The HTTP layer: a threading server on loopback and the handler that applies faults."""

from __future__ import annotations

import json
import socket
import struct
import sys
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from miva_sync.sandbox.api import Reply
from miva_sync.sandbox.auth import HEADER
from miva_sync.sandbox.faults import Fault, html_page

if TYPE_CHECKING:
    from miva_sync.sandbox.harness import Sandbox


@dataclass
class RequestLogEntry:
    """One request as the sandbox saw it, and how it answered."""

    n: int
    method: str
    path: str
    headers: dict[str, str]
    raw: bytes = field(repr=False)
    body: Any = None  # the parsed JSON body, when it parses
    function: str | None = None
    module_function: str | None = None
    status: int | None = None  # None: the connection was reset without an answer
    fault: str | None = None
    error_code: str | None = None
    at: float = 0.0


class SandboxHTTPServer(ThreadingHTTPServer):
    """A ThreadingHTTPServer that knows its Sandbox."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], app: Sandbox) -> None:
        self.app = app
        super().__init__(address, Handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that goes away (closing a kept-alive connection with an
        answer it no longer wants unread: a reset) is normal, as on a real
        store; anything else is still reported."""
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
        super().handle_error(request, client_address)


class Handler(BaseHTTPRequestHandler):
    """POST /mm5/json.mvc; anything else is 404 or 405."""

    protocol_version = "HTTP/1.1"  # keep-alive, so benchmarks measure the store
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body go out in one write, and without Nagle's delay.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the request log is the record."""

    def do_POST(self) -> None:
        app = self.server.app
        path = urlsplit(self.path).path
        # Faults belong to the JSON endpoint: a stray path must not use one up.
        n, fault = app.begin_request(draw_fault=path == app.path)
        length = self.headers.get("Content-Length")
        raw = self.rfile.read(int(length)) if length and length.isdigit() else b""
        entry = RequestLogEntry(
            n, "POST", path, dict(self.headers.items()), raw, at=time.time()
        )
        entry.fault = fault.kind if fault else None
        if path != app.path:
            self._finish(entry, Reply(404, b"Not Found"), None, "text/plain")
            return
        if length is None:
            self._finish(entry, Reply(411, b"Length Required"), None, "text/plain")
            return
        app.pause(app.faults.latency_ms / 1000)
        answered = (
            fault is None
            or fault.kind in ("timeout", "truncate")
            or (fault.kind == "reset" and fault.options.get("processed", False))
        )
        reply = app.api.handle(raw, self.headers.get(HEADER)) if answered else None
        self._finish(entry, reply, fault)

    def do_GET(self) -> None:
        self._not_post("GET")

    def do_HEAD(self) -> None:
        self._not_post("HEAD")

    def do_PUT(self) -> None:
        self._not_post("PUT")

    def do_DELETE(self) -> None:
        self._not_post("DELETE")

    def do_PATCH(self) -> None:
        self._not_post("PATCH")

    def _not_post(self, method: str) -> None:
        app = self.server.app
        n, _ = app.begin_request(draw_fault=False)
        path = urlsplit(self.path).path
        entry = RequestLogEntry(
            n, method, path, dict(self.headers.items()), b"", at=time.time()
        )
        if path == app.path:
            reply = Reply(405, b"Method Not Allowed")
            self._finish(entry, reply, None, "text/plain", {"Allow": "POST"})
        else:
            self._finish(entry, Reply(404, b"Not Found"), None, "text/plain")

    def _finish(
        self,
        entry: RequestLogEntry,
        reply: Reply | None,
        fault: Fault | None,
        content_type: str = "application/json",
        extra: dict[str, str] | None = None,
    ) -> None:
        """Log the request, run the hooks, then answer (or fail) as the fault says."""
        app = self.server.app
        _describe(entry, reply)
        kind = fault.kind if fault else None
        if fault is not None and kind == "timeout":
            app.pause(float(fault.options.get("seconds", app.faults.timeout_seconds)))
        if kind in ("500", "502", "503", "429", "html200"):
            entry.status = 200 if kind == "html200" else int(kind)
        elif kind == "reset":
            entry.status = None
        # Hooks run before the answer leaves, so the client's next request
        # always sees their changes.
        app.end_request(entry)
        try:
            self._answer(reply, fault, content_type, extra or {})
        except OSError:
            self.close_connection = True  # the client went away; nothing to do

    def _answer(
        self,
        reply: Reply | None,
        fault: Fault | None,
        content_type: str,
        extra: dict[str, str],
    ) -> None:
        kind = fault.kind if fault else None
        options = fault.options if fault else {}
        if kind == "reset":
            # SO_LINGER 0: close with a TCP RST, as a crashed proxy does.
            self.connection.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
            )
            self.close_connection = True
            self.connection.close()
            return
        if kind in ("500", "502", "503", "429", "html200"):
            status = 200 if kind == "html200" else int(kind)
            headers = {}
            if kind == "429" or (kind == "503" and "retry_after" in options):
                headers["Retry-After"] = str(options.get("retry_after", 1))
            self._write(status, html_page(kind), "text/html; charset=utf-8", headers)
            return
        assert reply is not None  # noqa: S101 - every other path computed a reply
        if kind == "truncate":
            fraction = float(options.get("fraction", 0.5))
            cut = reply.body[: int(len(reply.body) * fraction)]
            self._write(reply.status, cut, content_type, {}, length=len(reply.body))
            self.close_connection = True
            return
        self._write(reply.status, reply.body, content_type, extra)

    def _write(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: dict[str, str],
        length: int | None = None,
    ) -> None:
        phrase = HTTPStatus(status).phrase
        lines = [
            f"HTTP/1.1 {status} {phrase}",
            f"Date: {formatdate(usegmt=True)}",
            "Server: miva-sync-sandbox",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body) if length is None else length}",
        ]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.wfile.write(head + (b"" if self.command == "HEAD" else body))


def _describe(entry: RequestLogEntry, reply: Reply | None) -> None:
    if reply is not None:
        entry.status = reply.status
        entry.error_code = reply.error_code
        entry.body = reply.payload
    if entry.body is None and entry.raw:
        try:
            entry.body = json.loads(entry.raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            entry.body = None
    if isinstance(entry.body, dict):
        function, module_function = (
            entry.body.get("Function"),
            entry.body.get("Module_Function"),
        )
        entry.function = function if isinstance(function, str) else None
        entry.module_function = (
            module_function if isinstance(module_function, str) else None
        )

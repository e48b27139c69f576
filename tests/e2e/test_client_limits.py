"""Every read has a time limit and a size limit: slow drips and huge bodies end cleanly."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from miva_sync.errors import ApiError, TransientError
from miva_sync.store.client import MivaClient
from miva_sync.store.query import ListQuery
from tests.support.fakes import TOKEN


def read_request(conn: socket.socket) -> None:
    """Read the whole request: closing with unread bytes would reset the connection."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            return
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            return
        body += chunk


@pytest.fixture
def raw_server() -> Iterator[Callable[[Callable[[socket.socket], None]], str]]:
    """A loopback server answering each connection with a handler of the test's."""
    servers: list[socket.socket] = []

    def start(handler: Callable[[socket.socket], None]) -> str:
        server = socket.socket()
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        servers.append(server)

        def serve() -> None:
            while True:
                try:
                    conn, _ = server.accept()
                except OSError:
                    return
                read_request(conn)
                try:
                    handler(conn)
                except OSError:
                    pass
                finally:
                    conn.close()

        threading.Thread(target=serve, daemon=True).start()
        return f"http://127.0.0.1:{server.getsockname()[1]}/mm5/json.mvc"

    yield start
    for server in servers:
        server.close()


def client(url: str, **options: float) -> MivaClient:
    return MivaClient(url, "PS", TOKEN, max_attempts=1, sleep=lambda s: None, **options)  # type: ignore[arg-type]


def test_client_endless_slow_body_is_cut_by_the_total_limit(
    raw_server: Callable[..., str],
) -> None:
    def drip(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
        )
        for _ in range(
            400
        ):  # one byte every 50 ms: each read is quick, the answer endless
            conn.sendall(b" ")
            time.sleep(0.05)

    url = raw_server(drip)
    with pytest.raises(TransientError, match="took longer than") as info:
        client(url, connect_timeout=0.3, read_timeout=0.3).list_orders(ListQuery())
    assert info.value.exit_code == 6


def test_client_enormous_body_is_refused_with_exit_5(
    raw_server: Callable[..., str],
) -> None:
    def huge(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 300000\r\n\r\n"
        )
        conn.sendall(b"{" + b" " * 299_998 + b"}")

    big = client(raw_server(huge))
    big.max_response_bytes = 100_000
    with pytest.raises(ApiError, match="larger than 100000 bytes") as info:
        big.list_orders(ListQuery())
    assert info.value.exit_code == 5


def test_client_silent_server_hits_the_read_timeout(
    raw_server: Callable[..., str],
) -> None:
    url = raw_server(lambda conn: time.sleep(2))
    with pytest.raises(TransientError, match="did not answer within"):
        client(url, connect_timeout=0.3, read_timeout=0.3).list_orders(ListQuery())


def test_client_cut_off_body_on_the_wire_is_transient(make_client: Any) -> None:
    """A real socket that promises more bytes than it sends (not a mock)."""
    import socket
    import threading

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]

    def serve() -> None:
        for _ in range(2):
            conn, _addr = server.accept()
            conn.recv(65536)
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b'Content-Length: 500\r\n\r\n{"success":1,"da'
            )
            conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    from miva_sync.store.client import MivaClient

    client = MivaClient(
        f"http://127.0.0.1:{port}/mm5/json.mvc",
        "PS",
        TOKEN,
        max_attempts=2,
        sleep=lambda s: None,
    )
    with pytest.raises(TransientError, match="cut short|not a complete"):
        client.list_orders(ListQuery())
    thread.join(5)
    server.close()

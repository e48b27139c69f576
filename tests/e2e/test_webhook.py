"""The webhook receiver, end to end: a real server, the sandbox delivering, real targets."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from miva_sync.app.listen import find_order
from miva_sync.sandbox import Sandbox
from tests.support import webhook
from tests.support.helpers import cli_env, run_cli
from tests.support.targets import read_target
from tests.support.webhook import SECRET, Receiver, targets

receivers = webhook.receivers


@pytest.mark.parametrize(
    ("name", "value"),
    [("MIVA_SYNC_HOLD_RECHECK", "inf"), ("MIVA_SYNC_HOLD_RECHECK", "nan"),
     ("MIVA_SYNC_WEBHOOK_TIMEOUT", "0"), ("MIVA_SYNC_WEBHOOK_TIMEOUT", "soon")],
)  # fmt: skip
def test_webhook_bad_time_settings_are_one_line_and_exit_3(
    tmp_path: Path, name: str, value: str
) -> None:
    # an infinite re-check interval used to pass, then kill the re-check thread
    with Sandbox(orders=5, seed=3) as sb:
        env = cli_env(sb, tmp_path / "home", MIVA_SYNC_WEBHOOK_SECRET=SECRET)
        env[name] = value
        args = ["listen", "--port", "0", "--require-payment", "-o", "-"]
        done = run_cli(*args, env=env, expect=3, timeout=30)
    assert done.stderr.count("\n") == 1 and name in done.stderr, done.stderr


@pytest.mark.parametrize("kind", ["jsonl", "dir", "sqlite"])
def test_webhook_sandbox_deliveries_land_in_their_newest_version(
    kind: str, tmp_path: Path, receivers: list[Receiver]
) -> None:
    target = targets(tmp_path)[kind]
    receiver = Receiver(target, tmp_path / "home")
    receivers.append(receiver)
    with Sandbox(orders=60, seed=41, webhook_url=receiver.url) as sb:
        store = sb.store
        created = [store.add_order()["id"] for _ in range(8)]
        existing = sorted(o["id"] for o in store.orders_snapshot())[:5]
        for oid in existing + created[:3]:
            store.update_order(oid, status=200, dt_updated=store.now() + 1)
        store.reveal(store.hidden_ids()[0])
        assert sb.webhook is not None
        sb.webhook.drain()
        assert set(sb.webhook.statuses) == {200}
        touched = set(created) | set(existing)
        snapshot = {o["id"]: o for o in store.orders_snapshot()}
    held = read_target(kind, target)
    assert touched <= set(held)
    for oid in held:
        assert held[oid]["dt_updated"] == snapshot[oid]["dt_updated"], oid
        assert held[oid] == snapshot[oid]


@pytest.mark.parametrize("kind", ["dir", "sqlite", "jsonl"])
def test_webhook_duplicates_and_older_versions_keep_the_newest(
    kind: str, tmp_path: Path, receivers: list[Receiver]
) -> None:
    target = targets(tmp_path)[kind]
    receiver = Receiver(target, tmp_path / "home")
    receivers.append(receiver)
    new = {"id": 9, "orderdate": 100, "dt_updated": 300, "status": 200, "items": []}
    old = {**new, "dt_updated": 200, "status": 100}
    answers = [receiver.post(new), receiver.post(new), receiver.post({"order": old})]
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert [a.json()["result"] for a in answers] == ["written", "unchanged", "older"]
    assert read_target(kind, target)[9]["status"] == 200
    if (
        kind == "jsonl"
    ):  # a stream only grows: the repeat and the older version were not appended
        assert len(Path(target).read_text().splitlines()) == 1


def test_webhook_rejects_bad_deliveries_and_writes_nothing(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    target = targets(tmp_path)["sqlite"]
    receiver = Receiver(target, tmp_path / "home", args=("--max-body", "2000"))
    receivers.append(receiver)
    order = {"id": 1, "orderdate": 1, "dt_updated": 2}
    cases = [
        (
            receiver.post(
                order, path=f"{receiver.base}/webhook/wrong-secret-0123456789ab"
            ),
            404,
        ),
        (receiver.post(order, path=f"{receiver.base}/webhook/"), 404),
        (receiver.post(order, path=f"{receiver.base}/"), 404),
        (receiver.post(None, raw=b"{not json"), 400),
        (receiver.post(None, raw=b"\xff\xfe"), 400),
        (receiver.post({"hello": "world"}), 422),
        (receiver.post([1, 2, 3]), 422),
        (receiver.post({"id": "x", "total": 1}), 422),
        (receiver.post({**order, "pad": "x" * 5000}), 413),
    ]
    assert [c[0].status_code for c in cases] == [c[1] for c in cases]
    assert cases[0][0].json() == {"error": "not found"}  # no detail for a wrong secret
    assert read_target("sqlite", target) == {}
    code, out, err = receiver.stop()
    assert code == 0 and out == ""
    assert SECRET not in err and "wrong-secret" not in err


def test_webhook_id_only_and_verify_with_api_read_the_store(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    with Sandbox(orders=20, seed=42) as sb:
        target = targets(tmp_path)["dir"]
        receiver = Receiver(target, tmp_path / "home", env=sb.env())
        receivers.append(receiver)
        real = sb.store.orders_snapshot()[0]
        # an id only (GET, as a workflow may send it) is fetched from the store
        answer = requests.get(receiver.url, params={"order_id": real["id"]}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert read_target("dir", target)[real["id"]] == real
        # a delivery without dt_updated is re-read by id before it is compared
        second = sb.store.orders_snapshot()[1]
        assert (
            receiver.post(
                {k: v for k, v in second.items() if k != "dt_updated"}
            ).status_code
            == 200
        )
        assert read_target("dir", target)[second["id"]] == second
        receiver.stop()
        verifying = Receiver(
            targets(tmp_path)["sqlite"],
            tmp_path / "home",
            env=sb.env(),
            args=("--verify-with-api",),
        )
        receivers.append(verifying)
        forged = {**real, "total": 0.01, "dt_updated": real["dt_updated"] + 999}
        assert verifying.post(forged).status_code == 200
        assert read_target("sqlite", targets(tmp_path)["sqlite"])[real["id"]] == real
        assert verifying.post({"id": 999_999, "total": 1}).status_code == 422


def test_webhook_sandbox_waits_for_payment_when_asked(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    target = targets(tmp_path)["jsonl"]
    receiver = Receiver(target, tmp_path / "home")
    receivers.append(receiver)
    with Sandbox(
        orders=5, seed=44, webhook_url=receiver.url, webhook_paid_only=True
    ) as sb:
        admin = sb.store.add_order(kind="admin")
        assert sb.webhook is not None
        sb.webhook.drain()
        assert admin["id"] not in read_target("jsonl", target)
        sb.store.pay(admin["id"])
        sb.webhook.drain()
        paid = read_target("jsonl", target)[admin["id"]]
        assert paid["payments"]


@pytest.mark.parametrize(
    ("secret_env", "message"),
    [
        ({}, "needs a secret"),
        ({"MIVA_SYNC_WEBHOOK_SECRET": "short"}, "at least 16"),
        (
            {
                "MIVA_SYNC_WEBHOOK_SECRET": "tok-0123456789abcdef",
                "MIVA_API_TOKEN": "tok-0123456789abcdef",
            },
            "differ from the API token",
        ),
        ({"MIVA_SYNC_WEBHOOK_SECRET": "has/slash-0123456789"}, "only letters"),
    ],
)
def test_webhook_secret_rules_are_exit_3(
    run: Any, secret_env: dict[str, str], message: str, tmp_path: Path
) -> None:
    result = run(["listen", "-o", str(tmp_path / "x.jsonl")], env=secret_env)
    assert result.exit_code == 3
    assert message in result.stderr
    for value in secret_env.values():
        assert value not in result.stderr


def test_webhook_finds_orders_in_wrappers() -> None:
    order = {"id": 5, "orderdate": 1}
    assert find_order(order) is order
    assert find_order({"event": "order.updated", "data": {"order": order}}) is order
    assert find_order([order]) is order
    assert find_order({"order_id": "12"}) == 12
    assert find_order({"hello": 1}) is None
    assert find_order({"id": 5}) == 5  # an id and nothing order-like: fetch it


def test_webhook_saves_held_orders_only_when_they_change(tmp_path: Path) -> None:
    """Found in review: with --require-payment every delivery rewrote (and
    fsynced) the whole state file; only a hold or a release changes it."""
    from miva_sync.app.listen import Holds, OrderWriter
    from miva_sync.sinks.jsonl import FileSink
    from miva_sync.state.file import StateStore
    from tests.support.helpers import read_jsonl

    state = StateStore(tmp_path / "state.json")
    saved: list[dict[str, Any]] = []
    put = state.put
    state.put = lambda key, record: (
        saved.append(dict(record["held"])),
        put(key, record),
    )  # type: ignore[method-assign]
    sink = FileSink(tmp_path / "o.jsonl")
    writer = OrderWriter(sink, None, holds=Holds(state, "k", 3600))
    paid = {"id": 1, "dt_updated": 10, "pay_status": 3, "payments": [{"id": 9}]}
    unpaid = {"id": 2, "dt_updated": 10, "pay_status": 0}
    assert writer.accept(paid).result == "written"
    assert saved == []  # nothing held, nothing released: the state file untouched
    assert writer.accept(unpaid).result == "held"
    assert list(saved[-1]) == ["2"]  # the hold is durable before the 2xx
    assert writer.accept({**unpaid, "dt_updated": 11}).result == "held"
    assert len(saved) == 1  # still held: unchanged
    assert writer.accept({**paid, "id": 2, "dt_updated": 12}).result == "written"
    assert saved[-1] == {} and len(saved) == 2  # the release, after the write
    writer.close()
    assert [o["id"] for o in read_jsonl(tmp_path / "o.jsonl")] == [1, 2]


def raw_post(receiver: Receiver, head: bytes, body: bytes) -> tuple[int, bytes]:
    """One POST over a loopback socket, exactly these bytes; the answer's status
    and body. The socket stays open for sending: the receiver must answer from
    what it read, without waiting for the rest of a body."""
    host, port = receiver.base.removeprefix("http://").split(":")
    path = receiver.url.removeprefix(receiver.base).encode()
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + head + b"\r\n" + body
        )
        answer = b""
        while block := sock.recv(65536):  # the receiver closes after answering
            answer += block
    status = int(answer.split(b" ", 2)[1])
    return status, answer.partition(b"\r\n\r\n")[2]


def chunked(data: bytes, size: int) -> bytes:
    """``data`` in chunked framing, ``size`` bytes a chunk, ended by a zero chunk."""
    pieces = [data[i : i + size] for i in range(0, len(data), size)]
    return b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in pieces) + b"0\r\n\r\n"


def test_webhook_accepts_a_chunked_body(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    target = targets(tmp_path)["jsonl"]
    receiver = Receiver(target, tmp_path / "home")
    receivers.append(receiver)
    first = {"id": 31, "orderdate": 5, "dt_updated": 6, "status": 100, "items": []}
    second = {**first, "id": 32, "note": "ü" * 300}

    def stream(data: bytes) -> Iterator[bytes]:  # requests sends a generator chunked
        for i in range(0, len(data), 100):
            yield data[i : i + 100]

    answer = requests.post(
        receiver.url, data=stream(json.dumps(first).encode()), timeout=10
    )
    assert answer.status_code == 200, answer.text
    assert answer.json()["result"] == "written"
    # chunk extensions, a trailer field and a mixed-case coding: all valid HTTP/1.1
    body = chunked(json.dumps({"order": second}).encode(), 7).replace(
        b"\r\n", b";ext=1\r\n", 1
    )
    body = body[: -len(b"\r\n")] + b"X-Trailer: 1\r\n\r\n"
    status, reply = raw_post(receiver, b"Transfer-Encoding: Chunked\r\n", body)
    assert status == 200, reply
    assert read_target("jsonl", target) == {31: first, 32: second}


def test_webhook_refuses_an_oversized_chunked_body_with_413(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    target = targets(tmp_path)["jsonl"]
    receiver = Receiver(target, tmp_path / "home", args=("--max-body", "2000"))
    receivers.append(receiver)
    order = {
        "id": 41,
        "orderdate": 5,
        "dt_updated": 6,
        "status": 100,
        "pad": "x" * 5000,
    }
    te = b"Transfer-Encoding: chunked\r\n"
    assert raw_post(receiver, te, chunked(json.dumps(order).encode(), 500))[0] == 413
    # a chunk announced bigger than the limit: refused before its data arrives
    # (the socket stays open; waiting for the data would time out instead)
    assert raw_post(receiver, te, b"100000\r\n" + b"x" * 10)[0] == 413
    # up to the limit, chunked is fine
    small = {**order, "pad": "x" * 1000}
    assert raw_post(receiver, te, chunked(json.dumps(small).encode(), 300))[0] == 200
    assert set(read_target("jsonl", target)) == {41}
    assert read_target("jsonl", target)[41]["pad"] == "x" * 1000


def test_webhook_malformed_chunked_framing_is_400_without_a_traceback(
    tmp_path: Path, receivers: list[Receiver]
) -> None:
    target = targets(tmp_path)["jsonl"]
    receiver = Receiver(
        target, tmp_path / "home", env={"MIVA_SYNC_WEBHOOK_TIMEOUT": "2"}
    )
    receivers.append(receiver)
    data = json.dumps({"id": 51, "orderdate": 5, "dt_updated": 6}).encode()
    te = b"Transfer-Encoding: chunked\r\n"
    bodies = [
        b"zz\r\n" + data + b"\r\n0\r\n\r\n",  # size not hex
        b"%x\r\n%s0\r\n\r\n" % (len(data), data),  # no CRLF after the data
        b"%x\r\n%s\r\n" % (len(data) + 5, data) + b"0\r\n\r\n",  # shorter than said
        b"-5\r\n" + data + b"\r\n0\r\n\r\n",
        b"%x\r\n%s\r\n0\r\n" % (len(data), data),  # no end: the sender stalls
    ]
    for body in bodies:
        assert raw_post(receiver, te, body)[0] == 400, body
    # a coding the receiver cannot undo, and one that leaves the length unknown
    gz = b"Transfer-Encoding: gzip, chunked\r\n"
    assert raw_post(receiver, gz, chunked(data, 9))[0] == 501
    assert raw_post(receiver, b"Transfer-Encoding: gzip\r\n", data)[0] == 400
    code, out, err = receiver.stop()
    assert code == 0 and out == ""
    assert "Traceback" not in err
    assert read_target("jsonl", target) == {}

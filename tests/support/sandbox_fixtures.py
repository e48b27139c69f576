"""Fixtures and a tiny raw client for the sandbox's own tests.

The signing helper is written here on purpose, apart from both the client and
the sandbox, so each side is checked against an independent reading of
docs/miva-api.md §2.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from miva_sync.sandbox import Sandbox

SDK_EMPTY_FILTER = [{"name": "search", "value": []}]


def sign(key_b64: str, body: bytes, digest: str = "sha256") -> str:
    """Base64 HMAC of the body with the base64-decoded (re-padded) key."""
    key = key_b64 + "=" * (-len(key_b64) % 4)
    mac = hmac.new(base64.b64decode(key), body, getattr(hashlib, digest))
    return base64.b64encode(mac.digest()).decode()


class RawClient:
    """Builds, signs and posts bodies with requests; nothing clever."""

    def __init__(self, sandbox: Sandbox, digest: str | None = "sha256") -> None:
        self.sb = sandbox
        self.digest = digest if sandbox.signing_key else None
        self.session = requests.Session()

    def body(
        self, function: str = "OrderList_Load_Query", **fields: Any
    ) -> dict[str, Any]:
        payload: dict[str, Any] = {
            "Store_Code": self.sb.store_code,
            "Function": function,
        }
        payload.update(fields)
        payload.setdefault("Miva_Request_Timestamp", int(self.sb.clock()))
        return payload

    def header(self, raw: bytes) -> str:
        if self.digest is None:
            return f"MIVA {self.sb.api_token}"
        assert self.sb.signing_key
        signature = sign(self.sb.signing_key, raw, self.digest)
        return f"MIVA-HMAC-{self.digest.upper()} {self.sb.api_token}:{signature}"

    def post(
        self, payload: Any, header: str | None = None, timeout: float = 10, **kw: Any
    ) -> requests.Response:
        raw = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"}
        auth = header if header is not None else self.header(raw)
        if auth:
            headers["X-Miva-API-Authorization"] = auth
        return self.session.post(
            self.sb.url, data=raw, headers=headers, timeout=timeout, **kw
        )

    def call(
        self, function: str = "OrderList_Load_Query", **fields: Any
    ) -> dict[str, Any]:
        response = self.post(self.body(function, **fields))
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    def orders(self, **fields: Any) -> list[dict[str, Any]]:
        result = self.call(**fields)
        assert result["success"] == 1, result
        rows: list[dict[str, Any]] = result["data"]["data"]
        return rows

    def ids(self, **fields: Any) -> list[int]:
        return [o["id"] for o in self.orders(**fields)]

    def queue(self, function: str, **fields: Any) -> dict[str, Any]:
        return self.call(
            "Module", Module_Code="orderworkflow", Module_Function=function, **fields
        )


def search(*entries: dict[str, Any]) -> dict[str, Any]:
    return {"name": "search", "value": list(entries)}


def entry(field: str, operator: str, value: Any = None) -> dict[str, Any]:
    item = {"field": field, "operator": operator}
    if value is not None:
        item["value"] = value
    return item


def columns(*names: str) -> dict[str, Any]:
    return {"name": "ondemandcolumns", "value": list(names)}


@pytest.fixture(scope="module")
def shared_sandbox() -> Iterator[Sandbox]:
    """A read-only 300-order store shared by a module's tests (tie order by id)."""
    with Sandbox(orders=300, seed=11, tie_order="id") as sb:
        yield sb


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """A fresh 120-order store for tests that change it."""
    with Sandbox(orders=120, seed=5, tie_order="id") as sb:
        yield sb


@pytest.fixture
def raw(sandbox: Sandbox) -> RawClient:
    return RawClient(sandbox)


@pytest.fixture(scope="module")
def shared_raw(shared_sandbox: Sandbox) -> RawClient:
    return RawClient(shared_sandbox)


class FixedClock:
    """An injectable clock tests move by hand."""

    def __init__(self, start: float | None = None) -> None:
        self.value = float(start if start is not None else int(time.time()))

    def __call__(self) -> float:
        return self.value

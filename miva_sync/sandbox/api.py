"""One JSON API call: authenticate, parse, dispatch to the store, shape the answer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from miva_sync.sandbox.auth import Authenticator, AuthFailure
from miva_sync.sandbox.filters import QueryError
from miva_sync.sandbox.quirks import NO_QUIRKS, Quirks
from miva_sync.sandbox.store import Store

MODULE = "orderworkflow"


@dataclass
class Reply:
    """What the HTTP layer sends back, and what the request log records."""

    status: int
    body: bytes
    payload: Any = None  # the parsed request body, when it parsed
    function: str | None = None
    module_function: str | None = None
    error_code: str | None = None


def error_body(code: str, message: str, error_field: str | None = None) -> bytes:
    """A ``success: 0`` body in the shape of docs/miva-api.md §3.7."""
    body: dict[str, Any] = {"success": 0, "error_code": code, "error_message": message}
    if error_field is not None:
        body.update(
            validation_error=True,
            error_field=error_field,
            error_field_message=message,
            input_errors=True,
            error_fields=[{"error_field": error_field, "error_message": message}],
        )
    return json.dumps(body).encode()


class Api:
    """The store's /mm5/json.mvc for one store code and one API token."""

    def __init__(
        self,
        store: Store,
        auth: Authenticator,
        store_code: str,
        quirks: Quirks = NO_QUIRKS,
    ) -> None:
        self.store = store
        self.auth = auth
        self.store_code = store_code
        # HTTP 200 + success 0 for a refused request, as a real store answers;
        # HTTP 401 when a web-server layer in front of the store refuses it
        self.auth_status = 401 if quirks.auth_error_401 else 200

    def handle(self, body: bytes, auth_header: str | None) -> Reply:
        """Answer one POST body; never raises for anything a client can send."""
        try:
            self.auth.check_header(auth_header, body)
        except AuthFailure as err:
            return Reply(
                self.auth_status, error_body(err.code, err.message), error_code=err.code
            )
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            return _fail(200, "invalid_json", "Request body is not valid JSON")
        if not isinstance(payload, dict):
            return _fail(
                200, "invalid_json", "Request body must be a JSON object", payload
            )
        reply = self._dispatch(payload)
        reply.payload = payload
        reply.function = _text(payload.get("Function"))
        reply.module_function = _text(payload.get("Module_Function"))
        return reply

    def _dispatch(self, payload: dict[str, Any]) -> Reply:
        try:
            self.auth.check_timestamp(payload, self.store.now())
        except AuthFailure as err:
            return Reply(
                self.auth_status, error_body(err.code, err.message), error_code=err.code
            )
        if "Operations" in payload or "Iterations" in payload:
            return _fail(
                200, "multicall_unsupported", "The sandbox does not emulate multicall"
            )
        # Doc examples spell it Store_code; the SDKs send Store_Code
        # (docs/miva-api.md §1).
        code = payload.get("Store_Code", payload.get("Store_code"))
        if code != self.store_code:
            return _fail(200, "invalid_store", f"Invalid store code '{code}'")
        function = payload.get("Function")
        try:
            if function == "OrderList_Load_Query":
                return _ok(self.store.query(payload))
            if function == "Module":
                return self._module(payload)
        except QueryError as err:
            return Reply(
                200,
                error_body(err.code, err.message, err.error_field),
                error_code=err.code,
            )
        return _fail(200, "invalid_function", "Invalid function")

    def _module(self, payload: dict[str, Any]) -> Reply:
        if payload.get("Module_Code") != MODULE:
            return _fail(200, "invalid_module", "Invalid Module")
        name = payload.get("Module_Function")
        if name == "QueueOrderList_Load_Query":
            queue = payload.get("Queue_Code")
            if not isinstance(queue, str) or not queue:
                return _fail(200, "invalid_queue", "Queue_Code is required")
            return _ok(self.store.query(payload, queue_code=queue))
        if name == "OrderList_Acknowledge":
            processed = self.store.acknowledge(payload.get("Order_Ids"))
            return _ok(f'{{"success":1,"processed":{processed}}}')
        return _fail(
            200, "invalid_module_function", f"Invalid module function '{name}'"
        )


def _ok(text: str) -> Reply:
    return Reply(200, text.encode())


def _fail(status: int, code: str, message: str, payload: Any = None) -> Reply:
    return Reply(status, error_body(code, message), payload=payload, error_code=code)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None

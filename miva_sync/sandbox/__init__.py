"""The sandbox: a local emulator of the Miva JSON API subset miva-sync uses.

It shares no code with the client (signing, query building, paging): an emulator
that reuses the client's code cannot catch the client's bugs. See docs/sandbox.md.
"""

from __future__ import annotations

from miva_sync.sandbox.auth import Authenticator, AuthFailure, decode_key, signature
from miva_sync.sandbox.faults import KINDS as FAULT_KINDS
from miva_sync.sandbox.faults import Fault, Faults
from miva_sync.sandbox.filters import QueryError
from miva_sync.sandbox.generator import GeneratedStore, generate_store
from miva_sync.sandbox.harness import AUTO, Sandbox, new_signing_key, new_token
from miva_sync.sandbox.httpd import RequestLogEntry
from miva_sync.sandbox.store import DEFAULT_QUEUE, RECEIVED_QUEUE, TIE_ORDERS, Store

__all__ = [
    "AUTO",
    "DEFAULT_QUEUE",
    "FAULT_KINDS",
    "RECEIVED_QUEUE",
    "TIE_ORDERS",
    "AuthFailure",
    "Authenticator",
    "Fault",
    "Faults",
    "GeneratedStore",
    "QueryError",
    "RequestLogEntry",
    "Sandbox",
    "Store",
    "decode_key",
    "generate_store",
    "new_signing_key",
    "new_token",
    "signature",
]

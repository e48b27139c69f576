"""Request authentication as a store checks it (miva-api.md §2).

Verifies the X-Miva-API-Authorization header over the raw body bytes, and the
Miva_Request_Timestamp window. Independent of the client's signing code.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any

HEADER = "X-Miva-API-Authorization"
DIGESTS = {"MIVA-HMAC-SHA256": hashlib.sha256, "MIVA-HMAC-SHA1": hashlib.sha1}

# The sandbox's own codes: Miva's real 401 bodies are undocumented (§3.7).
MISSING_HEADER = "auth_header_missing"
UNKNOWN_TOKEN = "auth_token_invalid"  # noqa: S105 - an error code
BAD_SIGNATURE = "auth_signature_invalid"
WRONG_TYPE = "auth_type_invalid"
BAD_TIMESTAMP = "auth_timestamp_invalid"


class AuthFailure(Exception):
    """A request the store answers with HTTP 401."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_key(signing_key: str) -> bytes:
    """Decode a base64 signing key, restoring the padding Miva's admin omits (§2.3)."""
    key = signing_key.strip()
    key += "=" * (-len(key) % 4)
    try:
        return base64.b64decode(key, validate=True)
    except binascii.Error as err:
        raise ValueError("signing key is not valid base64") from err


def signature(key: bytes, body: bytes, scheme: str = "MIVA-HMAC-SHA256") -> str:
    """Base64 HMAC of the body, as the header carries it."""
    return base64.b64encode(hmac.new(key, body, DIGESTS[scheme]).digest()).decode()


@dataclass
class Authenticator:
    """One API token's settings: the token, its optional key, its timestamp window."""

    api_token: str = field(repr=False)
    signing_key: str | None = field(default=None, repr=False)
    require_signature: bool = True
    # Seconds either side of now; 0 turns timestamp validation off.
    timestamp_window: int = 120

    def __post_init__(self) -> None:
        self._key = decode_key(self.signing_key) if self.signing_key else None

    def check_header(self, header: str | None, body: bytes) -> str:
        """Verify the header against the exact body bytes; return the scheme used."""
        if not header or not header.strip():
            raise AuthFailure(MISSING_HEADER, f"Missing {HEADER} header")
        scheme, _, credentials = header.strip().partition(" ")
        scheme = scheme.upper()
        if scheme == "MIVA":
            self._check_token(credentials.strip())
            if self._key is not None and self.require_signature:
                raise AuthFailure(
                    WRONG_TYPE, "This API token requires an HMAC signature"
                )
            return scheme
        if scheme not in DIGESTS:
            raise AuthFailure(WRONG_TYPE, f"Unsupported authentication type '{scheme}'")
        token, _, sent = credentials.strip().partition(":")
        self._check_token(token)
        if self._key is None:
            raise AuthFailure(
                WRONG_TYPE, "This API token has no signing key; use MIVA auth"
            )
        expected = signature(self._key, body, scheme)
        if not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
            raise AuthFailure(BAD_SIGNATURE, "The request signature does not match")
        return scheme

    def check_timestamp(self, payload: Any, now: int) -> None:
        """Reject a missing, malformed or stale Miva_Request_Timestamp (int or string)."""
        if not self.timestamp_window:
            return
        raw = (
            payload.get("Miva_Request_Timestamp") if isinstance(payload, dict) else None
        )
        if raw is None:
            raise AuthFailure(BAD_TIMESTAMP, "Missing Miva_Request_Timestamp")
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError
            stamp = int(raw)
        except ValueError:
            raise AuthFailure(BAD_TIMESTAMP, "Invalid Miva_Request_Timestamp") from None
        if abs(now - stamp) > self.timestamp_window:
            raise AuthFailure(
                BAD_TIMESTAMP,
                f"Miva_Request_Timestamp is {stamp - now:+d} s from the store's clock "
                f"(allowed +-{self.timestamp_window} s)",
            )

    def _check_token(self, token: str) -> None:
        if not hmac.compare_digest(token.encode(), self.api_token.encode()):
            raise AuthFailure(UNKNOWN_TOKEN, "Unknown API token")

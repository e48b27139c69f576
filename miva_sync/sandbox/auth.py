"""Request authentication as a store checks it (docs/miva-api.md §2, §3.7).

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

# Every credential failure carries one code, as Miva's own json.mvc source
# shows (docs/miva-api.md §3.7): ``access_denied``, with a message that tells
# the failures apart. The messages below are Miva's, word for word (even the
# odd "Timestamp requires request signature"), except where marked as the
# sandbox's guess: the source read covers no such case.
ACCESS_DENIED = "access_denied"
MSG_ACCESS_DENIED = (
    "Access denied"  # unknown token (Miva also says it for a refused IP)
)
MSG_BAD_SIGNATURE = "Invalid request signature"
MSG_NEEDS_SIGNATURE = "Timestamp requires request signature"  # sic: Miva's words
MSG_UNKNOWN_TYPE = "Unrecognized authorization type"
MSG_MISSING_TIMESTAMP = "Missing required timestamp"
MSG_STALE_TIMESTAMP = "Timestamp outside configured window"
# The sandbox's guesses (no evidence for these cases): a request without the
# header, an HMAC header for a token without a signing key, and a timestamp
# that is no integer.
MSG_MISSING_HEADER = MSG_ACCESS_DENIED
MSG_NO_KEY = MSG_BAD_SIGNATURE
MSG_BAD_TIMESTAMP = MSG_STALE_TIMESTAMP


class AuthFailure(Exception):
    """A refused request: ``access_denied`` and Miva's message for the cause.

    Real stores answer it with HTTP 200 (docs/miva-api.md §3.8), and so does
    the sandbox; the ``auth-error-401`` switch answers HTTP 401 instead, as a
    web-server layer in front of the store would.
    """

    def __init__(self, message: str, code: str = ACCESS_DENIED) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def decode_key(signing_key: str) -> bytes:
    """Decode a base64 signing key, restoring the padding Miva's admin omits
    (docs/miva-api.md §2.3)."""
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
            raise AuthFailure(MSG_MISSING_HEADER)
        scheme, _, credentials = header.strip().partition(" ")
        scheme = scheme.upper()
        if scheme == "MIVA":
            self._check_token(credentials.strip())
            if self._key is not None and self.require_signature:
                raise AuthFailure(MSG_NEEDS_SIGNATURE)
            return scheme
        if scheme not in DIGESTS:
            raise AuthFailure(MSG_UNKNOWN_TYPE)
        token, _, sent = credentials.strip().partition(":")
        self._check_token(token)
        if self._key is None:
            raise AuthFailure(MSG_NO_KEY)
        expected = signature(self._key, body, scheme)
        if not sent or not hmac.compare_digest(expected.encode(), sent.encode()):
            raise AuthFailure(MSG_BAD_SIGNATURE)
        return scheme

    def check_timestamp(self, payload: Any, now: int) -> None:
        """Reject a missing, malformed or stale Miva_Request_Timestamp (int or string)."""
        if not self.timestamp_window:
            return
        raw = (
            payload.get("Miva_Request_Timestamp") if isinstance(payload, dict) else None
        )
        if raw is None:
            raise AuthFailure(MSG_MISSING_TIMESTAMP)
        try:
            if isinstance(raw, bool) or not isinstance(raw, int | str):
                raise ValueError
            stamp = int(raw)
        except ValueError:
            raise AuthFailure(MSG_BAD_TIMESTAMP) from None
        if abs(now - stamp) > self.timestamp_window:
            raise AuthFailure(MSG_STALE_TIMESTAMP)

    def _check_token(self, token: str) -> None:
        if not hmac.compare_digest(token.encode(), self.api_token.encode()):
            raise AuthFailure(MSG_ACCESS_DENIED)

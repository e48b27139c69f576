"""Authentication as the sandbox checks it: vectors of docs/miva-api.md §2.6 and each refusal.

Every refusal is ``access_denied`` with Miva's own message for the cause
(docs/miva-api.md §3.7), answered with HTTP 200 as a real store answers it; the
``auth-error-401`` switch answers HTTP 401 instead, as a web-server layer in front of
the store would.
"""

from __future__ import annotations

import json

import pytest

from miva_sync.sandbox import Authenticator, AuthFailure, Sandbox, decode_key, signature
from miva_sync.sandbox.quirks import Quirks
from tests.support.sandbox_fixtures import FixedClock, RawClient, sign

TOKEN = "0f90f77b58ca98836eba3d50f526f523"
KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA"
BODY_A = (
    b'{"Store_Code":"PS","Function":"OrderList_Load_Query","Count":10,"Offset":0,'
    b'"Sort":"id","Filter":[{"name":"search","value":[{"field":"orderdate",'
    b'"operator":"GE","value":"1700000000"}]}],"Miva_Request_Timestamp":1700000000}'
)
BODY_B = json.dumps(json.loads(BODY_A)).encode()
BODY_C = (
    b'{"Store_Code":"PS","Function":"Module","Module_Code":"orderworkflow",'
    b'"Module_Function":"OrderList_Acknowledge","Order_Ids":[1046,1047],'
    b'"Miva_Request_Timestamp":1700000060}'
)
VECTORS = [
    (BODY_A, "MIVA-HMAC-SHA256", "Go7k3hKuAsuaYLgqx4IHSSCutsCLYp1tzc+CU5CzwfA="),
    (BODY_A, "MIVA-HMAC-SHA1", "OAbJpVShGR+QWpHFvD1Slozo2Cg="),
    (BODY_B, "MIVA-HMAC-SHA256", "t3RvNK9xFVGWFnQxffcCiK/h0NWSyJlJA2jec2Yx5o0="),
    (BODY_C, "MIVA-HMAC-SHA256", "G2IE8dv14JRL/9buMNesPCCOxHzJ+K4KzQrYF89o6T8="),
]


def test_sandbox_decodes_unpadded_and_padded_keys_alike() -> None:
    assert len(BODY_A) == 221
    assert decode_key(KEY) == decode_key(KEY + "=") == bytes(range(1, 33))


@pytest.mark.parametrize(("body", "scheme", "expected"), VECTORS)
def test_sandbox_signature_matches_vectors(
    body: bytes, scheme: str, expected: str
) -> None:
    assert signature(decode_key(KEY), body, scheme) == expected


@pytest.mark.parametrize("key", [KEY, KEY + "="])
@pytest.mark.parametrize(("body", "scheme", "expected"), VECTORS)
def test_sandbox_verifier_accepts_vector_headers(
    key: str, body: bytes, scheme: str, expected: str
) -> None:
    auth = Authenticator(TOKEN, key)
    assert auth.check_header(f"{scheme} {TOKEN}:{expected}", body) == scheme


def test_sandbox_verifier_rejects_a_changed_body() -> None:
    auth = Authenticator(TOKEN, KEY)
    header = f"MIVA-HMAC-SHA256 {TOKEN}:{VECTORS[0][2]}"
    with pytest.raises(AuthFailure) as info:
        auth.check_header(header, BODY_B)  # same object, other whitespace
    assert info.value.code == "access_denied"
    assert info.value.message == "Invalid request signature"


def test_sandbox_test_helper_agrees_with_vectors() -> None:
    assert sign(KEY, BODY_A) == VECTORS[0][2]
    assert sign(KEY, BODY_A, "sha1") == VECTORS[1][2]


# --- over HTTP ---------------------------------------------------------------------


def _status_and_code(response: object) -> tuple[int, str]:
    """HTTP status and Miva's message, for the one code every refusal carries."""
    body = response.json()  # type: ignore[attr-defined]
    assert body["success"] == 0
    assert body["error_code"] == "access_denied"
    return response.status_code, body["error_message"]  # type: ignore[attr-defined]


DENIED = "Access denied"
BAD_SIGNATURE = "Invalid request signature"
UNKNOWN_TYPE = "Unrecognized authorization type"
NEEDS_SIGNATURE = "Timestamp requires request signature"  # sic: Miva's words
STALE = "Timestamp outside configured window"
NO_TIMESTAMP = "Missing required timestamp"


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def signed(clock: FixedClock) -> object:
    with Sandbox(orders=5, seed=1, now=clock) as sb:
        yield sb


@pytest.fixture
def behind_401(clock: FixedClock) -> object:
    """A store behind a web-server layer that answers refusals with HTTP 401."""
    with Sandbox(orders=5, seed=1, now=clock, quirks=Quirks(auth_error_401=True)) as sb:
        yield sb


@pytest.fixture
def token_only(clock: FixedClock) -> object:
    with Sandbox(orders=5, seed=1, signing_key=None, now=clock) as sb:
        yield sb


def test_sandbox_accepts_sha256_and_sha1(signed: Sandbox) -> None:
    for digest in ("sha256", "sha1"):
        assert RawClient(signed, digest).call()["success"] == 1


def test_sandbox_accepts_unpadded_key_as_issued(signed: Sandbox) -> None:
    assert signed.signing_key is not None
    assert not signed.signing_key.endswith("=")
    assert len(signed.signing_key) % 4 != 0


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", DENIED),
        ("MIVA-HMAC-SHA256 wrongtoken:abc=", DENIED),
        ("MIVA-HMAC-SHA256 {token}:AAAA", BAD_SIGNATURE),
        ("MIVA-HMAC-SHA256 {token}", BAD_SIGNATURE),
        ("MIVA {token}", NEEDS_SIGNATURE),
        ("Bearer {token}", UNKNOWN_TYPE),
        ("MIVA-HMAC-MD5 {token}:AAAA", UNKNOWN_TYPE),
    ],
)
def test_sandbox_answers_200_access_denied_per_auth_failure(
    signed: Sandbox, header: str, message: str
) -> None:
    raw = RawClient(signed)
    response = raw.post(raw.body(), header=header.format(token=signed.api_token))
    assert _status_and_code(response) == (200, message)
    assert response.headers["Content-Type"] == "application/json"
    assert signed.requests[-1].error_code == "access_denied"


def test_sandbox_rejects_signature_over_other_bytes(signed: Sandbox) -> None:
    raw = RawClient(signed)
    body = raw.body()
    header = raw.header(json.dumps(body).encode())
    response = raw.post(json.dumps(body, separators=(",", ":")).encode(), header=header)
    assert _status_and_code(response) == (200, BAD_SIGNATURE)


def test_sandbox_token_only_accepts_miva_header(token_only: Sandbox) -> None:
    raw = RawClient(token_only)
    assert raw.header(b"") == f"MIVA {token_only.api_token}"
    assert raw.call()["success"] == 1


def test_sandbox_token_only_rejects_hmac_header(token_only: Sandbox) -> None:
    raw = RawClient(token_only)
    response = raw.post(
        raw.body(), header=f"MIVA-HMAC-SHA256 {token_only.api_token}:AAAA"
    )
    assert _status_and_code(response) == (200, BAD_SIGNATURE)  # the sandbox's guess


def test_sandbox_token_only_rejects_unknown_token(token_only: Sandbox) -> None:
    raw = RawClient(token_only)
    response = raw.post(raw.body(), header="MIVA nope")
    assert _status_and_code(response) == (200, DENIED)


def test_sandbox_optional_signature_accepts_both(clock: FixedClock) -> None:
    with Sandbox(orders=3, require_signature=False, now=clock) as sb:
        assert RawClient(sb, None).call()["success"] == 1
        assert RawClient(sb, "sha256").call()["success"] == 1


@pytest.mark.parametrize("as_string", [False, True])
@pytest.mark.parametrize(("skew", "ok"), [(0, True), (120, True), (-120, True), (121, False),
                                          (-121, False), (-3600, False)])  # fmt: skip
def test_sandbox_timestamp_window(
    signed: Sandbox, clock: FixedClock, skew: int, ok: bool, as_string: bool
) -> None:
    raw = RawClient(signed)
    stamp = int(clock()) + skew
    body = raw.body(Miva_Request_Timestamp=str(stamp) if as_string else stamp)
    response = raw.post(body)
    if ok:
        assert response.status_code == 200
        assert response.json()["success"] == 1
    else:
        assert _status_and_code(response) == (200, STALE)


@pytest.mark.parametrize("stamp", [None, "soon", 1.5e9, True])
def test_sandbox_rejects_missing_or_malformed_timestamp(
    signed: Sandbox, stamp: object
) -> None:
    raw = RawClient(signed)
    body = raw.body()
    if stamp is None:
        del body["Miva_Request_Timestamp"]
    else:
        body["Miva_Request_Timestamp"] = stamp
    expected = NO_TIMESTAMP if stamp is None else STALE  # malformed: a guess
    assert _status_and_code(raw.post(body)) == (200, expected)


def test_sandbox_timestamp_follows_injected_clock(
    signed: Sandbox, clock: FixedClock
) -> None:
    raw = RawClient(signed)
    body = raw.body()
    clock.value += 500  # the request was signed 500 s ago by the store's clock
    assert _status_and_code(raw.post(body)) == (200, STALE)


def test_sandbox_window_zero_skips_timestamp_check() -> None:
    with Sandbox(orders=3, timestamp_window=0) as sb:
        raw = RawClient(sb)
        body = raw.body()
        del body["Miva_Request_Timestamp"]
        assert raw.post(body).json()["success"] == 1


def test_sandbox_custom_window() -> None:
    clock = FixedClock()
    with Sandbox(orders=3, timestamp_window=10, now=clock) as sb:
        raw = RawClient(sb)
        assert (
            raw.post(raw.body(Miva_Request_Timestamp=int(clock()) - 10)).status_code
            == 200
        )
        assert _status_and_code(
            raw.post(raw.body(Miva_Request_Timestamp=int(clock()) - 11))
        ) == (200, STALE)


# --- the auth-error-401 switch: a web-server layer in front answers 401 ------------


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("", DENIED),
        ("MIVA-HMAC-SHA256 wrongtoken:abc=", DENIED),
        ("MIVA-HMAC-SHA256 {token}:AAAA", BAD_SIGNATURE),
        ("MIVA {token}", NEEDS_SIGNATURE),
    ],
)
def test_sandbox_auth_error_401_answers_401(
    behind_401: Sandbox, header: str, message: str
) -> None:
    raw = RawClient(behind_401)
    response = raw.post(raw.body(), header=header.format(token=behind_401.api_token))
    assert _status_and_code(response) == (401, message)
    assert behind_401.requests[-1].status == 401
    assert behind_401.requests[-1].error_code == "access_denied"


def test_sandbox_auth_error_401_answers_401_for_a_stale_timestamp(
    behind_401: Sandbox, clock: FixedClock
) -> None:
    raw = RawClient(behind_401)
    body = raw.body(Miva_Request_Timestamp=int(clock()) - 3600)
    assert _status_and_code(raw.post(body)) == (401, STALE)


def test_sandbox_auth_error_401_leaves_good_requests_alone(behind_401: Sandbox) -> None:
    assert RawClient(behind_401).call()["success"] == 1


def test_sandbox_auth_error_401_quirk_names() -> None:
    assert Quirks.from_names(["auth-error-401"]) == Quirks(auth_error_401=True)
    assert Quirks(auth_error_401=True).names == ["auth-error-401"]
    with pytest.raises(ValueError, match="unknown quirk"):
        Quirks.from_names(["auth-error-200"])

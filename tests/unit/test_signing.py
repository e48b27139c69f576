"""The signing vectors of docs/miva-api.md §2.6, byte for byte."""

from __future__ import annotations

import base64
import json

import pytest

from miva_sync.config import decode_signing_key
from miva_sync.errors import ConfigError
from miva_sync.store.client import authorization, encode_body, sign
from tests.support.fakes import KEY, TOKEN

RAW_KEY = bytes(range(1, 33))
VECTOR_A = (
    b'{"Store_Code":"PS","Function":"OrderList_Load_Query","Count":10,"Offset":0,'
    b'"Sort":"id","Filter":[{"name":"search","value":[{"field":"orderdate",'
    b'"operator":"GE","value":"1700000000"}]}],"Miva_Request_Timestamp":1700000000}'
)
VECTOR_C = (
    b'{"Store_Code":"PS","Function":"Module","Module_Code":"orderworkflow",'
    b'"Module_Function":"OrderList_Acknowledge","Order_Ids":[1046,1047],'
    b'"Miva_Request_Timestamp":1700000060}'
)


def test_signing_key_without_padding_decodes_to_the_raw_key() -> None:
    assert decode_signing_key(KEY) == RAW_KEY
    assert decode_signing_key(KEY + "=") == RAW_KEY


@pytest.mark.parametrize("bad", ["not base64!", "q", "===="])
def test_signing_key_that_is_not_base64_is_a_config_error(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        decode_signing_key(bad)
    assert bad not in str(info.value)


def test_vector_a_body_is_221_bytes() -> None:
    assert len(VECTOR_A) == 221


@pytest.mark.parametrize(
    ("digest", "expected"),
    [
        (
            "sha256",
            "MIVA-HMAC-SHA256 "
            + TOKEN
            + ":Go7k3hKuAsuaYLgqx4IHSSCutsCLYp1tzc+CU5CzwfA=",
        ),
        ("sha1", "MIVA-HMAC-SHA1 " + TOKEN + ":OAbJpVShGR+QWpHFvD1Slozo2Cg="),
    ],
)
def test_vector_a_headers(digest: str, expected: str) -> None:
    assert authorization(TOKEN, VECTOR_A, decode_signing_key(KEY), digest) == expected


def test_token_only_header_when_there_is_no_key() -> None:
    assert authorization(TOKEN, VECTOR_A, None, "sha256") == f"MIVA {TOKEN}"


def test_vector_b_whitespace_changes_the_signature() -> None:
    body = json.dumps(json.loads(VECTOR_A)).encode()
    assert sign(body, RAW_KEY) == "t3RvNK9xFVGWFnQxffcCiK/h0NWSyJlJA2jec2Yx5o0="


def test_vector_c_acknowledge_body() -> None:
    assert sign(VECTOR_C, RAW_KEY) == "G2IE8dv14JRL/9buMNesPCCOxHzJ+K4KzQrYF89o6T8="


def test_encode_body_reproduces_vector_a_exactly() -> None:
    payload = json.loads(VECTOR_A)
    assert encode_body(payload) == VECTOR_A


def test_non_ascii_body_is_signed_as_the_utf8_bytes_sent() -> None:
    body = encode_body({"ship_lname": "Müller"})
    assert "Müller".encode() in body
    expected = base64.b64encode(
        __import__("hmac").new(RAW_KEY, body, "sha256").digest()
    ).decode()
    assert sign(body, RAW_KEY) == expected

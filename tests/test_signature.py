"""Tests for mapper.service.signature: HMAC signing and verification of Scope subscription webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mapper.service.signature import (
    MALFORMED,
    MISMATCH,
    MISSING_HEADER,
    NO_SECRET,
    SignatureError,
    SignatureScheme,
    sign,
    verify,
)

BODY = b'{"data": {"id": "U2NlbmFyaW9TZXNzaW9uLTQy", "url": "https://cms.scopear.com/api/v3/graphql/object/U2Nl"}}'
SECRET = "s3cr3t-shared"
HEADER = "X-Scope-Hmac-Sha256"


def _expected_b64(body: bytes, secret: bytes) -> str:
    return base64.b64encode(hmac.new(secret, body, hashlib.sha256).digest()).decode()


def _reason(body: bytes, headers: dict[str, Any], secrets: list[Any], scheme: SignatureScheme | None = None) -> str:
    with pytest.raises(SignatureError) as info:
        if scheme is None:
            verify(body, headers, secrets)
        else:
            verify(body, headers, secrets, scheme)
    assert str(info.value) == info.value.reason
    return info.value.reason


def test_known_vector() -> None:
    expected = _expected_b64(BODY, SECRET.encode())
    assert sign(BODY, SECRET) == expected
    assert sign(BODY, SECRET.encode()) == expected
    assert len(expected) == 44  # what Scope's documented header looks like
    verify(BODY, {HEADER: expected}, [SECRET])


def test_known_vector_rfc4231_case_2() -> None:
    # RFC 4231 test case 2: key "Jefe", data "what do ya want for nothing?"
    digest_hex = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
    scheme = SignatureScheme(encoding="hex")
    assert sign(b"what do ya want for nothing?", "Jefe", scheme) == digest_hex
    verify(b"what do ya want for nothing?", {"x-scope-hmac-sha256": digest_hex}, ["Jefe"], scheme)
    verify(b"what do ya want for nothing?", {HEADER: digest_hex.upper()}, ["Jefe"], scheme)
    b64 = base64.b64encode(bytes.fromhex(digest_hex)).decode()
    assert sign(b"what do ya want for nothing?", "Jefe") == b64


@given(st.binary(max_size=500), st.one_of(st.text(min_size=1), st.binary(min_size=1)))
def test_round_trip(body: bytes, secret: str | bytes) -> None:
    for scheme in (SignatureScheme(), SignatureScheme(encoding="hex")):
        verify(body, {HEADER: sign(body, secret, scheme)}, [secret], scheme)


def test_header_name_case_insensitive() -> None:
    signature = sign(BODY, SECRET)
    for name in ("x-scope-hmac-sha256", "X-SCOPE-HMAC-SHA256", "X-Scope-Hmac-Sha256"):
        verify(BODY, {name: signature}, [SECRET])


def test_surrounding_whitespace_tolerated() -> None:
    verify(BODY, {HEADER: "  " + sign(BODY, SECRET) + "\t\r\n"}, [SECRET])


def test_unpadded_base64_accepted() -> None:
    signature = sign(BODY, SECRET)
    assert signature.endswith("=")
    verify(BODY, {HEADER: signature.rstrip("=")}, [SECRET])


def test_rotation_second_secret_matches() -> None:
    verify(BODY, {HEADER: sign(BODY, "new")}, ["old", "new"])
    verify(BODY, {HEADER: sign(BODY, "old")}, ["old", "new"])
    verify(BODY, {HEADER: sign(BODY, "new")}, ["", b"new"])


def test_single_secret_string_is_not_split_into_characters() -> None:
    verify(BODY, {HEADER: sign(BODY, SECRET)}, SECRET)
    assert _reason(BODY, {HEADER: sign(BODY, "s")}, SECRET) == MISMATCH  # type: ignore[arg-type]


def test_wrong_secret() -> None:
    assert _reason(BODY, {HEADER: sign(BODY, "other")}, [SECRET]) == MISMATCH
    assert _reason(BODY, {HEADER: sign(BODY, "a")}, ["b", "c"]) == MISMATCH


def test_tampered_body() -> None:
    assert _reason(BODY + b" ", {HEADER: sign(BODY, SECRET)}, [SECRET]) == MISMATCH


def test_missing_header() -> None:
    assert _reason(BODY, {}, [SECRET]) == MISSING_HEADER
    assert _reason(BODY, {"X-Scope-Topic": "user/created"}, [SECRET]) == MISSING_HEADER


@pytest.mark.parametrize("secrets", [[], [""], ["", b""]])
def test_no_secret_fails_closed(secrets: list[Any]) -> None:
    assert _reason(BODY, {HEADER: sign(BODY, SECRET)}, secrets) == NO_SECRET
    assert _reason(BODY, {}, secrets) == NO_SECRET


def test_sign_refuses_empty_secret() -> None:
    with pytest.raises(SignatureError) as info:
        sign(BODY, "")
    assert info.value.reason == NO_SECRET


@pytest.mark.parametrize(
    "value",
    [
        "",
        "   ",
        "not base64 at all!",
        "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4b",  # 42 chars: decodes to 31 bytes
        "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bMX",  # 44 chars, no padding: 33 bytes
        "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bMXY",  # 45 chars: not base64 at all
        "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM=XWmr",  # too long
        base64.b64encode(b"\x00" * 31).decode(),  # wrong length
        base64.b64encode(b"\x00" * 33).decode(),
        base64.b64encode(b"\x00" * 64).decode(),
        "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM==",  # too much padding
        "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM=\x00",
        "XWmrwMey6OsLMeiZ KwP4FppHH3cmAiiJJAweH5Jo4bM=",  # inner space
        "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM_",  # url-safe alphabet
        "sha256=XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM=",  # prefix not accepted
        "ＸＷｍｒwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM=",  # fullwidth unicode
        "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4b\u00e9=",
        "\U0001f600" * 44,
        "====",
    ],
)
def test_malformed_header(value: str) -> None:
    assert _reason(BODY, {HEADER: value}, [SECRET]) == MALFORMED


@pytest.mark.parametrize(
    "value", ["XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM=", "XWmrwMey6OsLMeiZKwP4FppHH3cmAiiJJAweH5Jo4bM"]
)
def test_documented_example_is_well_formed(value: str) -> None:
    # the header value from Scope's docs, padded and unpadded: the right shape, signed with another secret
    assert _reason(BODY, {HEADER: value}, [SECRET]) == MISMATCH


@pytest.mark.parametrize(
    "value",
    [
        "zz" * 32,
        "ab" * 31,
        "ab" * 33,
        "abc",
        "0x" + "ab" * 31,
        "ab " * 32,
        "é" * 64,
        "",
    ],
)
def test_malformed_hex_header(value: str) -> None:
    assert _reason(BODY, {HEADER: value}, [SECRET], SignatureScheme(encoding="hex")) == MALFORMED


def test_base64_value_under_hex_scheme_is_malformed() -> None:
    scheme = SignatureScheme(encoding="hex")
    assert _reason(BODY, {HEADER: sign(BODY, SECRET)}, [SECRET], scheme) == MALFORMED
    assert _reason(BODY, {HEADER: sign(BODY, SECRET, scheme)}, [SECRET]) == MALFORMED


def test_conflicting_duplicate_headers_are_malformed() -> None:
    good = sign(BODY, SECRET)
    assert _reason(BODY, {HEADER: good, HEADER.lower(): sign(BODY, "x")}, [SECRET]) == MALFORMED
    verify(BODY, {HEADER: good, HEADER.lower(): good}, [SECRET])


def test_bytes_header_value() -> None:
    verify(BODY, {HEADER: sign(BODY, SECRET).encode()}, [SECRET])  # type: ignore[dict-item]


@given(st.text(max_size=100))
def test_arbitrary_header_text_only_raises_signature_error(value: str) -> None:
    with pytest.raises(SignatureError) as info:
        verify(BODY, {HEADER: value}, [SECRET])
    assert info.value.reason in {MALFORMED, MISMATCH}


@given(st.binary(min_size=32, max_size=32))
def test_arbitrary_well_formed_signature_mismatches(raw: bytes) -> None:
    value = base64.b64encode(raw).decode()
    if value == sign(BODY, SECRET):
        return
    assert _reason(BODY, {HEADER: value}, [SECRET]) == MISMATCH


def test_configurable_header_and_algorithm() -> None:
    scheme = SignatureScheme(header="X-Signature", encoding="hex", algorithm="sha512")
    expected = hmac.new(SECRET.encode(), BODY, hashlib.sha512).hexdigest()
    assert sign(BODY, SECRET, scheme) == expected
    verify(BODY, {"x-signature": expected}, [SECRET], scheme)
    assert _reason(BODY, {HEADER: expected}, [SECRET], scheme) == MISSING_HEADER
    assert (
        _reason(BODY, {"X-Signature": sign(BODY, SECRET, SignatureScheme(encoding="hex"))}, [SECRET], scheme)
        == MALFORMED
    )


@pytest.mark.parametrize(
    "kwargs",
    [{"encoding": "base32"}, {"algorithm": "nope"}, {"algorithm": "shake_128"}, {"header": " "}],
)
def test_bad_scheme_rejected_at_construction(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError):
        SignatureScheme(**kwargs)


def test_every_secret_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", spy)
    verify(BODY, {HEADER: sign(BODY, "first")}, ["first", "second", "third"])
    assert len(calls) == 3  # no early exit on the first match
    calls.clear()
    with pytest.raises(SignatureError):
        verify(BODY, {HEADER: sign(BODY, "zzz")}, ["first", "second", "third"])
    assert len(calls) == 3

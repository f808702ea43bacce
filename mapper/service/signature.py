"""Verify the HMAC signature Scope AR puts on subscription webhooks (configurable scheme, constant time)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from mapper.service.options import SIGNATURE_ENCODING, SIGNATURE_ENCODINGS, SIGNATURE_HEADER

__all__ = [
    "MALFORMED",
    "MISMATCH",
    "MISSING_HEADER",
    "NO_SECRET",
    "SignatureError",
    "SignatureScheme",
    "sign",
    "verify",
]

MISSING_HEADER: Final = "missing signature header"
MALFORMED: Final = "malformed signature header"
MISMATCH: Final = "signature does not match"
NO_SECRET: Final = "no secret configured"

_BASE64: Final = re.compile(r"[A-Za-z0-9+/]+={0,2}")
_HEX: Final = re.compile(r"[0-9A-Fa-f]+")
_WHITESPACE: Final = " \t\r\n"


@dataclass(frozen=True)
class SignatureScheme:
    """Where the signature is and how it is written: header name, "base64" or "hex", hashlib algorithm."""

    header: str = SIGNATURE_HEADER
    encoding: str = SIGNATURE_ENCODING
    algorithm: str = "sha256"

    def __post_init__(self) -> None:
        if not self.header.strip():
            raise ValueError("signature header name is empty")
        if self.encoding not in SIGNATURE_ENCODINGS:
            raise ValueError(
                f"signature encoding must be one of {', '.join(SIGNATURE_ENCODINGS)}, not {self.encoding!r}"
            )
        try:
            hmac.new(b"k", b"", self.algorithm).digest()
        except (ValueError, TypeError) as exc:
            raise ValueError(f"signature algorithm {self.algorithm!r} cannot be used for HMAC") from exc

    @property
    def digest_size(self) -> int:
        """Length in bytes of a signature under this scheme."""
        return hashlib.new(self.algorithm).digest_size


DEFAULT_SCHEME: Final = SignatureScheme()


class SignatureError(Exception):
    """The request is not proven to come from Scope; reason is a short, stable, loggable phrase."""

    reason: str

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _key(secret: str | bytes) -> bytes:
    return secret.encode("utf-8") if isinstance(secret, str) else bytes(secret)


def _mac(body: bytes, key: bytes, scheme: SignatureScheme) -> bytes:
    return hmac.new(key, body, scheme.algorithm).digest()


def sign(body: bytes, secret: str | bytes, scheme: SignatureScheme = DEFAULT_SCHEME) -> str:
    """The header value Scope would send for body signed with secret."""
    key = _key(secret)
    if not key:
        raise SignatureError(NO_SECRET)
    mac = _mac(body, key, scheme)
    return base64.b64encode(mac).decode("ascii") if scheme.encoding == "base64" else mac.hex()


def _header_value(headers: Mapping[str, str], name: str) -> str:
    wanted = name.strip().lower()
    values: set[str] = set()
    getlist = getattr(headers, "getlist", None)  # starlette's Headers: every value of one name, repeats too
    if callable(getlist):
        values.update(_text(value) for value in getlist(wanted))
    else:
        for key, value in headers.items():
            if isinstance(key, str | bytes) and _text(key).strip().lower() == wanted:
                values.add(_text(value))
    if not values:
        raise SignatureError(MISSING_HEADER)
    if len(values) > 1:  # the same header sent twice with different values
        raise SignatureError(MALFORMED)
    return values.pop()


def _text(value: object) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("latin-1")
    raise SignatureError(MALFORMED)


def _decode(value: str, scheme: SignatureScheme) -> bytes:
    """Signature bytes from a header value: MALFORMED unless it is one digest in the scheme's encoding."""
    text = value.strip(_WHITESPACE)
    if not text.isascii():
        raise SignatureError(MALFORMED)
    try:
        if scheme.encoding == "hex":
            if not _HEX.fullmatch(text):
                raise SignatureError(MALFORMED)
            raw = bytes.fromhex(text)
        else:
            if not _BASE64.fullmatch(text):
                raise SignatureError(MALFORMED)
            unpadded = text.rstrip("=")
            if len(text) - len(unpadded) and len(text) % 4:  # padding present but wrong amount
                raise SignatureError(MALFORMED)
            raw = base64.b64decode(unpadded + "=" * (-len(unpadded) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise SignatureError(MALFORMED) from exc
    if len(raw) != scheme.digest_size:
        raise SignatureError(MALFORMED)
    return raw


def verify(
    body: bytes,
    headers: Mapping[str, str],
    secrets: Sequence[str | bytes],
    scheme: SignatureScheme = DEFAULT_SCHEME,
) -> None:
    """Accept (return None) if the signature header matches body under ANY secret; else raise SignatureError.

    Fails closed when no non-empty secret is configured. Every secret is checked, in constant time,
    whether or not an earlier one matched, so timing reveals neither the MAC nor which secret is current.
    """
    if isinstance(secrets, str | bytes):  # a lone secret, not a sequence of one-character secrets
        secrets = [secrets]
    keys = [_key(secret) for secret in secrets if secret]
    if not keys:
        raise SignatureError(NO_SECRET)
    given = _decode(_header_value(headers, scheme.header), scheme)
    matched = False
    for key in keys:
        matched |= hmac.compare_digest(_mac(body, key, scheme), given)
    if not matched:
        raise SignatureError(MISMATCH)
